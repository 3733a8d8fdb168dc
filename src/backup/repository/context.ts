// What the repository's parts share once it is open, and the sealed-object
// helpers they use for metadata (manifests, indexes, locks, gc records).
import { ObjectNotFoundError, type ObjectStore } from '../store/object-store.js';
import { openObject, sealObject } from './chunk-format.js';
import type { ChunkCodec } from './codec.js';
import type { RepositoryConfig } from './config.js';
import type { RepositoryKeys } from './keys.js';
import type { KnownChunks } from './known.js';
import type { Semaphore } from './semaphore.js';

export interface RepositoryOptions {
  /** Crypto worker threads. Default: os.availableParallelism(). */
  readonly workers?: number;
  /** Store operations (gets, puts, has) in flight at once. Default 8. */
  readonly inFlight?: number;
  /** Chunk bytes a writer holds at once, plaintext and sealed. Default 32 MiB. */
  readonly maxBytesInFlight?: number;
  /** Chunks a reader fetches and opens ahead of its consumer. Default 16. */
  readonly readAhead?: number;
  /** A pack is uploaded once its chunk objects reach this many bytes. Default 8 MiB. */
  readonly packSize?: number;
  /** Pack uploads a writer has in flight at once (each holds a pack in memory). Default 2. */
  readonly packUploads?: number;
  /** How often a writer renews its lock and publishes its chunk references. Default 30 s. */
  readonly lockRenewMs?: number;
  /** A lock (or a gc run) not renewed for this long is considered dead. Default 30 min. */
  readonly lockExpiryMs?: number;
  /**
   * A gc run's record not renewed for this long is dead: committing writers stop
   * waiting for it, and the run itself stops deleting at half of it. Must exceed
   * twice the clock skew between hosts. Default 2 min.
   */
  readonly gcExpiryMs?: number;
  /** gc waits this long between listing chunks and reading locks. Default lockRenewMs + 5 s. */
  readonly gcSettleMs?: number;
  /** How often a committing writer polls for a running gc to finish. Default 1 s. */
  readonly gcPollMs?: number;
}

export type ResolvedOptions = Required<RepositoryOptions>;

export interface RepoContext {
  readonly store: ObjectStore;
  readonly config: RepositoryConfig;
  readonly keys: RepositoryKeys;
  readonly codec: ChunkCodec;
  /** Bounds store operations in flight, across every writer and reader of this repository. */
  readonly storeSlots: Semaphore;
  readonly known: KnownChunks;
  readonly options: ResolvedOptions;
}

export async function putSealed(ctx: RepoContext, key: string, kind: string, name: string, plain: Uint8Array): Promise<void> {
  const sealed = sealObject(ctx.keys.encKey, kind, name, plain);
  await ctx.storeSlots.run(() => ctx.store.put(key, sealed));
}

/** The authenticated plaintext, or null when the object is absent. */
export async function getSealed(ctx: RepoContext, key: string, kind: string, name: string): Promise<Uint8Array | null> {
  let sealed: Uint8Array;
  try {
    sealed = await ctx.storeSlots.run(() => ctx.store.get(key));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return null;
    throw err;
  }
  return openObject(ctx.keys.encKey, kind, name, key, sealed);
}

export async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of store.list(prefix)) out.push(k);
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
