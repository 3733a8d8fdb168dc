// zstd through zstd-napi's low-level binding (libzstd 1.5.x compiled from the
// source the package ships; see ADR 0005 for the choice). We use contexts
// directly so every call reuses one context per thread and decompression
// writes into a buffer of a size we choose: a chunk can never inflate past it.
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';

const require = createRequire(import.meta.url);
// The binding is a CommonJS module that assigns a native addon to
// module.exports, which ESM named imports cannot see.
const zstd = require('zstd-napi/binding.js') as typeof ZstdBinding;

let cctx: ZstdBinding.CCtx | undefined;
let dctx: ZstdBinding.DCtx | undefined;

export function zstdVersion(): string {
  return zstd.versionString();
}

let scratch: Uint8Array | undefined;

/**
 * Compressed bytes, or null when compression would not make the data smaller.
 * The result is a view of a per-thread scratch buffer (no allocation and no
 * zero-fill per chunk): it is valid until the next call, so use it at once.
 */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array | null {
  cctx ??= new zstd.CCtx();
  if (looksIncompressible(data, level)) return null;
  const bound = zstd.compressBound(data.length);
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  const n = cctx.compress(scratch, data, level);
  return n < data.length ? scratch.subarray(0, n) : null;
}

const SAMPLE = 32 * 1024;

/**
 * Two 32 KiB samples (the start and the middle) that zstd cannot shrink by 3 %
 * mark a chunk as incompressible (random, encrypted or already compressed
 * data): it is stored raw without compressing the whole of it, at 1/16 of the
 * cost for a 1 MiB chunk. A chunk compressible only outside both samples is
 * stored raw too; that costs ratio, never correctness.
 */
function looksIncompressible(data: Uint8Array, level: number): boolean {
  if (data.length < 8 * SAMPLE) return false;
  const bound = zstd.compressBound(SAMPLE);
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(Math.max(bound, zstd.compressBound(data.length)));
  const mid = Math.floor(data.length / 2);
  for (const at of [0, mid]) {
    const n = cctx!.compress(scratch, data.subarray(at, at + SAMPLE), level);
    if (n < SAMPLE * 0.97) return false;
  }
  return true;
}

/**
 * Decompresses into at most maxSize bytes; throws if the frame is larger or
 * malformed. With `into` (at least maxSize bytes) the result is a view of it:
 * no allocation and no zero-fill per chunk.
 */
export function zstdDecompress(frame: Uint8Array, maxSize: number, into?: Uint8Array): Uint8Array {
  dctx ??= new zstd.DCtx();
  if (into && into.length < maxSize) throw new RangeError('zstd output buffer is shorter than the chunk size');
  const dst = into ? into.subarray(0, maxSize) : new Uint8Array(maxSize);
  const n = dctx.decompress(dst, frame);
  return dst.subarray(0, n);
}
