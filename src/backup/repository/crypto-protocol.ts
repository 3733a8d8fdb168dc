// Messages between the repository and its crypto worker threads. Chunk bytes
// travel as a slot of the shared chunk slab (chunk-slab.ts) when they are in
// one, else as a buffer handed over by transfer. `out` is a free slot the
// worker may write its result into; it says in its answer whether it did.
import type { ChunkIdAlgorithm } from './chunk-format.js';

export interface CryptoWorkerInit {
  readonly encKey: Uint8Array;
  readonly idKey: Uint8Array;
  readonly idAlgorithm: ChunkIdAlgorithm;
  readonly chunkSize: number;
  readonly level: number;
  readonly slab: SharedArrayBuffer;
  readonly slotSize: number;
}

export type ChunkRef = { readonly slot: number; readonly length: number } | { readonly bytes: Uint8Array };

export type CryptoRequest =
  /** Zero check, then chunk id. The data stays the caller's (bytes come back in `data`). */
  | { readonly op: 'hash'; readonly data: ChunkRef }
  | { readonly op: 'seal'; readonly id: string; readonly data: ChunkRef; readonly out: number | null }
  /** Zero check, id, and sealing in one round trip (when the chunk is likely new). */
  | { readonly op: 'hashSeal'; readonly data: ChunkRef; readonly out: number | null }
  /** checkId: also recompute the id over the plaintext (verify does; restore relies on the tag). */
  | { readonly op: 'open'; readonly id: string; readonly sealed: ChunkRef; readonly checkId: boolean; readonly out: number | null };

export type CryptoResponse =
  | { readonly op: 'hash'; readonly zero: true; readonly data: ChunkRef }
  | { readonly op: 'hash'; readonly zero: false; readonly id: string; readonly data: ChunkRef }
  | { readonly op: 'seal'; readonly sealed: ChunkRef }
  | { readonly op: 'hashSeal'; readonly zero: true }
  | { readonly op: 'hashSeal'; readonly zero: false; readonly id: string; readonly length: number; readonly sealed: ChunkRef }
  | { readonly op: 'open'; readonly data: ChunkRef };
