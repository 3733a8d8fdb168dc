// Group snapshots on the API side (the group snapshot half of Cinder's
// group/api.py): one crash-consistent point in time across every member of a
// group, so the rows are made together and ONE job on the group's host takes
// all member snapshots at once.
import { badRequest, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { GroupSnapshotRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { getGroup } from './groups.js';
import { newId } from './ids.js';
import { enforceQuota } from './quotas.js';
import { checkSnapshotSource, newSnapshotRow } from './snapshots.js';
import { casStatus } from './status.js';

/** Cinder's fields.GroupSnapshotStatus.ALL: what reset_status accepts. */
export const GROUP_SNAPSHOT_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting'] as const;

const invalidGroupSnapshot = (reason: string) => badRequest(`Invalid GroupSnapshot: ${reason}`);

export async function getGroupSnapshot(ex: Executor, caller: Caller, id: string): Promise<GroupSnapshotRow> {
  const row = await ex.selectFrom('group_snapshots').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`GroupSnapshot ${id} could not be found.`);
  return row;
}

export async function createGroupSnapshot(deps: ServiceDeps, caller: Caller, input: { groupId: string; name: string | null; description: string | null }): Promise<GroupSnapshotRow> {
  const row = await deps.store.transaction(async (trx) => {
    const group = await getGroup(trx, caller, input.groupId);
    if (group.status !== 'available') throw badRequest(`Invalid Group: Group ${group.id} status must be available, but current status is: ${group.status}.`);
    const vols = await trx.selectFrom('volumes').selectAll().where('group_id', '=', group.id).orderBy('created_at').orderBy('id').execute();
    if (vols.length === 0) throw badRequest(`Invalid Group: Group ${group.id} has no volumes; there is nothing to snapshot.`);
    for (const v of vols) {
      checkSnapshotSource(v);
      if (!['available', 'in-use'].includes(v.status)) throw invalidVolume(`Volume ${v.id} status must be available, in-use, but current status is: ${v.status}.`);
    }
    const host = group.host ?? vols[0]!.host;
    if (vols.some((v) => v.host !== host)) throw badRequest(`Invalid Group: Volumes of group ${group.id} are not all on one host.`);
    await enforceQuota(trx, deps.config, caller.projectId, { snapshots: vols.length, gigabytes: vols.reduce((n, v) => n + v.size, 0) });
    const gs: GroupSnapshotRow = {
      id: newId(),
      project_id: caller.projectId,
      user_id: caller.userId,
      group_id: group.id,
      group_type_id: group.group_type_id,
      name: input.name,
      description: input.description,
      status: 'creating',
      created_at: nowIso(),
      updated_at: null,
    };
    await trx.insertInto('group_snapshots').values(gs).execute();
    const members: { snapshotId: string; volumeId: string }[] = [];
    for (const v of vols) {
      // Cinder names each member snapshot after its group snapshot.
      const snap = newSnapshotRow(caller, v, { name: input.name, description: input.description, metadata: {}, groupSnapshotId: gs.id });
      await trx.insertInto('snapshots').values(snap).execute();
      members.push({ snapshotId: snap.id, volumeId: v.id });
    }
    await deps.jobs.enqueue(trx, { kind: 'create_group_snapshot', target: host, resourceId: gs.id, payload: { groupId: group.id, members } });
    return gs;
  });
  deps.kick?.();
  return row;
}

export async function deleteGroupSnapshot(deps: ServiceDeps, caller: Caller, id: string): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const gs = await getGroupSnapshot(trx, caller, id);
    const child = await trx.selectFrom('groups').select('id').where('group_snapshot_id', '=', id).where('status', '=', 'creating').executeTakeFirst();
    if (!['available', 'error'].includes(gs.status) || child) {
      throw invalidGroupSnapshot('GroupSnapshot status must be available or error, and no Group can be currently using it as source for its creation.');
    }
    if (!(await casStatus(trx, 'group_snapshots', id, [gs.status], { status: 'deleting' }))) throw invalidGroupSnapshot('status changed concurrently; try again.');
    const snaps = await trx.selectFrom('snapshots').select(['id', 'volume_id', 'layer_id']).where('group_snapshot_id', '=', id).execute();
    const group = await trx.selectFrom('groups').select('host').where('id', '=', gs.group_id).executeTakeFirst();
    let host = group?.host ?? null;
    if (!host && snaps[0]) {
      const vol = await trx.selectFrom('volumes').select('host').where('id', '=', snaps[0].volume_id).executeTakeFirst();
      host = vol?.host ?? null;
    }
    if (!host && snaps.every((s) => !s.layer_id)) {
      // Nothing was ever written on a pool for it, so the rows can go now.
      await trx.deleteFrom('snapshots').where('group_snapshot_id', '=', id).execute();
      await trx.deleteFrom('group_snapshots').where('id', '=', id).execute();
      return;
    }
    if (snaps.length > 0) await trx.updateTable('snapshots').set({ status: 'deleting', updated_at: nowIso() }).where('group_snapshot_id', '=', id).execute();
    await deps.jobs.enqueue(trx, { kind: 'delete_group_snapshot', target: host, resourceId: id, payload: { groupId: gs.group_id, snapshotIds: snaps.map((s) => s.id) } });
  });
  deps.kick?.();
}

export async function resetGroupSnapshotStatus(deps: ServiceDeps, caller: Caller, id: string, status: string): Promise<void> {
  const wanted = status.trim().toLowerCase();
  if (!(GROUP_SNAPSHOT_STATUSES as readonly string[]).includes(wanted)) {
    throw badRequest(`Invalid GroupSnapshot Status: Group snapshot status: ${status} is invalid, valid statuses are: ${GROUP_SNAPSHOT_STATUSES.join(', ')}.`);
  }
  await deps.store.transaction(async (trx) => {
    await getGroupSnapshot(trx, caller, id);
    await trx.updateTable('group_snapshots').set({ status: wanted, updated_at: nowIso() }).where('id', '=', id).execute();
  });
}
