// The backup service's work: read a snapshot through the volume role's NBD
// export, only the chunks its change map says changed, into the repository; and
// restore a backup into a volume through a writable export. Every status change
// is made under the job's fence; every step can be repeated after a crash.
import type { Repository } from '../../backup/repository/repository.js';
import type { BackupWriter } from '../../backup/repository/writer.js';
import type { Store } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { ClaimedJob, JobQueue } from '../../store/jobs.js';
import type { BackupRow } from '../../store/schema.js';
import type { Logger } from '../../util/log.js';
import type { ChangeExtent } from '../volume/change-map.js';
import type { VolumeCalls } from './volume-calls.js';
import { alignedBuffersMade } from '../../util/direct-write.js';
import { connectExport } from './export-connection.js';

export const GiB = 1024 ** 3;
const READ_CONNECTIONS = 4;

export interface BackupContext {
  readonly store: Store;
  readonly jobs: JobQueue;
  readonly repo: Repository;
  readonly calls: VolumeCalls;
  readonly serviceHost: string;
  readonly inFlight: number;
  readonly log: Logger;
}

type ChunkPlan = 'read' | 'zero' | 'inherit';

/** What to do with each chunk: read it if any byte in it changed, inherit it
 *  when all of it is unchanged (and a parent exists), else it is all zeros. */
export function planChunks(extents: readonly ChangeExtent[], size: number, chunkSize: number, hasParent: boolean): ChunkPlan[] {
  const n = Math.ceil(size / chunkSize);
  const plan: ChunkPlan[] = new Array<ChunkPlan>(n).fill('zero');
  const seen = new Array<Set<string>>(n);
  for (const e of extents) {
    const first = Math.floor(e.offset / chunkSize);
    const last = Math.min(n - 1, Math.floor((e.offset + e.length - 1) / chunkSize));
    for (let i = first; i <= last; i++) (seen[i] ??= new Set()).add(e.kind);
  }
  for (let i = 0; i < n; i++) {
    const kinds = seen[i] ?? new Set(['zero']);
    if (kinds.has('changed')) plan[i] = 'read';
    else if (kinds.has('unchanged')) plan[i] = hasParent && !kinds.has('zero') ? 'inherit' : 'read';
    else plan[i] = 'zero';
  }
  return plan;
}

/** Runs `work(i)` for i in [0, n) with at most `width` in flight, in order of start. */
export async function windowed(n: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, n)) }, lane));
}

const exportIdFor = (prefix: string, id: string) => `${prefix}${id.replace(/-/g, '').slice(0, 20)}`;

