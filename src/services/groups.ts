// Generic volume groups on the API side (Cinder's group/api.py): validate,
// check quota, CAS statuses and, where storage is involved, hand the work to
// the group's host as one durable job.
import { badRequest, invalidInput, invalidSnapshot, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { GroupRow, VolumeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { resolveGroupType } from './group-types.js';
import { newId } from './ids.js';
import { enforceQuota } from './quotas.js';
import { casStatus } from './status.js';
import { resolveVolumeType } from './volume-types.js';
import { DELETABLE } from './volumes.js';

/** Cinder's fields.GroupStatus.ALL: what reset_status accepts. */
export const GROUP_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'in-use', 'error_deleting'] as const;

const VALID_ADD_VOL_STATUS = ['available', 'in-use'];
const VALID_REMOVE_VOL_STATUS = ['available', 'in-use', 'error', 'error_deleting'];
/** A member volume in any other state has work in flight that a group delete would race. */
const SETTLED_FOR_DELETE = [...DELETABLE, 'error_deleting'];

const invalidGroup = (reason: string) => badRequest(`Invalid Group: ${reason}`);

export async function getGroup(ex: Executor, caller: Caller, id: string): Promise<GroupRow> {
  const row = await ex.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Group ${id} could not be found.`);
  return row;
}

export function groupVolumeTypeIds(row: GroupRow): string[] {
  return JSON.parse(row.volume_type_ids) as string[];
}

/** Volumes compare by backend (host@backend), ignoring any #pool suffix, as Cinder's extract_host does. */
const backendOf = (host: string | null): string | null => (host === null ? null : host.split('#')[0]!);

function newGroupRow(caller: Caller, fields: Pick<GroupRow, 'name' | 'description' | 'status' | 'group_type_id' | 'availability_zone' | 'host' | 'group_snapshot_id' | 'source_group_id'> & { volumeTypeIds: string[] }): GroupRow {
  const { volumeTypeIds, ...rest } = fields;
  return { id: newId(), project_id: caller.projectId, user_id: caller.userId, volume_type_ids: JSON.stringify(volumeTypeIds), created_at: nowIso(), updated_at: null, ...rest };
}

export interface CreateGroupInput {
  groupType: string;
  volumeTypes: string[];
  name: string | null;
  description: string | null;
  availabilityZone: string | null;
}

/** An empty group has no storage, so it is available at once and no job is needed. */
export async function createGroup(deps: ServiceDeps, caller: Caller, input: CreateGroupInput): Promise<GroupRow> {
  const az = input.availabilityZone ?? deps.config.availabilityZone;
  if (az !== deps.config.availabilityZone) throw invalidInput(`Availability zone '${az}' is invalid.`);
  return deps.store.transaction(async (trx) => {
    const gtype = await resolveGroupType(trx, caller, input.groupType);
    const typeIds: string[] = [];
    for (const ref of input.volumeTypes) {
      const vt = await resolveVolumeType(trx, caller, ref);
      if (!typeIds.includes(vt.id)) typeIds.push(vt.id);
    }
    await enforceQuota(trx, deps.config, caller.projectId, { groups: 1 });
    const row = newGroupRow(caller, {
      name: input.name, description: input.description, status: 'available', group_type_id: gtype.id,
      availability_zone: az, host: null, group_snapshot_id: null, source_group_id: null, volumeTypeIds: typeIds,
    });
    await trx.insertInto('groups').values(row).execute();
    return row;
  });
}

interface Member {
  origin: VolumeRow;
  size: number;
  snapshotId: string | null;
  sourceVolid: string | null;
}

/** The members of a new group: one per snapshot of a group snapshot, or one per volume of a source group. */
async function sourceMembers(trx: Executor, caller: Caller, src: { groupSnapshotId?: string; sourceGroupId?: string }): Promise<{ source: GroupRow; members: Member[] }> {
  if (src.groupSnapshotId) {
    const gs = await trx.selectFrom('group_snapshots').selectAll().where('id', '=', src.groupSnapshotId).executeTakeFirst();
    if (!gs || (!caller.isAdmin && gs.project_id !== caller.projectId)) throw notFound(`GroupSnapshot ${src.groupSnapshotId} could not be found.`);
    if (gs.status !== 'available') throw invalidGroup(`Source group snapshot ${gs.id} is not in a valid state: ${gs.status}. Valid states are: available.`);
    const source = await getGroup(trx, caller, gs.group_id);
    const snaps = await trx.selectFrom('snapshots').selectAll().where('group_snapshot_id', '=', gs.id).orderBy('created_at').orderBy('id').execute();
    if (snaps.length === 0) throw invalidGroup('Group snapshot is empty. No group will be created.');
    const members: Member[] = [];
    for (const snap of snaps) {
      if (snap.status !== 'available') throw invalidSnapshot(`Originating snapshot status must be one of 'available' values`);
      const origin = await trx.selectFrom('volumes').selectAll().where('id', '=', snap.volume_id).executeTakeFirst();
      if (!origin) throw notFound(`Volume ${snap.volume_id} could not be found.`);
      members.push({ origin, size: snap.size, snapshotId: snap.id, sourceVolid: null });
    }
    return { source, members };
  }
  const source = await getGroup(trx, caller, src.sourceGroupId ?? '');
  if (source.status !== 'available') throw invalidGroup(`Source group ${source.id} is not in a valid state: ${source.status}. Valid states are: available.`);
  const vols = await trx.selectFrom('volumes').selectAll().where('group_id', '=', source.id).orderBy('created_at').orderBy('id').execute();
  if (vols.length === 0) throw invalidGroup('Source Group is empty. No group will be created.');
  for (const v of vols) {
    if (!['available', 'in-use'].includes(v.status)) throw invalidVolume(`Volume ${v.id} status must be available or in-use, but current status is: ${v.status}.`);
  }
  return { source, members: vols.map((v) => ({ origin: v, size: v.size, snapshotId: null, sourceVolid: v.id })) };
}

/**
 * create-from-src: the group and one 'creating' volume per source member are
 * inserted together, and ONE job on the source's host builds them all, since
 * the copies must be taken as one consistent set beside their sources.
 */
export async function createGroupFromSource(deps: ServiceDeps, caller: Caller, input: { groupSnapshotId?: string; sourceGroupId?: string; name: string | null; description: string | null }): Promise<GroupRow> {
  const row = await deps.store.transaction(async (trx) => {
    const { source, members } = await sourceMembers(trx, caller, input);
    const groupId = newId();
    const host = source.host ?? members.find((m) => m.origin.host)?.origin.host ?? null;
    if (!host) throw invalidGroup(`No valid host to create group ${groupId}.`);
    const total = members.reduce((n, m) => n + m.size, 0);
    await enforceQuota(trx, deps.config, caller.projectId, { groups: 1, volumes: members.length, gigabytes: total }, Math.max(...members.map((m) => m.size)));
    const group: GroupRow = {
      ...newGroupRow(caller, {
        name: input.name, description: input.description, status: 'creating', group_type_id: source.group_type_id,
        availability_zone: source.availability_zone, host, group_snapshot_id: input.groupSnapshotId ?? null,
        source_group_id: input.groupSnapshotId ? null : source.id, volumeTypeIds: groupVolumeTypeIds(source),
      }),
      id: groupId,
    };
    await trx.insertInto('groups').values(group).execute();
    const now = nowIso();
    const jobMembers: { volumeId: string; snapshotId: string | null; sourceVolid: string | null }[] = [];
    for (const m of members) {
      const vol: VolumeRow = {
        id: newId(), project_id: caller.projectId, user_id: caller.userId, name: null, description: null, size: m.size,
        status: 'creating', attach_status: 'detached', migration_status: null, volume_type_id: m.origin.volume_type_id,
        availability_zone: group.availability_zone, host, bootable: m.origin.bootable, multiattach: m.origin.multiattach,
        snapshot_id: m.snapshotId, source_volid: m.sourceVolid, group_id: groupId, metadata: '{}', active_layer_id: null,
        error_reason: null, created_at: now, updated_at: null, launched_at: null, image_metadata: null,
      };
      await trx.insertInto('volumes').values(vol).execute();
      jobMembers.push({ volumeId: vol.id, snapshotId: m.snapshotId, sourceVolid: m.sourceVolid });
    }
    await deps.jobs.enqueue(trx, {
      kind: 'create_group_from_src', target: host, resourceId: groupId,
      payload: { groupSnapshotId: group.group_snapshot_id, sourceGroupId: group.source_group_id, members: jobMembers },
    });
    return group;
  });
  deps.kick?.();
  return row;
}

const splitIds = (text: string | null | undefined): string[] => (text ? text.replace(/^,+|,+$/g, '').split(',').filter((s) => s.length > 0) : []);

export interface UpdateGroupInput {
  name?: string | null;
  description?: string | null;
  addVolumes?: string | null;
  removeVolumes?: string | null;
}

/**
 * Name/description, and membership changes. Membership is pure bookkeeping
 * here (volumes.group_id), so unlike Cinder no 'updating' round trip to the
 * volume service is needed.
 */
export async function updateGroup(deps: ServiceDeps, caller: Caller, id: string, input: UpdateGroupInput): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const group = await getGroup(trx, caller, id);
    // As Cinder: null or an unchanged value counts as "not given".
    const name = input.name?.trim() ?? null;
    const description = input.description?.trim() ?? null;
    const newName = name !== null && name !== group.name ? name : undefined;
    const newDesc = description !== null && description !== group.description ? description : undefined;
    const add = splitIds(input.addVolumes);
    const remove = splitIds(input.removeVolumes);
    const both = add.filter((v) => remove.includes(v));
    if (both.length > 0) throw invalidVolume(`UUIDs ${JSON.stringify(both)} are in both add and remove volume list.`);
    const members = await trx.selectFrom('volumes').selectAll().where('group_id', '=', id).execute();
    for (const vid of remove) {
      const v = members.find((m) => m.id === vid);
      if (!v) throw invalidVolume(`Cannot remove volume ${vid} from group ${id} because it is not in the group.`);
      if (!VALID_REMOVE_VOL_STATUS.includes(v.status)) {
        throw invalidVolume(`Cannot remove volume ${vid} from group ${id} because volume is in an invalid state: ${v.status}. Valid states are: ${VALID_REMOVE_VOL_STATUS.join(', ')}.`);
      }
    }
    const toAdd = add.filter((vid) => !members.some((m) => m.id === vid));
    let host = group.host;
    const types = groupVolumeTypeIds(group);
    for (const vid of toAdd) {
      const v = await trx.selectFrom('volumes').selectAll().where('id', '=', vid).executeTakeFirst();
      if (!v || (!caller.isAdmin && v.project_id !== caller.projectId)) throw invalidVolume(`Cannot add volume ${vid} to group ${id} because volume cannot be found.`);
      if (v.group_id) throw invalidVolume(`Cannot add volume ${vid} to group ${id} because it is already in group ${v.group_id}.`);
      if (v.project_id !== group.project_id) throw invalidVolume(`Cannot add volume ${vid} to group ${id} as they belong to different projects.`);
      if (!types.includes(v.volume_type_id)) throw invalidVolume(`Cannot add volume ${vid} to group ${id} because volume type ${v.volume_type_id} is not supported by the group.`);
      if (!VALID_ADD_VOL_STATUS.includes(v.status)) {
        throw invalidVolume(`Cannot add volume ${vid} to group ${id} because volume is in an invalid state: ${v.status}. Valid states are: ${VALID_ADD_VOL_STATUS.join(', ')}.`);
      }
      // A group never placed takes the host of its first member; after that, members must be local.
      host ??= v.host;
      if (backendOf(v.host) !== backendOf(host)) throw invalidVolume('Volume is not local to this node.');
    }
    if (newName === undefined && newDesc === undefined && toAdd.length === 0 && remove.length === 0) {
      throw invalidGroup(`Cannot update group ${id} because no valid name, description, add_volumes, or remove_volumes were provided.`);
    }
    if ((toAdd.length > 0 || remove.length > 0) && group.status !== 'available') throw invalidGroup('Group status must be available.');
    const set: Record<string, unknown> = { updated_at: nowIso(), host };
    if (newName !== undefined) set['name'] = newName;
    if (newDesc !== undefined) set['description'] = newDesc;
    await trx.updateTable('groups').set(set).where('id', '=', id).execute();
    if (toAdd.length > 0) await trx.updateTable('volumes').set({ group_id: id, updated_at: nowIso() }).where('id', 'in', toAdd).execute();
    if (remove.length > 0) await trx.updateTable('volumes').set({ group_id: null, updated_at: nowIso() }).where('id', 'in', remove).where('group_id', '=', id).execute();
  });
}

/**
 * The "delete" action. Refused while anything depends on the group; otherwise
 * the group and its members go to 'deleting' and the group's host removes them
 * with ONE job (a group that never got storage is removed at once).
 */
export async function deleteGroup(deps: ServiceDeps, caller: Caller, id: string, deleteVolumes: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const group = await getGroup(trx, caller, id);
    const cannot = `Cannot delete group ${id}. Group status must be available or error and must not have dependent group snapshots, and it cannot be the source for an ongoing group or group snapshot creation.`;
    if (!deleteVolumes && !['available', 'error'].includes(group.status)) throw invalidGroup(`Group status must be available or error, but current status is: ${group.status}`);
    // Even with delete-volumes, a group whose job is in flight is left to that job.
    if (['creating', 'deleting'].includes(group.status)) throw invalidGroup(cannot);
    const snap = await trx.selectFrom('group_snapshots').select('id').where('group_id', '=', id).executeTakeFirst();
    if (snap) throw invalidGroup('Group has existing snapshots.');
    const vols = await trx.selectFrom('volumes').selectAll().where('group_id', '=', id).execute();
    if (vols.length > 0 && !deleteVolumes) throw invalidGroup(`Group ${id} still contains volumes. The delete-volumes flag is required to delete it.`);
    for (const v of vols) {
      if (v.attach_status === 'attached') throw invalidGroup(`Volume in group ${id} is attached. Need to detach first.`);
      const dep = await trx.selectFrom('snapshots').select('id').where('volume_id', '=', v.id).executeTakeFirst();
      if (dep) throw invalidGroup('Volume in group still has dependent snapshots.');
      if (!SETTLED_FOR_DELETE.includes(v.status)) throw invalidGroup(`Volume ${v.id} in group ${id} is ${v.status}; wait until it settles.`);
    }
    const child = await trx.selectFrom('groups').select('id').where('source_group_id', '=', id).where('status', '=', 'creating').executeTakeFirst();
    if (child) throw invalidGroup(cannot);
    if (!(await casStatus(trx, 'groups', id, [group.status], { status: 'deleting' }))) throw invalidGroup('Group status changed concurrently; try again.');
    const host = group.host ?? vols.find((v) => v.host)?.host ?? null;
    if (!host) {
      // Never placed: nothing exists on any pool, so the rows can go now.
      await trx.deleteFrom('volumes').where('group_id', '=', id).execute();
      await trx.deleteFrom('groups').where('id', '=', id).execute();
      return;
    }
    if (vols.length > 0) await trx.updateTable('volumes').set({ status: 'deleting', updated_at: nowIso() }).where('group_id', '=', id).execute();
    await deps.jobs.enqueue(trx, { kind: 'delete_group', target: host, resourceId: id, payload: { deleteVolumes, volumeIds: vols.map((v) => v.id) } });
  });
  deps.kick?.();
}

export async function resetGroupStatus(deps: ServiceDeps, caller: Caller, id: string, status: string): Promise<void> {
  const wanted = status.trim().toLowerCase();
  if (!(GROUP_STATUSES as readonly string[]).includes(wanted)) {
    throw badRequest(`Invalid Group Status: Group status: ${status} is invalid, valid status are: ${GROUP_STATUSES.join(', ')}.`);
  }
  await deps.store.transaction(async (trx) => {
    await getGroup(trx, caller, id);
    await trx.updateTable('groups').set({ status: wanted, updated_at: nowIso() }).where('id', '=', id).execute();
  });
}

/** Member volume ids per group, for the 'volumes' field (3.25 list_volume=true). */
export async function memberVolumeIds(ex: Executor, groupIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(groupIds.map((g) => [g, []]));
  if (groupIds.length === 0) return out;
  const rows = await ex.selectFrom('volumes').select(['id', 'group_id']).where('group_id', 'in', groupIds).orderBy('created_at').execute();
  for (const r of rows) if (r.group_id) out.get(r.group_id)?.push(r.id);
  return out;
}
