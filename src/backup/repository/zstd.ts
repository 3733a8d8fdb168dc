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

/** Compressed bytes, or null when compression would not make the data smaller. */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array | null {
  cctx ??= new zstd.CCtx();
  const dst = new Uint8Array(zstd.compressBound(data.length));
  const n = cctx.compress(dst, data, level);
  return n < data.length ? dst.subarray(0, n) : null;
}

/** Decompresses into at most maxSize bytes; throws if the frame is larger or malformed. */
export function zstdDecompress(frame: Uint8Array, maxSize: number): Uint8Array {
  dctx ??= new zstd.DCtx();
  const dst = new Uint8Array(maxSize);
  const n = dctx.decompress(dst, frame);
  return dst.subarray(0, n);
}
