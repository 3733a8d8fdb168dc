// A backup repository on an ObjectStore: the entry point. The format is in
// docs/adr/0005-backup-repository-format.md.
import { availableParallelism } from 'node:os';
import { ObjectNotFoundError, type ObjectStore } from '../store/object-store.js';
import { ChunkCodec } from './codec.js';
import { CONFIG_KEY, createConfig, encodeConfig, makeSlot, parseConfig, unlockConfig, type RepositoryConfig } from './config.js';
import { listKeys, type RepoContext, type RepositoryOptions, type ResolvedOptions } from './context.js';
import { BackupNotFoundError, RepositoryExistsError, RepositoryFormatError } from './errors.js';
import { collectGarbage, type GcOptions, type GcReport } from './gc.js';
import { DEFAULT_SCRYPT, type RepositorySecret, type ScryptParams, type SecretKind } from './keys.js';
import { KnownChunks } from './known.js';
import { MANIFEST_PREFIX, manifestKey, openManifest, summaryOf, validateBackupId, type BackupManifest, type BackupSummary } from './manifest.js';
import { readExtents, type Extent } from './reader.js';
import { Semaphore } from './semaphore.js';
import type { ChunkIdAlgorithm } from './chunk-format.js';
import { verifyBackups, type VerifyReport } from './verify.js';
import { openWriter, type BackupMeta, type BackupWriter } from './writer.js';

export interface RepositoryInitOptions extends RepositoryOptions {
  /** Fixed chunk size, a multiple of 4 KiB from 64 KiB to 64 MiB. Default 1 MiB. */
  readonly chunkSize?: number;
  /** zstd level for new chunks. Default 1 (see ADR 0005 for the measurements). */
  readonly compressionLevel?: number;
  /** How chunk ids are computed. Default BLAKE3 keyed (ADR 0005); 'hmac-sha256' is what format 2 repositories before it use. */
  readonly chunkId?: ChunkIdAlgorithm;
  /** scrypt cost of the first key slot. Default N=2^17, r=8, p=1. */
  readonly scrypt?: Partial<ScryptParams>;
}

export interface KeySlotInfo {
  readonly id: string;
  readonly kind: SecretKind;
  readonly createdAt: string;
}

const MiB = 1024 * 1024;

function resolveOptions(o: RepositoryOptions): ResolvedOptions {
  const lockRenewMs = o.lockRenewMs ?? 30_000;
  return {
    workers: o.workers ?? availableParallelism(),
    inFlight: o.inFlight ?? 8,
    // 32 MiB keeps both workers busy; more only holds garbage (measured: 64 MiB
    // added ~60 MiB of peak RSS and no throughput).
    maxBytesInFlight: o.maxBytesInFlight ?? 32 * MiB,
    readAhead: o.readAhead ?? 16,
    packSize: o.packSize ?? 8 * MiB,
    packUploads: o.packUploads ?? 2,
    lockRenewMs,
    lockExpiryMs: o.lockExpiryMs ?? 30 * 60_000,
    gcExpiryMs: o.gcExpiryMs ?? 120_000,
    gcSettleMs: o.gcSettleMs ?? lockRenewMs + 5_000,
    gcPollMs: o.gcPollMs ?? 1_000,
  };
}

export class Repository {
  private closed = false;

  private constructor(
    private readonly ctx: RepoContext,
    private config: RepositoryConfig,
    private readonly master: Buffer,
  ) {}

  /** Creates a repository in an empty store, with one key slot for `secret`. */
  static async init(store: ObjectStore, secret: RepositorySecret, opts: RepositoryInitOptions = {}): Promise<Repository> {
    if (await store.has(CONFIG_KEY)) throw new RepositoryExistsError(store.describe);
    const { config, master } = await createConfig(secret, {
      chunkSize: opts.chunkSize ?? MiB,
      compressionLevel: opts.compressionLevel ?? 1,
      chunkId: opts.chunkId ?? 'blake3-keyed',
      scrypt: { ...DEFAULT_SCRYPT, ...opts.scrypt },
    });
    // The key is derived again by open(): zero this copy now.
    master.fill(0);
    await store.put(CONFIG_KEY, encodeConfig(config));
    return Repository.open(store, secret, opts);
  }

  /** Opens with a passphrase or key file; WrongKeyError when no key slot accepts it. */
  static async open(store: ObjectStore, secret: RepositorySecret, opts: RepositoryOptions = {}): Promise<Repository> {
    let raw: Uint8Array;
    try {
      raw = await store.get(CONFIG_KEY);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new RepositoryFormatError(`no backup repository at ${store.describe}`);
      throw err;
    }
    const config = parseConfig(raw, store.describe);
    const { keys, master } = await unlockConfig(config, secret, store.describe);
    const options = resolveOptions(opts);
    const ctx: RepoContext = {
      store,
      config,
      keys,
      codec: new ChunkCodec(keys, config.encryption.chunkId, config.chunker.size, config.compression.level, options.workers),
      storeSlots: new Semaphore(options.inFlight),
      known: new KnownChunks(),
      options,
    };
    return new Repository(ctx, config, master);
  }

