// Worker thread body: the CPU-heavy half of the data path (zero check, keyed
// chunk id, zstd, AES-GCM, and on reads the reverse plus authentication).
// Chunks are read from and written to slots of the shared slab the main
// thread names; only chunks outside it travel as transferred buffers.
import { parentPort, workerData } from 'node:worker_threads';
import { CHUNK_SEAL_OVERHEAD, computeChunkId, openChunk, sealChunk, sealChunkInto, type ChunkIdKey } from './chunk-format.js';
import type { ChunkRef, CryptoRequest, CryptoResponse, CryptoWorkerInit } from './crypto-protocol.js';
import { AuthError } from './errors.js';
import { bufferOf, owned, type WireError } from './worker-pool.js';

const init = workerData as CryptoWorkerInit;
const encKey = Buffer.from(init.encKey);
const idKey: ChunkIdKey = { key: Buffer.from(init.idKey), algorithm: init.idAlgorithm };
const zeros = Buffer.alloc(init.chunkSize);

function bytesOf(ref: ChunkRef): Uint8Array {
  return 'slot' in ref ? new Uint8Array(init.slab, ref.slot * init.slotSize, ref.length) : ref.bytes;
}

function slotView(slot: number): Uint8Array {
  return new Uint8Array(init.slab, slot * init.slotSize, init.slotSize);
}

function isZero(d: Uint8Array): boolean {
  return d.length <= zeros.length && Buffer.from(d.buffer, d.byteOffset, d.byteLength).equals(zeros.subarray(0, d.byteLength));
}

/**
 * Seals into slot `out` when there is one. A chunk that compressed well is
 * sent back as a small buffer of its own instead, leaving the slot free: a
 * pack of hundreds of 12 KiB text chunks must not hold hundreds of slots.
 */
function sealTo(id: string, data: Uint8Array, out: number | null): ChunkRef {
  if (out !== null && init.slotSize >= data.length + CHUNK_SEAL_OVERHEAD) {
    const o = slotView(out);
    const n = sealChunkInto(encKey, id, data, init.level, o);
    return n * 2 >= init.slotSize ? { slot: out, length: n } : { bytes: o.slice(0, n) };
  }
  return { bytes: sealChunk(encKey, id, data, init.level) };
}

function handle(req: CryptoRequest): CryptoResponse {
  switch (req.op) {
    case 'hash': {
      const d = bytesOf(req.data);
      if (isZero(d)) return { op: 'hash', zero: true, data: req.data };
      return { op: 'hash', zero: false, id: computeChunkId(idKey, d), data: req.data };
    }
    case 'hashSeal': {
      const d = bytesOf(req.data);
      if (isZero(d)) return { op: 'hashSeal', zero: true };
      const id = computeChunkId(idKey, d);
      return { op: 'hashSeal', zero: false, id, length: d.length, sealed: sealTo(id, d, req.out) };
    }
    case 'seal':
      return { op: 'seal', sealed: sealTo(req.id, bytesOf(req.data), req.out) };
    case 'open': {
      const into = req.out !== null ? slotView(req.out) : undefined;
      const data = openChunk(encKey, idKey, req.id, bytesOf(req.sealed), init.chunkSize, req.checkId, into);
      if (into && data.buffer === init.slab) return { op: 'open', data: { slot: req.out!, length: data.length } };
      return { op: 'open', data: { bytes: owned(data) } };
    }
  }
}

/** The buffers the answer hands over (slots are shared, not transferred). */
function transfers(res: CryptoResponse): ArrayBuffer[] {
  const refs = res.op === 'hashSeal' ? (res.zero ? [] : [res.sealed]) : res.op === 'seal' ? [res.sealed] : [res.data];
  return refs.flatMap((r) => ('bytes' in r ? [bufferOf(r.bytes)] : []));
}

parentPort!.on('message', (msg: { seq: number; req: CryptoRequest }) => {
  try {
    const res = handle(msg.req);
    parentPort!.postMessage({ seq: msg.seq, ok: true, res }, transfers(res));
  } catch (err) {
    const error: WireError =
      err instanceof AuthError
        ? { name: err.name, message: err.message, objectKey: err.objectKey, detail: err.detail }
        : { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) };
    parentPort!.postMessage({ seq: msg.seq, ok: false, error });
  }
});
