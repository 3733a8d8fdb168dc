// Garbage collection: delete the chunks no manifest and no live writer lock
// references. The order of steps is what makes it safe next to running
// writers (ADR 0005, "Garbage collection"):
//   record gc/<run> (running)  →  list chunks  →  settle  →  read live locks'
//   references  →  read every manifest  →  consolidate the index  →  delete
//   →  record finished.
// Chunks uploaded after the listing are never candidates; a writer whose
// references were published before the settle ended is protected by them;
// anything else a writer relied on is re-checked by that writer at commit,
// because it sees our record.
import { randomBytes } from 'node:crypto';
import { chunkKey, isChunkId } from './chunk-format.js';
import { listKeys, putSealed, sleep, type RepoContext } from './context.js';
import { GcAbortedError } from './errors.js';
import { ChunkIdSet } from './id-set.js';
import { INDEX_PREFIX, indexKey } from './known.js';
import { GcRun, listGcRecords, readRefs, scanLocks, GC_PREFIX } from './locks.js';
import { MANIFEST_PREFIX, openManifest } from './manifest.js';
import { forEachLimit } from './semaphore.js';

export interface GcOptions {
  /** Writer locks older than this are dead and protect nothing. Default: the repository's lockExpiryMs. */
  readonly lockExpiryMs?: number;
  /** Default: the repository's gcSettleMs. */
  readonly settleMs?: number;
  /** Report what would be deleted, delete nothing. */
  readonly dryRun?: boolean;
}

export interface GcReport {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly manifests: number;
  readonly chunksPresent: number;
  /** Present chunks some manifest or live lock references. */
  readonly chunksKept: number;
  /** Of those, kept only because a live lock references them. */
  readonly chunksKeptByLocks: number;
  readonly chunksDeleted: number;
  readonly liveLocks: string[];
  readonly expiredLocks: string[];
}

export async function collectGarbage(ctx: RepoContext, opts: GcOptions = {}): Promise<GcReport> {
  const expiry = opts.lockExpiryMs ?? ctx.options.lockExpiryMs;
  const dryRun = opts.dryRun ?? false;
  const runId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const run = new GcRun(ctx, runId, ctx.options.gcExpiryMs);
  await run.start();
  try {
    const present = new ChunkIdSet();
    for await (const key of ctx.store.list('chunks/')) {
      const id = key.slice('chunks/'.length);
      if (isChunkId(id)) present.add(id);
    }
    await sleep(opts.settleMs ?? ctx.options.gcSettleMs);

    const scan = await scanLocks(ctx, expiry);
    const lockRefs = new ChunkIdSet();
    for (const lock of scan.locks) if (lock.live) await readRefs(ctx, lock, lockRefs);

    const referenced = new ChunkIdSet(present.size);
    const manifestKeys = await listKeys(ctx.store, MANIFEST_PREFIX);
    await forEachLimit(manifestKeys, ctx.options.inFlight, async (key) => {
      const backupId = key.slice(MANIFEST_PREFIX.length);
      let m;
      try {
        const sealed = await ctx.storeSlots.run(() => ctx.store.get(key));
        m = openManifest(ctx.keys.encKey, backupId, sealed);
      } catch (err) {
        // A manifest we cannot read may reference anything: delete nothing.
        throw new GcAbortedError(`gc stopped, nothing deleted: manifest of backup ${backupId} is unreadable (${err instanceof Error ? err.message : String(err)})`);
      }
      for (const i of m.table.dataSlots()) referenced.addBytes(m.table.idBytesAt(i));
    });

    const kept = new ChunkIdSet(present.size);
    const garbage: string[] = [];
    let keptByLocks = 0;
    for (const id of present) {
      if (referenced.has(id)) kept.add(id);
      else if (lockRefs.has(id)) {
        kept.add(id);
        keptByLocks++;
      } else garbage.push(id);
    }

    const liveLocks = scan.locks.filter((l) => l.live).map((l) => l.backupId).sort();
    const expiredLocks = scan.locks.filter((l) => !l.live).map((l) => l.backupId).sort();
    if (!dryRun) {
      // The index must never name a deleted chunk: replace it before deleting.
      const oldIndex = await listKeys(ctx.store, INDEX_PREFIX);
      const name = `gc.${runId}`;
      await putSealed(ctx, indexKey(name), 'index', name, kept.toBytes());
      for (const key of oldIndex) if (key !== indexKey(name)) await ctx.store.delete(key);
      ctx.known.reset();

      await forEachLimit(garbage, ctx.options.inFlight, async (id) => {
        if (!run.fresh()) throw new GcAbortedError('gc stopped deleting: its record could not be renewed in time');
        await ctx.storeSlots.run(() => ctx.store.delete(chunkKey(id)));
      });

      const liveIds = new Set(liveLocks);
      for (const [backupId, keys] of scan.keysOf) {
        if (liveIds.has(backupId)) continue;
        // Lock before refs (shortest key first): refs left without a lock are recognisable orphans.
        for (const key of keys.sort((a, b) => a.length - b.length)) await ctx.store.delete(key);
      }
    }
    await run.finish();
    await pruneGcRecords(ctx, runId);
    return {
      runId,
      dryRun,
      manifests: manifestKeys.length,
      chunksPresent: present.size,
      chunksKept: kept.size,
      chunksKeptByLocks: keptByLocks,
      chunksDeleted: dryRun ? 0 : garbage.length,
      liveLocks,
      expiredLocks,
    };
  } catch (err) {
    // Nothing more will be deleted by this run: say so, so writers stop waiting.
    await run.finish().catch(() => run.stop());
    throw err;
  }
}

/** Keeps our own record (writers compare against it) and those still running. */
async function pruneGcRecords(ctx: RepoContext, ownRunId: string): Promise<void> {
  for (const r of await listGcRecords(ctx)) {
    if (r.runId !== ownRunId && !r.running) await ctx.store.delete(`${GC_PREFIX}${r.runId}`);
  }
}

