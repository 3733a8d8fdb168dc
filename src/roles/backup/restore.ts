// Restore, delete and import: the other three backup jobs.
import { nowIso } from '../../store/db.js';
import type { ClaimedJob } from '../../store/jobs.js';
import { GiB, type BackupContext } from './engine.js';
import { connectExport } from './export-connection.js';

const WAIT_VOLUME_MS = 120_000;
const WRITE_CONNECTIONS = 4;
/** QEMU's NBD server refuses requests above 32 MiB (NBD_MAX_BUFFER_SIZE) with EINVAL. */
const MAX_NBD_WRITE = 32 * 1024 * 1024;

/** Restores into the job's volume: every extent of the backup is written (a new
 *  volume is already zero, so zero runs are skipped there), then flushed. */
export async function runRestore(ctx: BackupContext, job: ClaimedJob): Promise<void> {
  const db = ctx.store.db;
  const b = await db.selectFrom('backups').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!b || b.status !== 'restoring') return;
  const volumeId = String(job.payload['volumeId'] ?? b.restore_volume_id);
  const isNew = job.payload['volumeIsNew'] === true;
  if (isNew) {
    // The API asked for a new volume; it is placed and created by the volume roles.
    const deadline = Date.now() + WAIT_VOLUME_MS;
    for (;;) {
      const v = await db.selectFrom('volumes').select('status').where('id', '=', volumeId).executeTakeFirst();
      if (!v || v.status === 'error') throw new Error(`the volume to restore into (${volumeId}) could not be created`);
      if (v.status === 'available' || v.status === 'restoring-backup') break;
      if (Date.now() > deadline) throw new Error(`the volume to restore into (${volumeId}) is still ${v.status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await ctx.jobs.withFence(job, (trx) => trx.updateTable('volumes').set({ status: 'restoring-backup', updated_at: nowIso() }).where('id', '=', volumeId).where('status', '=', 'available').execute());
  }
  const vol = await db.selectFrom('volumes').selectAll().where('id', '=', volumeId).executeTakeFirstOrThrow();
  if (!vol.host) throw new Error(`volume ${volumeId} has no host`);
  const manifest = await ctx.repo.readManifest(b.manifest_id ?? b.id);
  if (manifest.volumeSize > vol.size * GiB) throw new Error(`volume ${volumeId} (${vol.size} GiB) is smaller than the backup (${manifest.volumeSize} bytes)`);
  const exportId = `r${b.id.replace(/-/g, '').slice(0, 20)}`;
  const exportStarted = Date.now();
  // A new volume is filled with the backup's data: let the volume role make room for it first.
  const exp = await ctx.calls.exportVolume(vol.host, vol.id, exportId, isNew ? manifest.stats.dataSlots * manifest.chunkSize : 0);
  const writeStarted = Date.now();
  try {
    // Several connections write in parallel; the export advertises multi-conn,
    // so one flush after every write has completed covers them all.
    const conns = await Promise.all(Array.from({ length: WRITE_CONNECTIONS }, () => connectExport(exp)));
    let turn = 0;
    try {
      const pending = new Set<Promise<void>>();
      let done = 0;
      let zeros: Buffer | null = null;
      const send = async (offset: number, data: Buffer): Promise<{ written: Promise<void> }> => {
        const p = conns[turn++ % conns.length]!.write(offset, data).then(() => {
          done += data.length;
        });
        pending.add(p);
        void p.finally(() => pending.delete(p)).catch(() => undefined);
        if (pending.size >= ctx.inFlight) await Promise.race(pending);
        return { written: p }; // wrapped: awaiting send() waits for a free slot, not for this write
      };
      // Owned extents: each chunk's buffer is recycled once its writes are done, for a read further on.
      for await (const e of ctx.repo.reader(b.manifest_id ?? b.id, { owned: true })) {
        if (e.data === null && isNew) continue;
        // Zero runs are coalesced (up to the whole volume) and chunks may be
        // up to 64 MiB: every NBD write stays within the server's payload limit.
        // Adjacent data chunks are not joined into larger writes: measured, the
        // copy cost more than the server gained (QSD takes ~500 MiB/s of 1 MiB writes).
        const writes: Promise<void>[] = [];
        for (let at = 0; at < e.length; at += MAX_NBD_WRITE) {
          const len = Math.min(MAX_NBD_WRITE, e.length - at);
          const data = e.data ? Buffer.from(e.data.buffer, e.data.byteOffset + at, len) : (zeros ??= Buffer.alloc(MAX_NBD_WRITE)).subarray(0, len);
          writes.push((await send(e.offset + at, data)).written);
        }
        const chunk = e.data;
        if (chunk) void Promise.allSettled(writes).then(() => ctx.repo.recycle(chunk));
      }
      await Promise.all(pending);
      await conns[0]!.flush();
      ctx.log.info({ backup: b.id, volume: vol.id, bytes: done, exportMs: writeStarted - exportStarted, writeMs: Date.now() - writeStarted }, 'restore written');
    } finally {
      await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    }
  } finally {
    await ctx.calls.unexportVolume(vol.host, vol.id, exportId).catch(() => undefined);
  }
  const source = await db.selectFrom('volumes').select(['metadata', 'bootable']).where('id', '=', b.volume_id).executeTakeFirst();
  await ctx.jobs.withFence(job, async (trx) => {
    await trx
      .updateTable('volumes')
      .set({ status: 'available', ...(source ? { metadata: source.metadata, bootable: source.bootable } : {}), updated_at: nowIso() })
      .where('id', '=', vol.id)
      .where('status', '=', 'restoring-backup')
      .execute();
    await trx.updateTable('backups').set({ status: 'available', updated_at: nowIso() }).where('id', '=', b.id).where('status', '=', 'restoring').execute();
  });
}

export async function failRestore(ctx: BackupContext, job: ClaimedJob, err: unknown): Promise<void> {
  const volumeId = String(job.payload['volumeId'] ?? '');
  await ctx.jobs.withFence(job, async (trx) => {
    await trx.updateTable('volumes').set({ status: 'error_restoring', error_reason: err instanceof Error ? err.message : String(err), updated_at: nowIso() }).where('id', '=', volumeId).where('status', 'in', ['restoring-backup', 'available']).execute();
    await trx.updateTable('backups').set({ status: 'available', updated_at: nowIso() }).where('id', '=', job.resourceId).where('status', '=', 'restoring').execute();
  });
}

/** Deletes the manifest (the repository's garbage collector reclaims chunks), its pin and row. */
export async function runDelete(ctx: BackupContext, job: ClaimedJob): Promise<void> {
  const b = await ctx.store.db.selectFrom('backups').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!b || b.status !== 'deleting') return;
  // An imported record may share its manifest with the original row: keep it then.
  const others = await ctx.store.db.selectFrom('backups').select('id').where('manifest_id', '=', b.manifest_id ?? b.id).where('id', '!=', b.id).execute();
  if (others.length === 0) await ctx.repo.deleteBackup(b.manifest_id ?? b.id).catch((err: unknown) => {
    if (!(err instanceof Error && /not found/i.test(err.message))) throw err;
  });
  await ctx.jobs.withFence(job, async (trx) => {
    await trx.deleteFrom('layer_pins').where('owner_kind', '=', 'backup').where('owner_id', '=', b.id).execute();
    await trx.deleteFrom('backups').where('id', '=', b.id).execute();
  });
}

/** An imported record becomes available once its manifest is found and opens
 *  with this repository's key. */
export async function runImport(ctx: BackupContext, job: ClaimedJob): Promise<void> {
  const b = await ctx.store.db.selectFrom('backups').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!b || b.status !== 'creating') return;
  const manifest = await ctx.repo.readManifest(b.manifest_id ?? b.id);
  await ctx.jobs.withFence(job, (trx) =>
    trx
      .updateTable('backups')
      .set({ status: 'available', host: ctx.serviceHost, size: Math.ceil(manifest.volumeSize / GiB), object_count: manifest.stats.dataSlots, updated_at: nowIso() })
      .where('id', '=', b.id)
      .execute(),
  );
}

export async function failSimple(ctx: BackupContext, job: ClaimedJob, err: unknown, status: string): Promise<void> {
  await ctx.jobs.withFence(job, (trx) => trx.updateTable('backups').set({ status, fail_reason: err instanceof Error ? err.message : String(err), updated_at: nowIso() }).where('id', '=', job.resourceId).execute());
}
