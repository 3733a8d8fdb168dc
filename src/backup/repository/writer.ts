// Writing one backup. Chunks flow through a pipeline: admission (a byte
// budget), zero check and id on a worker, dedup (known set, then the store),
// compress and encrypt on a worker, put. writeChunk returns once a chunk is
// admitted, so a sequential caller keeps reads, CPU work and uploads in flight
// together; a failure in the pipeline surfaces at the next call or at commit.
//
// Nothing becomes visible until commit: the chunks first, then
// `index/<backupId>`, then `manifests/<backupId>`, whose presence is the backup.
import { chunkKey } from './chunk-format.js';
import { ChunkTable } from './chunk-table.js';
import { putSealed, sleep, type RepoContext } from './context.js';
import { BackupExistsError, ChunkVanishedError, IncompleteBackupError } from './errors.js';
import { ChunkIdSet } from './id-set.js';
import { indexKey } from './known.js';
import { listGcRecords, WriterLock, type GcRecord } from './locks.js';
import { manifestKey, sealManifest, validateBackupId, type BackupManifest, type BackupStats } from './manifest.js';
import { forEachLimit, Semaphore } from './semaphore.js';

export interface BackupMeta {
  /** Caller-chosen (Cinder's backup id): letters, digits, '_' and '-'. */
  readonly backupId: string;
  readonly volumeId: string;
  readonly volumeSize: number;
  /** The backup this one is incremental to; required for reuseFromParent. */
  readonly parentId?: string | null;
  readonly snapshotId?: string | null;
  /** Group snapshot / restore point this backup belongs to. */
  readonly groupId?: string | null;
  readonly createdAt?: Date;
  readonly labels?: Readonly<Record<string, string>>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export async function openWriter(
  ctx: RepoContext,
  meta: BackupMeta,
  readManifest: (id: string) => Promise<BackupManifest>,
): Promise<BackupWriter> {
  validateBackupId(meta.backupId);
  if (!Number.isSafeInteger(meta.volumeSize) || meta.volumeSize < 0) throw new RangeError(`invalid volume size ${meta.volumeSize}`);
  if (await ctx.store.has(manifestKey(meta.backupId))) throw new BackupExistsError(meta.backupId);
  // Lock first, then note the gc runs: any gc not finished now is "concurrent"
  // (ADR 0005). The parent manifest and the index are read only after that, so
  // a gc that deleted chunks of either is one this writer will know about.
  const lock = new WriterLock(ctx, meta.backupId, meta.volumeId);
  await lock.start();
  try {
    const gcAtStart = await listGcRecords(ctx);
    let parent: BackupManifest | null = null;
    if (meta.parentId) {
      parent = await readManifest(meta.parentId); // BackupNotFoundError names the parent
      if (parent.volumeId !== meta.volumeId) throw new Error(`parent backup ${parent.backupId} is of volume ${parent.volumeId}, not ${meta.volumeId}`);
      if (parent.chunkSize !== ctx.config.chunker.size) throw new Error(`parent backup ${parent.backupId} has chunk size ${parent.chunkSize}`);
    }
    await ctx.known.refresh(
      ctx,
      gcAtStart.map((r) => r.runId),
    );
    return new BackupWriter(ctx, meta, parent, lock, gcAtStart);
  } catch (err) {
    await lock.release().catch(() => undefined);
    throw err;
  }
}

export class BackupWriter {
  private readonly table: ChunkTable;
  private readonly chunkSize: number;
  private readonly budget: Semaphore;
  /** Chunks this backup introduces to the index: uploaded, or found in the store but in no index. */
  private readonly indexIds = new ChunkIdSet(256);
  private readonly inflight = new Set<Promise<void>>();
  /** Slots already written, zeroed or inherited (one byte each: a Set would cost ~40 MiB per million). */
  private readonly claimed: Uint8Array;
  private readonly puts = new Map<string, Promise<void>>();
  private failure: { error: unknown } | undefined;
  private state: 'open' | 'committing' | 'committed' | 'failed' | 'aborted' = 'open';
  private readonly startedAt = Date.now();
  private readonly counters: Mutable<Omit<BackupStats, 'slots' | 'dataSlots' | 'zeroSlots' | 'durationMs'>> = {
    inheritedSlots: 0,
    writtenSlots: 0,
    dedupedSlots: 0,
    newChunks: 0,
    bytesWritten: 0,
    bytesNew: 0,
    bytesStored: 0,
  };

