// The main thread's handle on the crypto workers. Chunk bytes live in slots
// of a shared slab (chunk-slab.ts) and requests name slots; a chunk outside
// the slab is handed over by transfer instead. Ownership: hash() leaves the
// data with the caller; seal(), hashSeal() and open() consume their input
// (its slot is freed when the worker is done) and return a result the caller
// owns and frees with release() once it is written out.
import { availableParallelism } from 'node:os';
import { CHUNK_SEAL_OVERHEAD, type ChunkIdAlgorithm } from './chunk-format.js';
import { ChunkSlab } from './chunk-slab.js';
import type { ChunkRef, CryptoRequest, CryptoResponse, CryptoWorkerInit } from './crypto-protocol.js';
import { AuthError } from './errors.js';
import { bufferOf, owned, WorkerPool, type WireError } from './worker-pool.js';

export type HashSealResult = { readonly zero: true } | { readonly zero: false; readonly id: string; readonly length: number; readonly sealed: Uint8Array };

export type HashResult = { readonly zero: true; readonly data: Uint8Array } | { readonly zero: false; readonly id: string; readonly data: Uint8Array };

/**
 * Slots per repository: enough for a backup's pipeline (chunks admitted, the
 * pack being filled, packs uploading, reads in flight) plus a restore's
 * read-ahead. 96 MiB of address space at 1 MiB chunks; pages are touched,
 * and count in RSS, only as slots are first used.
 */
const SLAB_SLOTS = 96;
/** ...and never more than this much address space, whatever the chunk size. */
const SLAB_MAX_BYTES = 256 * 1024 * 1024;

function revive(e: WireError): Error {
  if (e.name === 'AuthError' && e.objectKey !== undefined) return new AuthError(e.objectKey, e.detail ?? e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

export class ChunkCodec {
  private readonly pool: WorkerPool<CryptoRequest, CryptoResponse>;
  /** Slots of chunkSize + the sealing overhead: any plaintext or sealed chunk fits one. */
  readonly slab: ChunkSlab;

  constructor(
    keys: { readonly encKey: Uint8Array; readonly idKey: Uint8Array },
    idAlgorithm: ChunkIdAlgorithm,
    chunkSize: number,
    level: number,
    workers = availableParallelism(),
  ) {
    const slotSize = chunkSize + CHUNK_SEAL_OVERHEAD;
    this.slab = new ChunkSlab(slotSize, Math.max(4, Math.min(SLAB_SLOTS, Math.floor(SLAB_MAX_BYTES / slotSize))));
    const init: CryptoWorkerInit = { encKey: keys.encKey, idKey: keys.idKey, idAlgorithm, chunkSize, level, slab: this.slab.sab, slotSize: this.slab.slotSize };
    this.pool = new WorkerPool(new URL('./crypto-worker.js', import.meta.url), workers, init, revive);
  }

  get workers(): number {
    return this.pool.size;
  }

  /** A buffer for `length` bytes of a chunk: a slot when one is free, else its own memory. */
  chunkBuffer(length: number): Uint8Array {
    return this.slab.take(length) ?? new Uint8Array(length);
  }

  /** A copy of `data` the caller may hand to seal() or hashSeal(). */
  copy(data: Uint8Array): Uint8Array {
    const c = this.chunkBuffer(data.length);
    c.set(data);
    return c;
  }

  /** Frees a chunk buffer this codec gave out (a slot); anything else is left to the GC. */
  release(data: Uint8Array | null | undefined): void {
    this.slab.release(data);
  }

  /** Zero check and id. `data` stays the caller's: pass it on to seal(), or release() it. */
  async hash(data: Uint8Array): Promise<HashResult> {
    const { ref, transfer } = this.wire(data);
    const res = await this.pool.run({ op: 'hash', data: ref }, transfer);
    if (res.op !== 'hash') throw new Error('crypto worker answered out of protocol');
    const d = 'slot' in res.data ? data : res.data.bytes; // bytes handed over come back
    return res.zero ? { zero: true, data: d } : { zero: false, id: res.id, data: d };
  }

  /** Zero check, id and sealed chunk object in one round trip. Consumes `data`; release() the sealed chunk once stored. */
  async hashSeal(data: Uint8Array): Promise<HashSealResult> {
    const { res, result } = await this.consume(data, (ref, out) => ({ op: 'hashSeal', data: ref, out }), (r) => {
      if (r.op !== 'hashSeal') throw new Error('crypto worker answered out of protocol');
      return r.zero ? null : r.sealed;
    });
    if (res.op !== 'hashSeal' || res.zero || !result) return { zero: true };
    return { zero: false, id: res.id, length: res.length, sealed: result };
  }

  /** Seals `data` under `id`. Consumes `data`; release() the result once it is stored. */
  async seal(id: string, data: Uint8Array): Promise<Uint8Array> {
    const { result } = await this.consume(data, (ref, out) => ({ op: 'seal', id, data: ref, out }), (r) => {
      if (r.op !== 'seal') throw new Error('crypto worker answered out of protocol');
      return r.sealed;
    });
    return result!;
  }

  /** Authenticated plaintext of a chunk, or AuthError. Consumes `sealed`; release() the plaintext once used. */
  async open(id: string, sealed: Uint8Array, checkId = true): Promise<Uint8Array> {
    const { result } = await this.consume(sealed, (ref, out) => ({ op: 'open', id, sealed: ref, checkId, out }), (r) => {
      if (r.op !== 'open') throw new Error('crypto worker answered out of protocol');
      return r.data;
    });
    return result!;
  }

  /**
   * Runs a request that consumes `input`, offering a free slot for its output.
   * The input's slot, and the output slot unless the worker wrote the result
   * there, are freed once the worker has answered (or failed).
   */
  private async consume(
    input: Uint8Array,
    request: (data: ChunkRef, out: number | null) => CryptoRequest,
    resultOf: (res: CryptoResponse) => ChunkRef | null,
  ): Promise<{ res: CryptoResponse; result: Uint8Array | null }> {
    const out = this.slab.take();
    const outSlot = out ? this.slab.slotOf(out) : null;
    let kept = false;
    try {
      const { ref, transfer } = this.wire(input);
      const res = await this.pool.run(request(ref, outSlot), transfer);
      const r = resultOf(res);
      if (!r || 'bytes' in r) return { res, result: r ? r.bytes : null };
      if (r.slot !== outSlot) throw new Error('crypto worker wrote a slot it was not given');
      kept = true;
      return { res, result: this.slab.view(r.slot, r.length) };
    } finally {
      this.release(input);
      if (out && !kept) this.release(out);
    }
  }

  /** How a chunk travels: its slot number, or (outside the slab) its own buffer, transferred. */
  private wire(data: Uint8Array): { ref: ChunkRef; transfer: ArrayBuffer[] } {
    if (this.slab.owns(data)) return { ref: { slot: this.slab.slotOf(data), length: data.length }, transfer: [] };
    const d = owned(data); // a copy when it is a view of a larger buffer
    return { ref: { bytes: d }, transfer: [bufferOf(d)] };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
