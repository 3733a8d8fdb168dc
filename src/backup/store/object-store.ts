// The repository's storage port: a flat key → bytes store. A local directory and
// S3-compatible object storage implement it; the repository format above it is
// the same on both, so a repository can be copied or read from either.

export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`object ${key} not found`);
  }
}

export interface ObjectStoreCapabilities {
  /** A put is all-or-nothing: a reader never sees a partial object. */
  readonly atomicPut: boolean;
  /** Whether `put` with ifAbsent is enforced by the store itself. */
  readonly conditionalPut: boolean;
  /** Whether getRange honours `into` (reads into the caller's buffer). */
  readonly readInto: boolean;
}

/** A byte range of an object: `length` bytes from `offset`, or its last `suffix` bytes. */
export type ByteRange = { readonly offset: number; readonly length: number } | { readonly suffix: number };

export interface ObjectStore {
  readonly capabilities: ObjectStoreCapabilities;
  /** Human-readable location for logs and errors (never a secret). */
  readonly describe: string;
  /** Parts are stored back to back as one object (a pack is written without first copying it into one buffer). */
  put(key: string, data: Uint8Array | readonly Uint8Array[], opts?: { signal?: AbortSignal }): Promise<void>;
  /** Throws ObjectNotFoundError when absent. */
  get(key: string, opts?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Part of an object (pack files are read a chunk at a time). A range past the
   * end yields the bytes that exist, possibly none. Throws ObjectNotFoundError when absent.
   */
  /**
   * `into` (at least the range's length): a buffer the store may read an
   * offset range into, returning a view of it; a store that cannot returns its own.
   */
  getRange(key: string, range: ByteRange, opts?: { signal?: AbortSignal; into?: Uint8Array }): Promise<Uint8Array>;
  has(key: string): Promise<boolean>;
  /** Keys under prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
}