  /** Use Repository.writer(). */
  constructor(
    private readonly ctx: RepoContext,
    readonly meta: BackupMeta,
    private readonly parent: BackupManifest | null,
    private readonly lock: WriterLock,
    private readonly gcAtStart: readonly GcRecord[],
  ) {
    this.chunkSize = ctx.config.chunker.size;
    this.table = new ChunkTable(meta.volumeSize, this.chunkSize);
    this.claimed = new Uint8Array(this.table.slots);
    this.budget = new Semaphore(ctx.options.maxBytesInFlight);
  }

  get backupId(): string {
    return this.meta.backupId;
  }

  /**
   * Stores the chunk-aligned slot at `offset` (data must be exactly the slot:
   * chunkSize bytes, or what is left of the volume). The bytes are copied on
   * admission; the caller may reuse its buffer once this resolves.
   */
  async writeChunk(offset: number, data: Uint8Array): Promise<void> {
    this.assertOpen();
    const i = this.slotAt(offset);
    if (data.length !== this.table.slotLength(i)) throw new RangeError(`chunk at ${offset} must be ${this.table.slotLength(i)} bytes, got ${data.length}`);
    this.claim(i);
    const cost = data.length * 2; // plaintext, then its sealed copy
    await this.budget.acquire(cost);
    if (this.failure) {
      this.budget.release(cost);
      throw this.failure.error;
    }
    const copy = new Uint8Array(data); // a copy: Buffer#slice is a view
    this.counters.writtenSlots++;
    this.counters.bytesWritten += data.length;
    const task: Promise<void> = this.process(i, copy)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.budget.release(cost);
        this.inflight.delete(task);
      });
    this.inflight.add(task);
  }

  /** Marks chunk-aligned slots as zeros: nothing is stored for them. */
  markZero(offset: number, length: number): void {
    this.assertOpen();
    const slots = this.slotRange(offset, length);
    for (const i of slots) this.assertUnclaimed(i);
    for (const i of slots) {
      this.claim(i);
      this.table.setZero(i);
    }
  }

  /** Inherits chunk-aligned slots unchanged since the parent, from its manifest, without reading them. */
  reuseFromParent(offset: number, length: number): void {
    this.assertOpen();
    const parent = this.parent;
    if (!parent) throw new Error(`backup ${this.backupId} has no parent to reuse extents from`);
    const slots = this.slotRange(offset, length);
    for (const i of slots) {
      if (i >= parent.table.slots || parent.table.slotLength(i) !== this.table.slotLength(i)) {
        throw new RangeError(`slot at ${i * this.chunkSize} is not the same extent in parent ${parent.backupId} (the volume was resized)`);
      }
      this.assertUnclaimed(i);
    }
    for (const i of slots) {
      this.claim(i);
      const s = parent.table.get(i);
      if (s.kind === 'zero') {
        this.table.setZero(i);
      } else {
        this.table.setData(i, s.id);
        this.lock.addRef(s.id);
      }
      this.counters.inheritedSlots++;
    }
  }

  /** Waits for every admitted chunk to be stored, and publishes the references in the lock. */
  async flush(): Promise<void> {
    await this.drain();
    if (this.failure) throw this.failure.error;
    await this.lock.flush();
  }

  /** Index, then manifest. On failure nothing is visible; call abort() to release the lock. */
  async commit(): Promise<BackupManifest> {
    this.assertOpen();
    this.state = 'committing';
    try {
      await this.drain();
      if (this.failure) throw this.failure.error;
      const unset = this.table.countUnset();
      if (unset > 0) throw new IncompleteBackupError(this.backupId, this.table.firstUnset() * this.chunkSize, unset);
      await this.lock.flush();
      await this.checkConcurrentGc();
      const manifest = this.buildManifest();
      if (this.indexIds.size > 0) await putSealed(this.ctx, indexKey(this.backupId), 'index', this.backupId, this.indexIds.toBytes());
      const sealed = sealManifest(this.ctx.keys.encKey, manifest);
      await this.ctx.storeSlots.run(() => this.ctx.store.put(manifestKey(this.backupId), sealed));
      this.state = 'committed';
      await this.lock.release().catch(() => undefined); // an orphaned lock only delays gc until it expires
      return manifest;
    } catch (err) {
      if (this.state === 'committing') this.state = 'failed';
      throw err;
    }
  }

  /** Drops the backup. Chunks already stored stay until gc finds them unneeded. */
  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    await this.drain();
    await this.lock.release();
  }

  private async process(i: number, copy: Uint8Array): Promise<void> {
    const h = await this.ctx.codec.hash(copy);
    if (h.zero) {
      this.table.setZero(i);
      return;
    }
    this.table.setData(i, h.id);
    this.lock.addRef(h.id);
    if (this.ctx.known.has(h.id)) {
      this.counters.dedupedSlots++;
      return;
    }
    const existing = this.puts.get(h.id);
    if (existing) {
      await existing;
      this.counters.dedupedSlots++;
      return;
    }
    const put = this.store(h.id, h.data).finally(() => this.puts.delete(h.id));
    this.puts.set(h.id, put);
    await put;
  }

  private async store(id: string, data: Uint8Array): Promise<void> {
    const key = chunkKey(id);
    const { store, storeSlots, codec, known } = this.ctx;
    if (await storeSlots.run(() => store.has(key))) {
      // Stored by a backup that never committed, or dropped from the index by gc.
      this.counters.dedupedSlots++;
    } else {
      const length = data.length;
      const sealed = await codec.seal(id, data);
      await storeSlots.run(() => store.put(key, sealed));
      this.counters.newChunks++;
      this.counters.bytesNew += length;
      this.counters.bytesStored += sealed.length;
    }
    known.add(id);
    this.indexIds.add(id);
  }

  /**
   * If a gc ran during this backup it may have deleted a chunk we dedup'd
   * against before our reference was published. Wait for it to end, then
   * check every chunk we reference: fail rather than commit a manifest that
   * points at nothing.
   */
  private async checkConcurrentGc(): Promise<void> {
    const startIds = new Set(this.gcAtStart.map((r) => r.runId));
    const runningAtStart = new Set(this.gcAtStart.filter((r) => r.running).map((r) => r.runId));
    let records = await listGcRecords(this.ctx);
    if (!records.some((r) => !startIds.has(r.runId) || runningAtStart.has(r.runId))) return;
    while (records.some((r) => r.running)) {
      await sleep(this.ctx.options.gcPollMs);
      records = await listGcRecords(this.ctx);
    }
    const ids = new ChunkIdSet(this.table.slots);
    for (const i of this.table.dataSlots()) ids.addBytes(this.table.idBytesAt(i));
    const missing: string[] = [];
    await forEachLimit(ids, this.ctx.options.inFlight, async (id) => {
      if (!(await this.ctx.store.has(chunkKey(id)))) missing.push(id);
    });
    if (missing.length > 0) throw new ChunkVanishedError(this.backupId, missing);
  }

  private buildManifest(): BackupManifest {
    let dataSlots = 0;
    for (const _ of this.table.dataSlots()) dataSlots++;
    const now = new Date();
    return {
      backupId: this.backupId,
      volumeId: this.meta.volumeId,
      volumeSize: this.meta.volumeSize,
      chunkSize: this.chunkSize,
      parentId: this.parent?.backupId ?? null,
      chain: this.parent ? [this.parent.backupId, ...this.parent.chain] : [],
      snapshotId: this.meta.snapshotId ?? null,
      groupId: this.meta.groupId ?? null,
      createdAt: (this.meta.createdAt ?? new Date(this.startedAt)).toISOString(),
      completedAt: now.toISOString(),
      labels: { ...(this.meta.labels ?? {}) },
      stats: {
        slots: this.table.slots,
        dataSlots,
        zeroSlots: this.table.slots - dataSlots,
        ...this.counters,
        durationMs: now.getTime() - this.startedAt,
      },
      table: this.table,
    };
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new Error(`backup writer ${this.backupId} is ${this.state}`);
    if (this.failure) throw this.failure.error;
  }

  private assertUnclaimed(i: number): void {
    if (this.claimed[i]) throw new Error(`slot at ${i * this.chunkSize} of backup ${this.backupId} was already written`);
  }

  private claim(i: number): void {
    this.assertUnclaimed(i);
    this.claimed[i] = 1;
  }

  private slotAt(offset: number): number {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % this.chunkSize !== 0 || offset >= this.meta.volumeSize) {
      throw new RangeError(`offset ${offset} is not a chunk boundary inside the volume (chunk size ${this.chunkSize})`);
    }
    return offset / this.chunkSize;
  }

  private slotRange(offset: number, length: number): number[] {
    const end = offset + length;
    if (!Number.isSafeInteger(length) || length <= 0 || end > this.meta.volumeSize || (end % this.chunkSize !== 0 && end !== this.meta.volumeSize)) {
      throw new RangeError(`extent [${offset}, ${end}) does not end on a chunk boundary or the volume's end`);
    }
    const out: number[] = [];
    for (let i = this.slotAt(offset); i * this.chunkSize < end; i++) out.push(i);
    return out;
  }
}