  get id(): string {
    return this.config.repositoryId;
  }

  get chunkSize(): number {
    return this.config.chunker.size;
  }

  get store(): ObjectStore {
    return this.ctx.store;
  }

  /** Starts a backup; writes its lock. See BackupWriter. */
  writer(meta: BackupMeta): Promise<BackupWriter> {
    this.assertOpen();
    return openWriter(this.ctx, meta, (id) => this.readManifest(id));
  }

  async readManifest(backupId: string): Promise<BackupManifest> {
    this.assertOpen();
    validateBackupId(backupId);
    let sealed: Uint8Array;
    try {
      sealed = await this.ctx.storeSlots.run(() => this.ctx.store.get(manifestKey(backupId)));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new BackupNotFoundError(backupId);
      throw err;
    }
    return openManifest(this.ctx.keys.encKey, backupId, sealed);
  }

  /** Every finished backup, oldest first. Reads (and authenticates) each manifest. */
  async listBackups(): Promise<BackupSummary[]> {
    const ids = await this.backupIds();
    const out = await Promise.all(ids.map(async (id) => summaryOf(await this.readManifest(id))));
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.backupId.localeCompare(b.backupId));
  }

  /** The volume's extents in order; every data extent authenticated before it is yielded. */
  /** Chunk buffers idle in the pool, ready for the next read (a gauge for tests and metrics). */
  get idleChunkBuffers(): number {
    return this.ctx.codec.slab.idle;
  }

  /** Times a chunk found no free slot and used its own memory instead (a gauge: slab sizing). */
  get chunkBufferMisses(): number {
    return this.ctx.codec.slab.misses;
  }

  /** Gives the buffer of an extent's data back for reuse, once the caller is done with it. */
  recycle(data: Uint8Array): void {
    this.ctx.codec.release(data);
  }

  /**
   * The backup's extents in volume order, every chunk authenticated. An
   * extent's data is valid until the next one is asked for; with `owned` the
   * caller keeps each and gives it back with recycle() when done with it.
   */
  async *reader(backupId: string, opts: { readonly owned?: boolean } = {}): AsyncGenerator<Extent> {
    const m = await this.readManifest(backupId);
    await this.ctx.known.update(this.ctx);
    yield* readExtents(this.ctx, m, opts);
  }

  /** Re-reads and authenticates every chunk the given backups (default: all) need. */
  async verify(backupIds?: readonly string[]): Promise<VerifyReport> {
    this.assertOpen();
    await this.ctx.known.update(this.ctx);
    return verifyBackups(this.ctx, await this.backupIds(), (id) => this.readManifest(id), backupIds);
  }

  /** Deletes the chunks that no backup and no live writer needs. */
  gc(opts?: GcOptions): Promise<GcReport> {
    this.assertOpen();
    return collectGarbage(this.ctx, opts);
  }

  /** Deleting a backup is deleting its manifest; gc reclaims its chunks. Children stay restorable. */
  async deleteBackup(backupId: string): Promise<void> {
    this.assertOpen();
    validateBackupId(backupId);
    if (!(await this.ctx.store.has(manifestKey(backupId)))) throw new BackupNotFoundError(backupId);
    await this.ctx.store.delete(manifestKey(backupId));
  }

  keySlots(): KeySlotInfo[] {
    return this.config.keySlots.map((s) => ({ id: s.id, kind: s.kind, createdAt: s.createdAt }));
  }

  /** Adds a key slot for another passphrase or key file; returns its id. */
  async addKey(secret: RepositorySecret, scrypt: Partial<ScryptParams> = {}): Promise<string> {
    this.assertOpen();
    const slot = await makeSlot(this.config.repositoryId, this.master, secret, { ...DEFAULT_SCRYPT, ...scrypt });
    await this.saveConfig({ ...this.config, keySlots: [...this.config.keySlots, slot] });
    return slot.id;
  }

  /** Removes a key slot; the last one cannot be removed. */
  async removeKey(slotId: string): Promise<void> {
    this.assertOpen();
    const rest = this.config.keySlots.filter((s) => s.id !== slotId);
    if (rest.length === this.config.keySlots.length) throw new Error(`no key slot ${slotId}`);
    if (rest.length === 0) throw new Error('refusing to remove the last key slot');
    await this.saveConfig({ ...this.config, keySlots: rest });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.master.fill(0);
    await this.ctx.codec.close();
  }

  private async saveConfig(next: RepositoryConfig): Promise<void> {
    // Re-read first: another process may have changed the slots since we opened.
    const current = parseConfig(await this.ctx.store.get(CONFIG_KEY), this.ctx.store.describe);
    if (JSON.stringify(current.keySlots) !== JSON.stringify(this.config.keySlots)) {
      throw new Error('the repository key slots changed since it was opened; reopen and retry');
    }
    await this.ctx.store.put(CONFIG_KEY, encodeConfig(next));
    this.config = next;
  }

  private async backupIds(): Promise<string[]> {
    return (await listKeys(this.ctx.store, MANIFEST_PREFIX)).map((k) => k.slice(MANIFEST_PREFIX.length)).sort();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('repository is closed');
  }
}

