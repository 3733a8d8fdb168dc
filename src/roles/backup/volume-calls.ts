// What a backup service asks of the volume role, always through durable jobs
// (it never opens a volume's files): export a snapshot with its change map,
// export a volume for restore, take and drop a temporary snapshot.
import type { Store } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { JobQueue } from '../../store/jobs.js';
import type { ExportResult } from '../../services/attachments.js';
import { newId } from '../../services/ids.js';
import type { ChangeMap } from '../volume/change-map.js';

export interface SnapshotExport extends ExportResult {
  readonly layerId: string;
  readonly changes: ChangeMap;
}

export class VolumeCalls {
  constructor(
    private readonly store: Store,
    private readonly jobs: JobQueue,
    private readonly hostname: string,
    private readonly timeoutMs: number,
    private readonly kick: () => void,
  ) {}

  private async call<T>(kind: string, target: string, resourceId: string, payload: object): Promise<T> {
    const id = await this.jobs.enqueue(this.store.db, { kind, target, resourceId, payload });
    this.kick();
    const job = await this.jobs.waitFor(id, this.timeoutMs, 10);
    if (job.state !== 'done') throw new Error(`${kind} on ${target} failed: ${job.error ?? 'unknown error'}`);
    return JSON.parse(job.result ?? '{}') as T;
  }

  exportSnapshot(host: string, snapshotId: string, exportId: string, baseLayerId: string | null): Promise<SnapshotExport> {
    return this.call('export_snapshot', host, snapshotId, { exportId, baseLayerId, connectorHost: this.hostname });
  }

  async unexportSnapshot(host: string, snapshotId: string, exportId: string): Promise<void> {
    await this.call('unexport_snapshot', host, snapshotId, { exportId });
  }

  /** `reserveBytes`: about how much will be written (a restore's data), so the volume role can make room for it first. */
  exportVolume(host: string, volumeId: string, exportId: string, reserveBytes = 0): Promise<ExportResult> {
    return this.call('export_volume', host, volumeId, { exportId, writable: true, connectorHost: this.hostname, reserveBytes });
  }

  async unexportVolume(host: string, volumeId: string, exportId: string): Promise<void> {
    await this.call('unexport_volume', host, volumeId, { exportId, attachmentId: null });
  }

  /** A snapshot of the volume for a backup, reusing one an earlier attempt made. */
  async temporarySnapshot(backup: { id: string; project_id: string; user_id: string }, volume: { id: string; host: string | null; size: number }): Promise<string> {
    if (!volume.host) throw new Error(`volume ${volume.id} has no host`);
    const name = `backup-${backup.id}`;
    let snap = await this.store.db.selectFrom('snapshots').selectAll().where('volume_id', '=', volume.id).where('name', '=', name).executeTakeFirst();
    if (!snap) {
      const row = {
        id: newId(),
        project_id: backup.project_id,
        user_id: backup.user_id,
        volume_id: volume.id,
        name,
        description: 'temporary snapshot for a backup',
        size: volume.size,
        status: 'creating',
        progress: '0%',
        layer_id: null,
        group_snapshot_id: null,
        metadata: '{}',
        created_at: nowIso(),
        updated_at: null,
      };
      await this.store.transaction(async (trx) => {
        await trx.insertInto('snapshots').values(row).execute();
        await trx.updateTable('backups').set({ temp_snapshot_id: row.id }).where('id', '=', backup.id).execute();
      });
      snap = row;
    }
    if (snap.status === 'creating') await this.call('create_snapshot', volume.host, snap.id, {});
    return snap.id;
  }

  /** Drops a temporary snapshot; the backup's pin keeps the layer it needs. */
  async dropSnapshot(host: string, snapshotId: string): Promise<void> {
    const res = await this.store.db.updateTable('snapshots').set({ status: 'deleting', updated_at: nowIso() }).where('id', '=', snapshotId).where('status', 'in', ['available', 'error']).executeTakeFirst();
    if (res.numUpdatedRows === 1n) await this.call('delete_snapshot', host, snapshotId, {});
  }
}
