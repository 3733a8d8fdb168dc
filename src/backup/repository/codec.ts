// The main thread's handle on the crypto workers. Buffers are transferred, not
// copied: hash() takes ownership of its argument and hands it back with the id,
// so the bytes can be passed on to seal() without another copy.
import { availableParallelism } from 'node:os';
import type { CryptoRequest, CryptoResponse, CryptoWorkerInit } from './crypto-protocol.js';
import { AuthError } from './errors.js';
import type { RepositoryKeys } from './keys.js';
import { bufferOf, owned, WorkerPool, type WireError } from './worker-pool.js';

export type HashSealResult = { readonly zero: true } | { readonly zero: false; readonly id: string; readonly length: number; readonly sealed: Uint8Array };

export type HashResult = { readonly zero: true } | { readonly zero: false; readonly id: string; readonly data: Uint8Array };

function revive(e: WireError): Error {
  if (e.name === 'AuthError' && e.objectKey !== undefined) return new AuthError(e.objectKey, e.detail ?? e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

export class ChunkCodec {
  private readonly pool: WorkerPool<CryptoRequest, CryptoResponse>;

  constructor(keys: RepositoryKeys, chunkSize: number, level: number, workers = availableParallelism()) {
    const init: CryptoWorkerInit = { encKey: keys.encKey, idKey: keys.idKey, chunkSize, level };
    this.pool = new WorkerPool(new URL('./crypto-worker.js', import.meta.url), workers, init, revive);
  }

  get workers(): number {
    return this.pool.size;
  }

  /** Takes ownership of `data` (it is detached here when it owns its buffer). */
  async hash(data: Uint8Array): Promise<HashResult> {
    const d = owned(data);
    const res = await this.pool.run({ op: 'hash', data: d }, [bufferOf(d)]);
    if (res.op !== 'hash') throw new Error('crypto worker answered out of protocol');
    return res.zero ? { zero: true } : { zero: false, id: res.id, data: res.data };
  }

  /** Zero check, id and sealed chunk object in one round trip. Takes ownership of `data`. */
  async hashSeal(data: Uint8Array): Promise<HashSealResult> {
    const d = owned(data);
    const res = await this.pool.run({ op: 'hashSeal', data: d }, [bufferOf(d)]);
    if (res.op !== 'hashSeal') throw new Error('crypto worker answered out of protocol');
    return res.zero ? { zero: true } : { zero: false, id: res.id, length: res.length, sealed: res.sealed };
  }

  /** Takes ownership of `data`. */
  async seal(id: string, data: Uint8Array): Promise<Uint8Array> {
    const d = owned(data);
    const res = await this.pool.run({ op: 'seal', id, data: d }, [bufferOf(d)]);
    if (res.op !== 'seal') throw new Error('crypto worker answered out of protocol');
    return res.sealed;
  }

  /** Authenticated plaintext of a chunk object, or AuthError. Takes ownership of `sealed`. */
  async open(id: string, sealed: Uint8Array, checkId = true): Promise<Uint8Array> {
    const s = owned(sealed);
    const res = await this.pool.run({ op: 'open', id, sealed: s, checkId }, [bufferOf(s)]);
    if (res.op !== 'open') throw new Error('crypto worker answered out of protocol');
    return res.data;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
