// Sets and maps of 32-byte chunk ids in one flat table (open addressing,
// linear probing). A repository can know millions of chunks; as hex strings in
// a Set they would cost ~120 bytes each, here they cost under 70, and the
// backup process has a 400 MiB budget. Ids are HMAC outputs, so their first
// bytes are already a uniform hash.
export const ID = 32;

/** The table: each entry an id plus `width` u32 values (0 for a set). */
export class IdTable {
  private slots: Uint8Array;
  private used: Uint8Array;
  /** `width` values per slot, for subclasses that map ids to something. */
  protected values: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(
    expected: number,
    private readonly width: number,
  ) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.slots = new Uint8Array(cap * ID);
    this.used = new Uint8Array(cap);
    this.values = new Uint32Array(cap * width);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  has(id: string): boolean {
    return this.find(Buffer.from(id, 'hex')) >= 0;
  }

  /** The slot of `id`, or -1. */
  protected find(id: Uint8Array): number {
    for (let i = this.start(id); ; i = (i + 1) & this.mask) {
      if (!this.used[i]) return -1;
      if (equalAt(this.slots, i * ID, id)) return i;
    }
  }

  /** Adds `id` and returns its new slot (for the caller's values), or -1 when it was there already. */
  protected addSlot(id: Uint8Array): number {
    if (id.length !== ID) throw new Error('a chunk id is 32 bytes');
    if (this.find(id) >= 0) return -1;
    if ((this.count + 1) * 2 > this.used.length) this.grow();
    this.count++;
    return this.place(id);
  }

  /** The slots in use, in table order. */
  protected *usedSlots(): IterableIterator<number> {
    for (let i = 0; i < this.used.length; i++) if (this.used[i]) yield i;
  }

  protected idBytes(slot: number): Uint8Array {
    return this.slots.subarray(slot * ID, (slot + 1) * ID);
  }

  protected idHex(slot: number): string {
    return Buffer.from(this.idBytes(slot)).toString('hex');
  }

  private start(id: Uint8Array): number {
    return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) & this.mask;
  }

  private place(id: Uint8Array): number {
    let i = this.start(id);
    while (this.used[i]) i = (i + 1) & this.mask;
    this.used[i] = 1;
    this.slots.set(id, i * ID);
    return i;
  }

  private grow(): void {
    const oldSlots = this.slots;
    const oldUsed = this.used;
    const oldValues = this.values;
    const cap = oldUsed.length * 2;
    this.slots = new Uint8Array(cap * ID);
    this.used = new Uint8Array(cap);
    this.values = new Uint32Array(cap * this.width);
    this.mask = cap - 1;
    for (let i = 0; i < oldUsed.length; i++) {
      if (!oldUsed[i]) continue;
      const j = this.place(oldSlots.subarray(i * ID, (i + 1) * ID));
      for (let k = 0; k < this.width; k++) this.values[j * this.width + k] = oldValues[i * this.width + k]!;
    }
  }
}

function equalAt(table: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let k = 0; k < ID; k++) if (table[at + k] !== id[k]) return false;
  return true;
}

export class ChunkIdSet extends IdTable {
  constructor(expected = 1024) {
    super(expected, 0);
  }

  /** True when the id was not yet in the set. */
  add(id: string): boolean {
    return this.addBytes(Buffer.from(id, 'hex'));
  }

  addBytes(id: Uint8Array): boolean {
    return this.addSlot(id) >= 0;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (const i of this.usedSlots()) yield this.idHex(i);
  }

  /** All ids, concatenated as raw 32-byte values (the index object encoding). */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.size * ID);
    let at = 0;
    for (const i of this.usedSlots()) {
      out.set(this.idBytes(i), at);
      at += ID;
    }
    return out;
  }
}

/** Splits an index object's payload (raw 32-byte ids) into the set. */
export function addIdBytes(set: ChunkIdSet, raw: Uint8Array): void {
  if (raw.length % ID !== 0) throw new Error('an id list is a whole number of 32-byte ids');
  for (let at = 0; at < raw.length; at += ID) set.addBytes(raw.subarray(at, at + ID));
}
