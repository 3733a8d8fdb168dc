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
}

export interface ObjectStore {
  readonly capabilities: ObjectStoreCapabilities;
  /** Human-readable location for logs and errors (never a secret). */
  readonly describe: string;
  put(key: string, data: Uint8Array, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Throws ObjectNotFoundError when absent. */
  get(key: string, opts?: { signal?: AbortSignal }): Promise<Uint8Array>;
  has(key: string): Promise<boolean>;
  /** Keys under prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
}
