// Garbage collection: delete the chunks no manifest and no live writer lock
// references. The order of steps is what makes it safe next to running
// writers (ADR 0005, "Garbage collection"):
//   record gc/<run> (running)  →  list packs  →  settle  →  read live locks'
//   references  →  read every manifest  →  what each pack holds (index, then
//   trailers)  →  repack  →  consolidate the index  →  delete  →  record finished.
// Packs uploaded after the listing are never candidates; a writer whose
// references were published before the settle ended is protected by them;
// anything else a writer relied on is re-checked by that writer at commit,
// because it sees our record.
//
// Space is reclaimed pack by pack: a pack none of whose chunks is needed is
// deleted; a pack whose unneeded chunks make up at least `repackThreshold` of
// its bytes is repacked (its needed chunk objects copied, still sealed, into
// new packs, indexed, then the old pack deleted); any other pack is kept whole.
import { randomBytes } from 'node:crypto';
import { LocationList } from './chunk-map.js';
import { listKeys, putSealed, sleep, type RepoContext } from './context.js';
import { GcAbortedError } from './errors.js';
import { ChunkIdSet } from './id-set.js';
import { INDEX_PREFIX, indexKey } from './known.js';
import { GcRun, listGcRecords, readRefs, scanLocks, GC_PREFIX } from './locks.js';
import { MANIFEST_PREFIX, openManifest } from './manifest.js';
import { PACK_PREFIX, PackFormatError, PackWriter, packKey, readPackEntries, type PackEntry } from './pack.js';
import { isPackId } from './chunk-map.js';
import { forEachLimit } from './semaphore.js';
import { ObjectNotFoundError } from '../store/object-store.js';

export interface GcOptions {
  /** Writer locks older than this are dead and protect nothing. Default: the repository's lockExpiryMs. */
  readonly lockExpiryMs?: number;
  /** Default: the repository's gcSettleMs. */
  readonly settleMs?: number;
  /** Report what would be deleted, delete nothing. */
  readonly dryRun?: boolean;
  /** Repack a pack once this fraction of its bytes is unneeded chunks. Default 0.25. */
  readonly repackThreshold?: number;
}

export interface GcReport {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly manifests: number;
  /** Chunks in the packs listed (a chunk stored twice counts twice). */
  readonly chunksPresent: number;
  /** Chunks left in the repository (needed ones, and unneeded ones in packs kept whole). */
  readonly chunksKept: number;
  /** Of those, kept only because a live lock references them. */
  readonly chunksKeptByLocks: number;
  /** Chunks removed: in deleted packs, or left behind by repacking. */
  readonly chunksDeleted: number;
  readonly liveLocks: string[];
  readonly expiredLocks: string[];
  readonly packsDeleted?: number;
  readonly packsRepacked?: number;
}

interface PackPlan {
  readonly packId: string;
  readonly entries: readonly PackEntry[];
  action: 'keep' | 'delete' | 'repack';
}

