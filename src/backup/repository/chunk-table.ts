// Which chunk holds each chunk-sized slot of a volume: slot i covers bytes
// [i*chunkSize, min((i+1)*chunkSize, volumeSize)). A slot is zero (never
// stored) or references one chunk id. Kept as flat arrays: a 1 TiB volume has
// a million slots, 33 MiB here instead of a million small objects.
//
// Manifest encoding ("runs-v1"): for each run of consecutive data slots,
// u32le first slot, u32le run length, then the run's 32-byte ids. Slots in no
// run are zero.
const ID = 32;
const UNSET = 0;
const ZERO = 1;
const DATA = 2;

export type Slot = { readonly kind: 'zero' } | { readonly kind: 'data'; readonly id: string };

export class ChunkTable {
  readonly slots: number;
  private readonly state: Uint8Array;
  private readonly ids: Uint8Array;

  constructor(
    readonly volumeSize: number,
    readonly chunkSize: number,
  ) {
    this.slots = Math.ceil(volumeSize / chunkSize);
    if (this.slots > 0xffffffff) throw new Error('volume has too many chunks for the manifest encoding');
    this.state = new Uint8Array(this.slots);
    this.ids = new Uint8Array(this.slots * ID);
  }

  slotLength(i: number): number {
    return Math.min(this.chunkSize, this.volumeSize - i * this.chunkSize);
  }

  isSet(i: number): boolean {
    return this.state[i] !== UNSET;
  }

  setZero(i: number): void {
    this.state[i] = ZERO;
  }

  setData(i: number, id: string): void {
    this.ids.set(Buffer.from(id, 'hex'), i * ID);
    this.state[i] = DATA;
  }

  clear(i: number): void {
    this.state[i] = UNSET;
  }

  get(i: number): Slot {
    const s = this.state[i];
    if (s === DATA) return { kind: 'data', id: this.idAt(i) };
    if (s === ZERO) return { kind: 'zero' };
    throw new Error(`slot ${i} is not set`);
  }

  idAt(i: number): string {
    return Buffer.from(this.ids.subarray(i * ID, (i + 1) * ID)).toString('hex');
  }

  /** Raw id bytes of a data slot (a view: copy before keeping). */
  idBytesAt(i: number): Uint8Array {
    return this.ids.subarray(i * ID, (i + 1) * ID);
  }

  firstUnset(): number {
    return this.state.indexOf(UNSET);
  }

  countUnset(): number {
    let n = 0;
    for (const s of this.state) if (s === UNSET) n++;
    return n;
  }

  isData(i: number): boolean {
    return this.state[i] === DATA;
  }

  /** Slot indexes of data slots, in order. */
  *dataSlots(): IterableIterator<number> {
    for (let i = 0; i < this.slots; i++) if (this.state[i] === DATA) yield i;
  }

  encode(): Uint8Array {
    const parts: Uint8Array[] = [];
    let i = 0;
    while (i < this.slots) {
      if (this.state[i] !== DATA) {
        i++;
        continue;
      }
      let j = i;
      while (j < this.slots && this.state[j] === DATA) j++;
      const head = Buffer.alloc(8);
      head.writeUInt32LE(i, 0);
      head.writeUInt32LE(j - i, 4);
      parts.push(head, this.ids.subarray(i * ID, j * ID));
      i = j;
    }
    return Buffer.concat(parts);
  }

  static decode(volumeSize: number, chunkSize: number, bytes: Uint8Array): ChunkTable {
    const t = new ChunkTable(volumeSize, chunkSize);
    t.state.fill(ZERO);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    let last = -1;
    while (at < buf.length) {
      if (at + 8 > buf.length) throw new Error('truncated chunk table');
      const first = buf.readUInt32LE(at);
      const n = buf.readUInt32LE(at + 4);
      at += 8;
      if (n === 0 || first <= last || first + n > t.slots || at + n * ID > buf.length) throw new Error('malformed chunk table');
      t.ids.set(buf.subarray(at, at + n * ID), first * ID);
      t.state.fill(DATA, first, first + n);
      at += n * ID;
      last = first + n - 1;
    }
    return t;
  }
}
