// Snapshot operations on the API side (the snapshot half of Cinder's
// volume/api.py): validate, check quota, CAS the status, and hand the work to
// the host that owns the volume as a durable job.
import { badRequest, invalidInput, invalidSnapshot, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { SnapshotRow, VolumeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { enforceQuota } from './quotas.js';
import { casStatus } from './status.js';
import { getVolume } from './volumes.js';

/** Cinder's fields.SnapshotStatus.ALL: what os-reset_status accepts. */
export const SNAPSHOT_STATUSES = [
  'error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting', 'unmanaging', 'backing-up', 'restoring',
] as const;

/** os-update_snapshot_status may only move a snapshot along these edges (Cinder's status_map). */
const UPDATE_STATUS_MAP: Record<string, readonly string[]> = {
  creating: ['creating', 'available', 'error'],
  deleting: ['deleting', 'error_deleting'],
};

export interface CreateSnapshotInput {
  volumeId: string | null;
  force: boolean;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export async function getSnapshot(ex: Executor, caller: Caller, id: string): Promise<SnapshotRow> {
  const row = await ex.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Snapshot ${id} could not be found.`);
  return row;
}

/**
 * Cinder's _create_snapshot_in_db_validate, shared with group snapshots: a
 * volume can only be snapshotted where it lives and when it is settled.
 */
export function checkSnapshotSource(vol: VolumeRow): void {
  if (!vol.host) throw invalidVolume('The snapshot cannot be created because volume has not been scheduled to any host.');
  if (vol.status === 'maintenance') throw invalidVolume('The snapshot cannot be created when the volume is in maintenance mode.');
  if (vol.migration_status && !['error', 'success', 'none'].includes(vol.migration_status)) {
    throw invalidVolume('Snapshot cannot be created while volume is migrating.');
  }
  if (vol.status === 'error') throw invalidVolume('The snapshot cannot be created when the volume is in error status.');
}

/** The row of a fresh snapshot in 'creating'; the volume role fills in layer_id and progress. */
export function newSnapshotRow(caller: Caller, vol: VolumeRow, fields: { name: string | null; description: string | null; metadata: Record<string, string>; groupSnapshotId: string | null }): SnapshotRow {
  return {
    id: newId(),
    project_id: caller.projectId,
    user_id: caller.userId,
    volume_id: vol.id,
    name: fields.name,
    description: fields.description,
    size: vol.size,
    status: 'creating',
    progress: '0%',
    layer_id: null,
    group_snapshot_id: fields.groupSnapshotId,
    metadata: JSON.stringify(fields.metadata),
    created_at: nowIso(),
    updated_at: null,
  };
}

export async function createSnapshot(deps: ServiceDeps, caller: Caller, input: CreateSnapshotInput): Promise<SnapshotRow> {
  const row = await deps.store.transaction(async (trx) => {
    // Cinder looks the volume up even for a null id, hence "Volume None".
    if (!input.volumeId) throw notFound('Volume None could not be found.');
    const vol = await getVolume(trx, caller, input.volumeId);
    checkSnapshotSource(vol);
    const valid = input.force ? ['available', 'in-use'] : ['available'];
    if (!valid.includes(vol.status)) {
      throw invalidVolume(`Volume ${vol.id} status must be ${valid.join(', ')}, but current status is: ${vol.status}.`);
    }
    await enforceQuota(trx, deps.config, caller.projectId, { snapshots: 1, gigabytes: vol.size });
    const snap = newSnapshotRow(caller, vol, { name: input.name, description: input.description, metadata: input.metadata, groupSnapshotId: null });
    await trx.insertInto('snapshots').values(snap).execute();
    await deps.jobs.enqueue(trx, { kind: 'create_snapshot', target: vol.host, resourceId: snap.id, payload: { volumeId: vol.id } });
    return snap;
  });
  deps.kick?.();
  return row;
}

export async function updateSnapshot(deps: ServiceDeps, caller: Caller, id: string, patch: { name?: string | null; description?: string | null }): Promise<SnapshotRow> {
  return deps.store.transaction(async (trx) => {
    await getSnapshot(trx, caller, id);
    const set: Record<string, unknown> = { updated_at: nowIso() };
    if (patch.name !== undefined) set['name'] = patch.name;
    if (patch.description !== undefined) set['description'] = patch.description;
    await trx.updateTable('snapshots').set(set).where('id', '=', id).execute();
    return getSnapshot(trx, caller, id);
  });
}

/**
 * Cinder's delete_snapshot: a member of a group snapshot goes only with its
 * group snapshot, forced or not; unforced, the status must be settled.
 */
export async function deleteSnapshot(deps: ServiceDeps, caller: Caller, id: string, force: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const snap = await getSnapshot(trx, caller, id);
    const settled = ['available', 'error'].includes(snap.status);
    if (snap.group_snapshot_id || (!force && !settled)) {
      throw invalidSnapshot(force ? 'Snapshot must not be part of a group.' : 'Snapshot status must be available or error and must not be part of a group.');
    }
    if (!(await casStatus(trx, 'snapshots', id, [snap.status], { status: 'deleting' }))) {
      throw invalidSnapshot(`Snapshot ${id} changed status concurrently; try again.`);
    }
    const vol = await trx.selectFrom('volumes').select(['host']).where('id', '=', snap.volume_id).executeTakeFirst();
    const host = vol?.host ?? null;
    if (!host && !snap.layer_id) {
      // Nothing was ever written on a pool for it, so the row can go now.
      await trx.deleteFrom('snapshots').where('id', '=', id).execute();
      return;
    }
    await deps.jobs.enqueue(trx, { kind: 'delete_snapshot', target: host, resourceId: id, payload: { volumeId: snap.volume_id, force } });
  });
  deps.kick?.();
}

export async function resetSnapshotStatus(deps: ServiceDeps, caller: Caller, id: string, status: string): Promise<void> {
  const wanted = status.toLowerCase();
  if (!(SNAPSHOT_STATUSES as readonly string[]).includes(wanted)) {
    throw badRequest(`Invalid input received: Snapshot status: ${status} is invalid, valid statuses are: ${SNAPSHOT_STATUSES.join(', ')}.`);
  }
  await deps.store.transaction(async (trx) => {
    await getSnapshot(trx, caller, id);
    await trx.updateTable('snapshots').set({ status: wanted, updated_at: nowIso() }).where('id', '=', id).execute();
  });
}

/** Nova's os-update_snapshot_status for assisted snapshots: only the edges Cinder allows. */
export async function updateSnapshotStatus(deps: ServiceDeps, caller: Caller, id: string, status: string, progress: string | undefined): Promise<void> {
  if (progress) {
    const m = /^(\d+)%$/.exec(progress);
    if (!m || Number(m[1]) > 100) throw invalidInput('progress must be an integer percentage between 0 and 100');
  }
  await deps.store.transaction(async (trx) => {
    const snap = await getSnapshot(trx, caller, id);
    const allowed = UPDATE_STATUS_MAP[snap.status];
    if (!allowed) throw badRequest(`Snapshot status ${snap.status} not allowed for update_snapshot_status`);
    if (!allowed.includes(status)) throw badRequest(`Provided snapshot status ${status} not allowed for snapshot with status ${snap.status}.`);
    const set: Record<string, unknown> = { status, updated_at: nowIso() };
    if (progress) set['progress'] = progress;
    if (!(await casStatus(trx, 'snapshots', id, [snap.status], set))) throw badRequest('Snapshot status changed concurrently; try again.');
  });
}