export async function collectGarbage(ctx: RepoContext, opts: GcOptions = {}): Promise<GcReport> {
  const expiry = opts.lockExpiryMs ?? ctx.options.lockExpiryMs;
  const dryRun = opts.dryRun ?? false;
  const threshold = opts.repackThreshold ?? 0.25;
  const runId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const run = new GcRun(ctx, runId, ctx.options.gcExpiryMs);
  await run.start();
  try {
    const present: string[] = [];
    for await (const key of ctx.store.list(PACK_PREFIX)) {
      const id = key.slice(PACK_PREFIX.length);
      if (isPackId(id)) present.push(id);
    }
    await sleep(opts.settleMs ?? ctx.options.gcSettleMs);

    const scan = await scanLocks(ctx, expiry);
    const lockRefs = new ChunkIdSet();
    for (const lock of scan.locks) if (lock.live) await readRefs(ctx, lock, lockRefs);

    const referenced = new ChunkIdSet();
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

    // What each listed pack holds: the index says so for indexed packs (loaded
    // from scratch: the index is what we replace), the trailer for the others
    // (packs of running or crashed writers). A pack we cannot read the trailer
    // of is kept: we cannot prove it unneeded.
    await ctx.known.reload(ctx);
    const byPack = new Map<string, PackEntry[]>();
    for (const [id, loc] of ctx.known.entries()) {
      const list = byPack.get(loc.pack);
      if (list) list.push({ id, offset: loc.offset, length: loc.length });
      else byPack.set(loc.pack, [{ id, offset: loc.offset, length: loc.length }]);
    }
    const plans: PackPlan[] = [];
    await forEachLimit(present, ctx.options.inFlight, async (packId) => {
      let entries = byPack.get(packId);
      if (!entries) {
        try {
          entries = await ctx.storeSlots.run(() => readPackEntries(ctx.store, packId));
        } catch (err) {
          if (err instanceof ObjectNotFoundError) return; // deleted meanwhile (another gc)
          if (!(err instanceof PackFormatError)) throw err;
          plans.push({ packId, entries: [], action: 'keep' });
          return;
        }
      }
      plans.push({ packId, entries, action: 'keep' });
    });
    plans.sort((a, b) => a.packId.localeCompare(b.packId));

    let chunksPresent = 0;
    let keptByLocks = 0;
    let deleted = 0;
    for (const p of plans) {
      chunksPresent += p.entries.length;
      if (p.entries.length === 0) continue;
      let deadBytes = 0;
      let totalBytes = 0;
      let live = 0;
      for (const e of p.entries) {
        totalBytes += e.length;
        if (referenced.has(e.id)) live++;
        else if (lockRefs.has(e.id)) {
          live++;
          keptByLocks++;
        } else deadBytes += e.length;
      }
      if (live === 0) p.action = 'delete';
      else if (deadBytes > 0 && deadBytes >= threshold * totalBytes) p.action = 'repack';
      if (p.action !== 'keep') deleted += p.entries.length - (p.action === 'repack' ? live : 0);
    }

    const liveLocks = scan.locks.filter((l) => l.live).map((l) => l.backupId).sort();
    const expiredLocks = scan.locks.filter((l) => !l.live).map((l) => l.backupId).sort();
    if (!dryRun) {
      const kept = new LocationList();
      for (const p of plans) {
        if (p.action === 'keep') for (const e of p.entries) kept.add(e.id, { pack: p.packId, offset: e.offset, length: e.length });
      }
      // Repacked chunks are copied still sealed: a chunk object does not depend on where it is stored.
      const packer = new PackWriter(ctx, (_pack, chunks) => {
        for (const [id, loc] of chunks) kept.add(id, loc);
      });
      for (const p of plans) {
        if (p.action !== 'repack') continue;
        const whole = await ctx.storeSlots.run(() => ctx.store.get(packKey(p.packId)));
        for (const e of p.entries) {
          if (!referenced.has(e.id) && !lockRefs.has(e.id)) continue;
          await packer.add(e.id, whole.slice(e.offset, e.offset + e.length));
        }
      }
      await packer.flush();

      // The index must never name a deleted pack: replace it before deleting.
      const oldIndex = await listKeys(ctx.store, INDEX_PREFIX);
      const name = `gc.${runId}`;
      await putSealed(ctx, indexKey(name), 'index', name, kept.toBytes());
      for (const key of oldIndex) if (key !== indexKey(name)) await ctx.store.delete(key);
      ctx.known.reset();

      await forEachLimit(
        plans.filter((p) => p.action !== 'keep'),
        ctx.options.inFlight,
        async (p) => {
          if (!run.fresh()) throw new GcAbortedError('gc stopped deleting: its record could not be renewed in time');
          await ctx.storeSlots.run(() => ctx.store.delete(packKey(p.packId)));
        },
      );

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
      chunksPresent,
      chunksKept: chunksPresent - deleted,
      chunksKeptByLocks: keptByLocks,
      chunksDeleted: dryRun ? 0 : deleted,
      liveLocks,
      expiredLocks,
      packsDeleted: dryRun ? 0 : plans.filter((p) => p.action === 'delete').length,
      packsRepacked: dryRun ? 0 : plans.filter((p) => p.action === 'repack').length,
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

