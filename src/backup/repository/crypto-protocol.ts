// Messages between the repository and its crypto worker threads.
export interface CryptoWorkerInit {
  readonly encKey: Uint8Array;
  readonly idKey: Uint8Array;
  readonly chunkSize: number;
  readonly level: number;
}

export type CryptoRequest =
  /** Zero check, then chunk id; the data comes back for sealing if it is needed. */
  | { readonly op: 'hash'; readonly data: Uint8Array }
  | { readonly op: 'seal'; readonly id: string; readonly data: Uint8Array }
  /** Zero check, id, and sealing in one round trip (when the chunk is likely new). */
  | { readonly op: 'hashSeal'; readonly data: Uint8Array }
  /** checkId: also recompute the id over the plaintext (verify does; restore relies on the tag). */
  | { readonly op: 'open'; readonly id: string; readonly sealed: Uint8Array; readonly checkId: boolean };

export type CryptoResponse =
  | { readonly op: 'hash'; readonly zero: true }
  | { readonly op: 'hash'; readonly zero: false; readonly id: string; readonly data: Uint8Array }
  | { readonly op: 'seal'; readonly sealed: Uint8Array }
  | { readonly op: 'hashSeal'; readonly zero: true }
  | { readonly op: 'hashSeal'; readonly zero: false; readonly id: string; readonly length: number; readonly sealed: Uint8Array }
  | { readonly op: 'open'; readonly data: Uint8Array };
