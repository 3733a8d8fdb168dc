// Backup operations on the API side (Cinder's backup/api.py): validate, check
// quota, CAS the statuses, and hand the work to the backup role as a durable
// job. The role moves a backup out of 'creating', 'deleting' and 'restoring'.
import { badRequest, invalidInput, invalidSnapshot, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { BackupRow, SnapshotRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { enforceQuota } from './quotas.js';
import { casStatus } from './status.js';
import { getVolume } from './volumes.js';

/** Jobs for the backup role are claimed by any cinder-backup service. */
export const BACKUP_TARGET = 'cinder-backup';

/** Cinder's fields.BackupStatus, less 'deleted' (a deleted backup's row is gone). */
export const BACKUP_STATUSES = ['creating', 'available', 'deleting', 'error', 'error_deleting', 'restoring'] as const;
/** What os-reset_status accepts (Cinder's backup_status format). */
export const RESETTABLE_STATUSES = ['available', 'error'] as const;

export interface CreateBackupInput {
  volumeId: string;
  snapshotId: string | null;
  name: string | null;
  description: string | null;
  container: string | null;
  incremental: boolean;
  force: boolean;
  metadata: Record<string, string>;
  availabilityZone: string | null;
}

export const invalidBackup = (reason: string) => badRequest(`Invalid backup: ${reason}`);

export async function getBackup(ex: Executor, caller: Caller, id: string): Promise<BackupRow> {
  const row = await ex.selectFrom('backups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Backup ${id} could not be found.`);
  return row;
}

/** How many backups name each of `ids` as their parent (has_dependent_backups). */
export async function dependentCounts(ex: Executor, ids: readonly string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await ex
    .selectFrom('backups')
    .select((eb) => ['parent_id', eb.fn.countAll<number>().as('n')])
    .where('parent_id', 'in', [...ids])
    .groupBy('parent_id')
    .execute();
  return new Map(rows.map((r) => [r.parent_id ?? '', Number(r.n)]));
}

/**
 * The parent of an incremental backup: the project's newest available backup
 * of the volume by data_timestamp; for a backup of a snapshot, the newest one
 * whose data is older than the snapshot.
 */
async function findParent(ex: Executor, caller: Caller, volumeId: string, snap: SnapshotRow | null): Promise<BackupRow> {
  let sel = ex
    .selectFrom('backups')
    .selectAll()
    .where('volume_id', '=', volumeId)
    .where('project_id', '=', caller.projectId)
    .where('status', '=', 'available')
    .where('data_timestamp', 'is not', null);
  if (snap) sel = sel.where('data_timestamp', '<', snap.created_at);
  const parent = await sel.orderBy('data_timestamp', 'desc').orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
  if (!parent) throw invalidBackup('No backups available to do an incremental backup.');
  return parent;
}

export async function createBackup(deps: ServiceDeps, caller: Caller, input: CreateBackupInput): Promise<BackupRow> {
  const az = input.availabilityZone ?? deps.config.availabilityZone;
  const row = await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, input.volumeId);
    let snap: SnapshotRow | null = null;
    if (input.snapshotId) {
      snap = (await trx.selectFrom('snapshots').selectAll().where('id', '=', input.snapshotId).executeTakeFirst()) ?? null;
      if (!snap || (!caller.isAdmin && snap.project_id !== caller.projectId)) throw notFound(`Snapshot ${input.snapshotId} could not be found.`);
      if (snap.volume_id !== vol.id) throw invalidVolume(`Volume ${vol.id} does not match with snapshot.volume_id ${snap.volume_id}.`);
      if (snap.status !== 'available') throw invalidSnapshot(`Snapshot to be backed up must be available, but the current status is "${snap.status}".`);
    } else if (!['available', 'in-use'].includes(vol.status)) {
      throw invalidVolume(`Volume to be backed up must be available or in-use, but the current status is "${vol.status}".`);
    } else if (vol.status === 'in-use' && !input.force) {
      throw invalidVolume('Backing up an in-use volume must use the force flag.');
    }
    // Cinder sends the backup to a backup service of the requested zone; this
    // deployment has one zone, so any other cannot be served.
    if (az !== deps.config.availabilityZone) throw invalidInput(`Availability zone '${az}' is invalid.`);
    if (!vol.host) throw invalidVolume(`Volume ${vol.id} has not been scheduled to any host.`);
    await enforceQuota(trx, deps.config, caller.projectId, { backups: 1, backup_gigabytes: vol.size });
    const parent = input.incremental ? await findParent(trx, caller, vol.id, snap) : null;
    const now = nowIso();
    const id = newId();
    const backup: BackupRow = {
      id,
      manifest_id: id,
      project_id: caller.projectId,
      user_id: caller.userId,
      volume_id: vol.id,
      snapshot_id: snap?.id ?? null,
      name: input.name,
      description: input.description,
      status: 'creating',
      fail_reason: null,
      size: vol.size,
      object_count: 0,
      container: input.container,
      availability_zone: az,
      is_incremental: parent ? 1 : 0,
      parent_id: parent?.id ?? null,
      data_timestamp: snap ? snap.created_at : now,
      host: null,
      metadata: JSON.stringify(input.metadata),
      restore_volume_id: null,
      temp_snapshot_id: null,
      tracking: null,
      bytes_read: 0,
      bytes_total: 0,
      bytes_done: 0,
      created_at: now,
      updated_at: null,
    };
    await trx.insertInto('backups').values(backup).execute();
    if (snap) {
      if (!(await casStatus(trx, 'snapshots', snap.id, ['available'], { status: 'backing-up' }))) throw invalidSnapshot(`Snapshot ${snap.id} changed status concurrently; try again.`);
    } else if (vol.status === 'available') {
      // A forced backup of an in-use volume leaves it in-use: it stays attached.
      if (!(await casStatus(trx, 'volumes', vol.id, ['available'], { status: 'backing-up' }))) throw invalidVolume(`Volume ${vol.id} changed status concurrently; try again.`);
    }
    await deps.jobs.enqueue(trx, { kind: 'create_backup', target: BACKUP_TARGET, resourceId: backup.id });
    return backup;
  });
  deps.kick?.();
  return row;
}