export async function runBackup(ctx: BackupContext, job: ClaimedJob): Promise<void> {
  const db = ctx.store.db;
  const b = await db.selectFrom('backups').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!b || b.status !== 'creating') return;
  const vol = await db.selectFrom('volumes').selectAll().where('id', '=', b.volume_id).executeTakeFirst();
  if (!vol?.host) throw new Error(`volume ${b.volume_id} is gone or has no host`);
  await ctx.jobs.withFence(job, (trx) => trx.updateTable('backups').set({ host: ctx.serviceHost, updated_at: nowIso() }).where('id', '=', b.id).execute());
  const snapshotId = b.snapshot_id ?? (await ctx.calls.temporarySnapshot(b, vol));
  const parent = b.parent_id ? await db.selectFrom('backups').selectAll().where('id', '=', b.parent_id).executeTakeFirst() : undefined;
  const pin = parent ? await db.selectFrom('layer_pins').select('layer_id').where('owner_kind', '=', 'backup').where('owner_id', '=', parent.id).executeTakeFirst() : undefined;
  // A parent without a pin cannot bound the changes: "none" makes the volume
  // role report a full read (ADR 0007).
  const baseLayerId = parent ? (pin?.layer_id ?? 'none') : null;
  const exportId = exportIdFor('k', b.id);
  const exp = await ctx.calls.exportSnapshot(vol.host, snapshotId, exportId, baseLayerId);
  const manifestId = b.manifest_id ?? b.id;
  const size = vol.size * GiB;
  let bytesRead = 0;
  try {
    const already = await ctx.repo.readManifest(manifestId).catch(() => null);
    if (!already) {
      // QSD exports advertise multi-conn: several connections read in parallel
      // (one connection measured ~240 MiB/s here, its replies serialised).
      const conns = await Promise.all(Array.from({ length: READ_CONNECTIONS }, () => connectExport(exp)));
      let writer: BackupWriter | null = null;
      try {
        writer = await ctx.repo.writer({ backupId: manifestId, volumeId: vol.id, volumeSize: size, parentId: parent ? (parent.manifest_id ?? parent.id) : null, snapshotId, createdAt: new Date(b.created_at) });
        const cs = ctx.repo.chunkSize;
        const plan = planChunks(exp.changes.extents, size, cs, parent !== undefined);
        const total = plan.filter((p) => p === 'read').length * cs;
        // The total is known before the first read: progress readers can show it at once.
        await ctx.jobs.withFence(job, (trx) => trx.updateTable('backups').set({ bytes_done: 0, bytes_total: total, bytes_read: 0 }).where('id', '=', b.id).execute());
        let lastReport = Date.now();
        const w = writer;
        await windowed(plan.length, ctx.inFlight, async (i) => {
          const offset = i * cs;
          const length = Math.min(cs, size - offset);
          if (plan[i] === 'zero') return w.markZero(offset, length);
          if (plan[i] === 'inherit') return w.reuseFromParent(offset, length);
          const data = await conns[i % conns.length]!.read(offset, length, w.chunkBuffer(length));
          bytesRead += length;
          await w.writeChunk(offset, data, { transfer: true }); // a pooled read buffer: handed over, not copied
          if (Date.now() - lastReport > 1000) {
            lastReport = Date.now();
            await ctx.jobs.withFence(job, (trx) => trx.updateTable('backups').set({ bytes_done: bytesRead, bytes_total: total, bytes_read: bytesRead }).where('id', '=', b.id).execute());
          }
        });
        await writer.commit();
        writer = null;
      } finally {
        await writer?.abort().catch(() => undefined);
        await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
      }
    }
  } finally {
    await ctx.calls.unexportSnapshot(vol.host, snapshotId, exportId).catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'removing the backup export failed'));
  }
  const manifest = await ctx.repo.readManifest(manifestId);
  const snap = await db.selectFrom('snapshots').select('created_at').where('id', '=', snapshotId).executeTakeFirst();
  await ctx.jobs.withFence(job, async (trx) => {
    await trx
      .updateTable('backups')
      .set({
        status: 'available',
        manifest_id: manifestId,
        object_count: manifest.stats.dataSlots,
        tracking: exp.changes.tracking,
        bytes_read: bytesRead,
        bytes_total: bytesRead,
        bytes_done: bytesRead,
        data_timestamp: snap?.created_at ?? b.created_at,
        updated_at: nowIso(),
      })
      .where('id', '=', b.id)
      .where('status', '=', 'creating')
      .execute();
    await releaseSource(trx, b);
    // The newest backup of the volume pins its layer; older pins go.
    await trx.deleteFrom('layer_pins').where('owner_kind', '=', 'backup').where('volume_id', '=', vol.id).execute();
    await trx.insertInto('layer_pins').values({ layer_id: exp.layerId, owner_kind: 'backup', owner_id: b.id, volume_id: vol.id, created_at: nowIso() }).execute();
  });
  if (!b.snapshot_id) await ctx.calls.dropSnapshot(vol.host, snapshotId);
  ctx.log.info({ backup: b.id, tracking: exp.changes.tracking, bytesRead, changed: exp.changes.changedBytes, slabMisses: ctx.repo.chunkBufferMisses, alignedBuffers: alignedBuffersMade() }, 'backup done');
}

/** The source returns to its status before the backup. */
async function releaseSource(trx: Parameters<Parameters<JobQueue['withFence']>[1]>[0], b: BackupRow): Promise<void> {
  if (b.snapshot_id) await trx.updateTable('snapshots').set({ status: 'available', updated_at: nowIso() }).where('id', '=', b.snapshot_id).where('status', '=', 'backing-up').execute();
  else await trx.updateTable('volumes').set({ status: 'available', updated_at: nowIso() }).where('id', '=', b.volume_id).where('status', '=', 'backing-up').execute();
}

export async function failBackup(ctx: BackupContext, job: ClaimedJob, err: unknown): Promise<void> {
  const b = await ctx.store.db.selectFrom('backups').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!b) return;
  await ctx.jobs.withFence(job, async (trx) => {
    await trx.updateTable('backups').set({ status: 'error', fail_reason: err instanceof Error ? err.message : String(err), updated_at: nowIso() }).where('id', '=', b.id).where('status', '=', 'creating').execute();
    await releaseSource(trx, b);
  });
  const vol = await ctx.store.db.selectFrom('volumes').select('host').where('id', '=', b.volume_id).executeTakeFirst();
  if (b.temp_snapshot_id && vol?.host) await ctx.calls.dropSnapshot(vol.host, b.temp_snapshot_id).catch(() => undefined);
}
