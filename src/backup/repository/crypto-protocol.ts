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
  | { readonly op: 'open'; readonly id: string; readonly sealed: Uint8Array };

export type CryptoResponse =
  | { readonly op: 'hash'; readonly zero: true }
  | { readonly op: 'hash'; readonly zero: false; readonly id: string; readonly data: Uint8Array }
  | { readonly op: 'seal'; readonly sealed: Uint8Array }
  | { readonly op: 'open'; readonly data: Uint8Array };