export async function updateBackup(deps: ServiceDeps, caller: Caller, id: string, patch: { name?: string | null; description?: string | null; metadata?: Record<string, string> }): Promise<BackupRow> {
  return deps.store.transaction(async (trx) => {
    await getBackup(trx, caller, id);
    const set: Record<string, unknown> = { updated_at: nowIso() };
    if (patch.name !== undefined) set['name'] = patch.name;
    if (patch.description !== undefined) set['description'] = patch.description;
    if (patch.metadata !== undefined) set['metadata'] = JSON.stringify(patch.metadata);
    await trx.updateTable('backups').set(set).where('id', '=', id).execute();
    return getBackup(trx, caller, id);
  });
}

/**
 * Cinder's delete: available or error unless forced (admin, any status but
 * 'deleting'), never while an incremental backup depends on it.
 */
export async function deleteBackup(deps: ServiceDeps, caller: Caller, id: string, force: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const row = await getBackup(trx, caller, id);
    if (!force && !['available', 'error'].includes(row.status)) throw invalidBackup('Backup status must be available or error');
    if (force && row.status === 'deleting') throw invalidBackup(`Backup ${id} is already being deleted.`);
    const dependent = await trx.selectFrom('backups').select('id').where('parent_id', '=', id).executeTakeFirst();
    if (dependent) throw invalidBackup('Incremental backups exist for this backup.');
    if (!(await casStatus(trx, 'backups', id, [row.status], { status: 'deleting' }))) throw invalidBackup(`Backup ${id} changed status concurrently; try again.`);
    await deps.jobs.enqueue(trx, { kind: 'delete_backup', target: BACKUP_TARGET, resourceId: id, payload: { force } });
  });
  deps.kick?.();
}

export async function resetBackupStatus(deps: ServiceDeps, caller: Caller, id: string, status: string): Promise<void> {
  const wanted = status.toLowerCase();
  if (!(RESETTABLE_STATUSES as readonly string[]).includes(wanted)) {
    throw invalidInput(`Backup status: ${status} is invalid, valid statuses are: ${RESETTABLE_STATUSES.join(', ')}.`);
  }
  await deps.store.transaction(async (trx) => {
    await getBackup(trx, caller, id);
    await trx.updateTable('backups').set({ status: wanted, updated_at: nowIso() }).where('id', '=', id).execute();
  });
}
