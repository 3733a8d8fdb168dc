// Where each chunk lives: chunk id -> (pack, offset, length), in one flat
// open-addressing table like ChunkIdSet (a repository can hold millions of
// chunks; the backup process has a 400 MiB budget). Pack ids are interned:
// a location costs 12 bytes next to the 32-byte id.
//
// Index object encoding ("locations-v1"): records of
//   id (32 bytes) | pack id (16 bytes) | offset (u32le) | length (u32le)
const ID = 32;
const PACK = 16;
export const LOCATION_RECORD = ID + PACK + 8;
const PACK_ID = /^[0-9a-f]{32}$/;

export interface ChunkLocation {
  readonly pack: string;
  readonly offset: number;
  readonly length: number;
}

export function isPackId(id: string): boolean {
  return PACK_ID.test(id);
}

export class ChunkMap {
  private slots: Uint8Array;
  private used: Uint8Array;
  private loc: Uint32Array;
  private mask: number;
  private count = 0;
  private readonly packIds: string[] = [];
  private readonly packNo = new Map<string, number>();

  constructor(expected = 1024) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.slots = new Uint8Array(cap * ID);
    this.used = new Uint8Array(cap);
    this.loc = new Uint32Array(cap * 3);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The packs some entry names. */
  packs(): IterableIterator<string> {
    return this.packNo.keys();
  }

  has(id: string): boolean {
    return this.find(Buffer.from(id, 'hex')) >= 0;
  }

  get(id: string): ChunkLocation | undefined {
    return this.getBytes(Buffer.from(id, 'hex'));
  }

  getBytes(id: Uint8Array): ChunkLocation | undefined {
    const i = this.find(id);
    if (i < 0) return undefined;
    return { pack: this.packIds[this.loc[i * 3]!]!, offset: this.loc[i * 3 + 1]!, length: this.loc[i * 3 + 2]! };
  }

  /** Keeps the first location recorded for an id; true when the id was new. */
  set(id: string, l: ChunkLocation): boolean {
    return this.setBytes(Buffer.from(id, 'hex'), l);
  }

  setBytes(id: Uint8Array, l: ChunkLocation): boolean {
    if (id.length !== ID) throw new Error('a chunk id is 32 bytes');
    if (this.find(id) >= 0) return false;
    if ((this.count + 1) * 2 > this.used.length) this.grow();
    let p = this.packNo.get(l.pack);
    if (p === undefined) {
      p = this.packIds.length;
      this.packIds.push(l.pack);
      this.packNo.set(l.pack, p);
    }
    this.insert(id, p, l.offset, l.length);
    this.count++;
    return true;
  }

  *entries(): IterableIterator<[string, ChunkLocation]> {
    for (let i = 0; i < this.used.length; i++) {
      if (!this.used[i]) continue;
      const id = Buffer.from(this.slots.subarray(i * ID, (i + 1) * ID)).toString('hex');
      yield [id, { pack: this.packIds[this.loc[i * 3]!]!, offset: this.loc[i * 3 + 1]!, length: this.loc[i * 3 + 2]! }];
    }
  }

  private start(id: Uint8Array): number {
    return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) & this.mask;
  }

  private find(id: Uint8Array): number {
    for (let i = this.start(id); ; i = (i + 1) & this.mask) {
      if (!this.used[i]) return -1;
      if (equalAt(this.slots, i * ID, id)) return i;
    }
  }

  private insert(id: Uint8Array, pack: number, offset: number, length: number): void {
    let i = this.start(id);
    while (this.used[i]) i = (i + 1) & this.mask;
    this.used[i] = 1;
    this.slots.set(id, i * ID);
    this.loc[i * 3] = pack;
    this.loc[i * 3 + 1] = offset;
    this.loc[i * 3 + 2] = length;
  }

  private grow(): void {
    const oldSlots = this.slots;
    const oldUsed = this.used;
    const oldLoc = this.loc;
    const cap = oldUsed.length * 2;
    this.slots = new Uint8Array(cap * ID);
    this.used = new Uint8Array(cap);
    this.loc = new Uint32Array(cap * 3);
    this.mask = cap - 1;
    for (let i = 0; i < oldUsed.length; i++) {
      if (oldUsed[i]) this.insert(oldSlots.subarray(i * ID, (i + 1) * ID), oldLoc[i * 3]!, oldLoc[i * 3 + 1]!, oldLoc[i * 3 + 2]!);
    }
  }
}

function equalAt(table: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let k = 0; k < ID; k++) if (table[at + k] !== id[k]) return false;
  return true;
}

/** Appends location records; grows by doubling (an index object's payload). */
export class LocationList {
  private buf = new Uint8Array(64 * LOCATION_RECORD);
  private n = 0;

  get size(): number {
    return this.n;
  }

  add(id: string, l: ChunkLocation): void {
    if ((this.n + 1) * LOCATION_RECORD > this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    const at = this.n * LOCATION_RECORD;
    const view = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    view.write(id, at, ID, 'hex');
    view.write(l.pack, at + ID, PACK, 'hex');
    view.writeUInt32LE(l.offset, at + ID + PACK);
    view.writeUInt32LE(l.length, at + ID + PACK + 4);
    this.n++;
  }

  toBytes(): Uint8Array {
    return this.buf.subarray(0, this.n * LOCATION_RECORD);
  }

  /** The records as a map (for checks; a ChunkMap is compact). */
  toMap(): ChunkMap {
    const m = new ChunkMap(this.n);
    addLocationRecords(m, this.toBytes());
    return m;
  }
}

/** Adds an index object's records to the map. Throws on a malformed payload (it is authenticated, so that is a bug). */
export function addLocationRecords(map: ChunkMap, raw: Uint8Array): void {
  if (raw.length % LOCATION_RECORD !== 0) throw new Error('an index object is a whole number of location records');
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let at = 0; at < b.length; at += LOCATION_RECORD) {
    const pack = b.toString('hex', at + ID, at + ID + PACK);
    map.setBytes(b.subarray(at, at + ID), { pack, offset: b.readUInt32LE(at + ID + PACK), length: b.readUInt32LE(at + ID + PACK + 4) });
  }
}
