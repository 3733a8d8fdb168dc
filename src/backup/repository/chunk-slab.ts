// Chunk-sized slots in one SharedArrayBuffer, shared with the crypto workers
// when they start. A chunk's bytes stay in one slot from the NBD read (or the
// pack read) through hashing, sealing and the pack write (or the NBD write);
// messages carry slot numbers, not buffers.
//
// Why: every ArrayBuffer that crosses a thread by transfer, or is allocated
// per chunk, is new external memory to V8, and each ~64 MiB of it forces a
// major collection of the whole heap. Measured on the reference machine, that
// collection was ~18 % of the backup process's CPU during a full backup, more
// than the chunk hashing; fresh 1 MiB buffers also cost ~256 page faults each.
//
// When every slot is taken (several jobs at once, a long pack of large
// chunks), take() returns null and the caller uses an ordinary buffer: the
// data path never waits for a slot, so it cannot deadlock on them.

export class ChunkSlab {
  readonly sab: SharedArrayBuffer;
  private readonly free: number[] = [];
  private readonly inUse: Uint8Array;
  /** take() calls that found no free slot (the caller then allocated): a gauge for sizing. */
  misses = 0;

  constructor(
    readonly slotSize: number,
    readonly slots: number,
  ) {
    if (!(slotSize > 0 && slots > 0)) throw new RangeError('a chunk slab needs slots');
    this.sab = new SharedArrayBuffer(slotSize * slots); // zero pages until touched: RSS grows with the slots used
    this.inUse = new Uint8Array(slots);
    for (let i = slots - 1; i >= 0; i--) this.free.push(i); // low slots first: fewer pages touched
  }

  /** A free slot's first `length` bytes (contents undefined), or null when all are taken. */
  take(length = this.slotSize): Uint8Array | null {
    if (length > this.slotSize) return null;
    const slot = this.free.pop();
    if (slot === undefined) {
      this.misses++;
      return null;
    }
    this.inUse[slot] = 1;
    return this.view(slot, length);
  }

  /** Whether `u8` starts a slot of this slab. */
  owns(u8: Uint8Array): boolean {
    return u8.buffer === this.sab && u8.byteOffset % this.slotSize === 0;
  }

  slotOf(u8: Uint8Array): number {
    if (!this.owns(u8)) throw new Error('not a chunk slab slot');
    return u8.byteOffset / this.slotSize;
  }

  view(slot: number, length: number): Uint8Array {
    return new Uint8Array(this.sab, slot * this.slotSize, length);
  }

  /** Frees the slot `u8` starts, once nothing reads or writes it; other buffers are ignored. */
  release(u8: Uint8Array | null | undefined): void {
    if (!u8 || !this.owns(u8)) return;
    this.releaseSlot(this.slotOf(u8));
  }

  releaseSlot(slot: number): void {
    // A slot freed twice would be handed to two owners at once: fail loudly instead.
    if (this.inUse[slot] !== 1) throw new Error(`chunk slab slot ${slot} released twice`);
    this.inUse[slot] = 0;
    this.free.push(slot);
  }

  get idle(): number {
    return this.free.length;
  }
}
