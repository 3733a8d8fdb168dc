// Where each chunk lives: chunk id -> (pack, offset, length), in one flat
// open-addressing table shared with ChunkIdSet (a repository can hold millions of
// chunks; the backup process has a 400 MiB budget). Pack ids are interned:
// a location costs 12 bytes next to the 32-byte id.
//
// Index object encoding ("locations-v1"): records of
//   id (32 bytes) | pack id (16 bytes) | offset (u32le) | length (u32le)
import { ID, IdTable } from './id-set.js';

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

/** id -> location; the three u32 values of a slot are pack number, offset, length. */
export class ChunkMap extends IdTable {
  private readonly packIds: string[] = [];
  private readonly packNo = new Map<string, number>();

  constructor(expected = 1024) {
    super(expected, 3);
  }

  /** The packs some entry names. */
  packs(): IterableIterator<string> {
    return this.packNo.keys();
  }

  get(id: string): ChunkLocation | undefined {
    return this.getBytes(Buffer.from(id, 'hex'));
  }

  getBytes(id: Uint8Array): ChunkLocation | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.locationAt(i);
  }

  /** Keeps the first location recorded for an id; true when the id was new. */
  set(id: string, l: ChunkLocation): boolean {
    return this.setBytes(Buffer.from(id, 'hex'), l);
  }

  setBytes(id: Uint8Array, l: ChunkLocation): boolean {
    const i = this.addSlot(id);
    if (i < 0) return false;
    let p = this.packNo.get(l.pack);
    if (p === undefined) {
      p = this.packIds.length;
      this.packIds.push(l.pack);
      this.packNo.set(l.pack, p);
    }
    this.values[i * 3] = p;
    this.values[i * 3 + 1] = l.offset;
    this.values[i * 3 + 2] = l.length;
    return true;
  }

  *entries(): IterableIterator<[string, ChunkLocation]> {
    for (const i of this.usedSlots()) yield [this.idHex(i), this.locationAt(i)];
  }

  private locationAt(i: number): ChunkLocation {
    return { pack: this.packIds[this.values[i * 3]!]!, offset: this.values[i * 3 + 1]!, length: this.values[i * 3 + 2]! };
  }
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
