// Writing one backup. Chunks flow through a pipeline: admission (a byte
// budget), zero check and id on a worker, dedup (the in-memory index, no store
// request), compress and encrypt on a worker, append to a pack; full packs are
// uploaded (one put each). writeChunk returns once a chunk is admitted, so a
// sequential caller keeps reads, CPU work and uploads in flight together; a
// failure in the pipeline surfaces at the next call or at commit.
//
// Nothing becomes visible until commit: the packs first, then
// `index/<backupId>` (where this backup's chunks are), then
// `manifests/<backupId>`, whose presence is the backup.
import { LocationList, type ChunkLocation } from './chunk-map.js';
import { ChunkTable } from './chunk-table.js';
import { listKeys, putSealed, sleep, type RepoContext } from './context.js';
import { BackupExistsError, ChunkVanishedError, IncompleteBackupError } from './errors.js';
import { ChunkIdSet } from './id-set.js';
import { indexKey } from './known.js';
import { PACK_PREFIX, PackWriter, packKey } from './pack.js';
import { listGcRecords, WriterLock, type GcRecord } from './locks.js';
import { manifestKey, sealManifest, validateBackupId, type BackupManifest, type BackupStats } from './manifest.js';
import { Semaphore } from './semaphore.js';

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
    // Chunks of backups that never committed (or whose index is damaged) are in packs no index names.
    await ctx.known.scanUnindexed(ctx);
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
  /** Chunks this backup stored, with their locations: its index object. */
  private readonly indexed = new LocationList();
  /** Chunks this backup has sealed or is sealing: identical chunks in flight are stored once. */
  private readonly sealing = new ChunkIdSet(256);
  private readonly packs: PackWriter;
  /** The packs present after a concurrent gc finished (set by the commit's check). */
  private packsAfterGc: Set<string> | undefined;
  /** Moving share of recent data chunks that were already stored (picks the worker path). */
  private dupRate = 0;
  private readonly inflight = new Set<Promise<void>>();
  /** Slots already written, zeroed or inherited (one byte each: a Set would cost ~40 MiB per million). */
  private readonly claimed: Uint8Array;
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
    this.packs = new PackWriter(ctx, (_pack, chunks) => this.stored(chunks));
  }

  get backupId(): string {
    return this.meta.backupId;
  }

  /**
   * Stores the chunk-aligned slot at `offset` (data must be exactly the slot:
   * chunkSize bytes, or what is left of the volume). The bytes are copied on
   * admission; the caller may reuse its buffer once this resolves. With
   * `transfer` the writer takes the buffer instead: a chunkBuffer() slot
   * without a copy, or a buffer of its own (transferred to a worker, so
   * detached): the caller must not touch it again.
   */
  async writeChunk(offset: number, data: Uint8Array, opts?: { readonly transfer?: boolean }): Promise<void> {
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
    const copy = opts?.transfer ? data : this.ctx.codec.copy(data); // a copy: Buffer#slice is a view
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

  /** A pooled buffer to read the next chunk (`length` bytes) into; hand it to writeChunk with `transfer`. */
  chunkBuffer(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length <= 0 || length > this.chunkSize) throw new RangeError(`chunk buffer of ${length} bytes (chunk size ${this.chunkSize})`);
    return this.ctx.codec.chunkBuffer(length);
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
    await this.packs.flush();
    await this.lock.flush();
  }

  /** Index, then manifest. On failure nothing is visible; call abort() to release the lock. */
  async commit(): Promise<BackupManifest> {
    this.assertOpen();
    this.state = 'committing';
    try {
      await this.drain();
      if (this.failure) throw this.failure.error;
      await this.packs.flush();
      const unset = this.table.countUnset();
      if (unset > 0) throw new IncompleteBackupError(this.backupId, this.table.firstUnset() * this.chunkSize, unset);
      await this.lock.flush();
      await this.checkConcurrentGc();
      const manifest = this.buildManifest();
      const index = this.indexToWrite();
      if (index.size > 0) await putSealed(this.ctx, indexKey(this.backupId), 'index', this.backupId, index.toBytes());
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
    await this.packs.abandon();
    await this.lock.release();
  }

  private async process(i: number, copy: Uint8Array): Promise<void> {
    // Mostly new chunks (a first backup, an incremental's changed extents):
    // hash and seal in one worker round trip, and drop the sealed bytes of the
    // few that turn out to be stored already. Mostly known chunks (a clone's
    // backup): hash first, seal only the new ones.
    if (this.dupRate < 0.5) {
      const r = await this.ctx.codec.hashSeal(copy);
      if (r.zero) {
        this.table.setZero(i);
        return;
      }
      if (await this.admit(i, r.id)) await this.append(r.id, r.length, r.sealed);
      else this.ctx.codec.release(r.sealed); // already stored: its sealed copy is not needed
      return;
    }
    const h = await this.ctx.codec.hash(copy);
    if (h.zero || !(await this.admit(i, h.id))) {
      this.ctx.codec.release(h.data);
      if (h.zero) this.table.setZero(i);
      return;
    }
    await this.append(h.id, h.data.length, await this.ctx.codec.seal(h.id, h.data));
  }

  /** Records the slot; true when the chunk must be stored (the index answers without a store request). */
  private async admit(i: number, id: string): Promise<boolean> {
    this.table.setData(i, id);
    this.lock.addRef(id);
    let dup = this.ctx.known.has(id) || !this.sealing.add(id);
    if (!dup) {
      const hint = this.ctx.known.hint(id);
      // In a pack no index names (a crashed backup's): reuse it only once it reads back authentic.
      if (hint && (await this.authentic(id, hint))) {
        this.stored([[id, hint]]);
        dup = true;
      }
    }
    this.dupRate = this.dupRate * 0.9 + (dup ? 0.1 : 0);
    if (dup) this.counters.dedupedSlots++;
    return !dup;
  }

  private async authentic(id: string, loc: ChunkLocation): Promise<boolean> {
    try {
      const sealed = await this.ctx.storeSlots.run(() => this.ctx.store.getRange(packKey(loc.pack), { offset: loc.offset, length: loc.length }));
      this.ctx.codec.release(await this.ctx.codec.open(id, sealed));
      return true;
    } catch {
      return false; // damaged or gone: store the chunk again
    }
  }

  private async append(id: string, length: number, sealed: Uint8Array): Promise<void> {
    this.counters.newChunks++;
    this.counters.bytesNew += length;
    this.counters.bytesStored += sealed.length;
    await this.packs.add(id, sealed);
  }

  private stored(chunks: readonly (readonly [string, ChunkLocation])[]): void {
    for (const [id, loc] of chunks) {
      this.ctx.known.add(id, loc);
      this.indexed.add(id, loc);
    }
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
    // The gc may have moved or deleted chunks: look at the index it left, and at the packs now there.
    await this.ctx.known.reload(this.ctx);
    const packs = new Set((await listKeys(this.ctx.store, PACK_PREFIX)).map((k) => k.slice(PACK_PREFIX.length)));
    this.packsAfterGc = packs;
    const own = this.indexed.toMap();
    const ids = new ChunkIdSet(this.table.slots);
    for (const i of this.table.dataSlots()) ids.addBytes(this.table.idBytesAt(i));
    const missing: string[] = [];
    for (const id of ids) {
      const loc = this.ctx.known.locate(id) ?? own.get(id);
      if (!loc || !packs.has(loc.pack)) missing.push(id);
    }
    if (missing.length > 0) throw new ChunkVanishedError(this.backupId, missing);
  }

  /**
   * Our index records, less those in packs a concurrent gc repacked away (it
   * indexed their chunks' new places itself): an index never names a deleted pack.
   */
  private indexToWrite(): LocationList {
    const packs = this.packsAfterGc;
    if (!packs) return this.indexed;
    const out = new LocationList();
    for (const [id, loc] of this.indexed.toMap().entries()) if (packs.has(loc.pack)) out.add(id, loc);
    return out;
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
