// Worker thread body: the CPU-heavy half of the data path (zero check, HMAC
// chunk id, zstd, AES-GCM, and on reads the reverse plus authentication).
import { parentPort, workerData } from 'node:worker_threads';
import { computeChunkId, openChunk, sealChunk } from './chunk-format.js';
import type { CryptoRequest, CryptoResponse, CryptoWorkerInit } from './crypto-protocol.js';
import { AuthError } from './errors.js';
import { bufferOf, owned, type WireError } from './worker-pool.js';

const init = workerData as CryptoWorkerInit;
const encKey = Buffer.from(init.encKey);
const idKey = Buffer.from(init.idKey);
const zeros = Buffer.alloc(init.chunkSize);

function handle(req: CryptoRequest): { res: CryptoResponse; transfer: ArrayBuffer[] } {
  switch (req.op) {
    case 'hash': {
      const d = owned(req.data);
      if (Buffer.from(d.buffer, d.byteOffset, d.byteLength).equals(zeros.subarray(0, d.byteLength))) return { res: { op: 'hash', zero: true }, transfer: [] };
      const id = computeChunkId(idKey, d);
      return { res: { op: 'hash', zero: false, id, data: d }, transfer: [bufferOf(d)] };
    }
    case 'hashSeal': {
      const d = req.data;
      if (Buffer.from(d.buffer, d.byteOffset, d.byteLength).equals(zeros.subarray(0, d.byteLength))) return { res: { op: 'hashSeal', zero: true }, transfer: [] };
      const id = computeChunkId(idKey, d);
      const sealed = owned(sealChunk(encKey, id, d, init.level));
      return { res: { op: 'hashSeal', zero: false, id, length: d.length, sealed }, transfer: [bufferOf(sealed)] };
    }
    case 'seal': {
      const sealed = owned(sealChunk(encKey, req.id, req.data, init.level));
      return { res: { op: 'seal', sealed }, transfer: [bufferOf(sealed)] };
    }
    case 'open': {
      const data = owned(openChunk(encKey, idKey, req.id, req.sealed, init.chunkSize, req.checkId));
      return { res: { op: 'open', data }, transfer: [bufferOf(data)] };
    }
  }
}

parentPort!.on('message', (msg: { seq: number; req: CryptoRequest }) => {
  try {
    const { res, transfer } = handle(msg.req);
    parentPort!.postMessage({ seq: msg.seq, ok: true, res }, transfer);
  } catch (err) {
    const error: WireError =
      err instanceof AuthError
        ? { name: err.name, message: err.message, objectKey: err.objectKey, detail: err.detail }
        : { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) };
    parentPort!.postMessage({ seq: msg.seq, ok: false, error });
  }
});
