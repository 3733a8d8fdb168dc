// Volume operations on the API side (Cinder's volume/api.py): validate, check
// quota, CAS the status, and hand the work to the owning role as a durable job.
import { badRequest, invalidInput, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { VolumeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { isEncryptedType } from './encryption-types.js';
import { enforceQuota, enforceTypeQuota } from './quotas.js';
import { casStatus } from './status.js';
import { resolveVolumeType } from './volume-types.js';
import { imageDirectory, imageForVolume, insertImageForVolume, volumeImageMetadata, type ImageRow } from './images.js';

export const DELETABLE = ['available', 'error', 'error_restoring', 'error_extending', 'error_managing'] as const;
export const VOLUME_STATUSES = [
  'creating', 'available', 'reserved', 'attaching', 'detaching', 'in-use', 'maintenance', 'deleting',
  'awaiting-transfer', 'error', 'error_deleting', 'backing-up', 'restoring-backup', 'error_backing-up',
  'error_restoring', 'error_extending', 'downloading', 'uploading', 'retyping', 'extending', 'reverting',
] as const;

export interface CreateVolumeInput {
  size?: number;
  name?: string | null;
  description?: string | null;
  volumeType?: string | null;
  availabilityZone?: string | null;
  snapshotId?: string | null;
  sourceVolid?: string | null;
  groupId?: string | null;
  metadata?: Record<string, string>;
  multiattach?: boolean;
  /** Create from this image (id): the volume role writes the image into the new volume. */
  imageRef?: string | null;
}

export async function getVolume(ex: Executor, caller: Caller, id: string): Promise<VolumeRow> {
  const row = await ex.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Volume ${id} could not be found.`);
  return row;
}

export async function createVolume(deps: ServiceDeps, caller: Caller, input: CreateVolumeInput): Promise<VolumeRow> {
  const row = await deps.store.transaction((trx) => insertVolume(trx, deps, caller, input));
  deps.kick?.();
  return row;
}

/**
 * createVolume's work inside the caller's transaction, for operations that
 * make a volume as one step of their own (a restore into a new volume): checks,
 * quota, the row in 'creating' and its create or schedule job. The caller kicks.
 */
export async function insertVolume(trx: Executor, deps: ServiceDeps, caller: Caller, input: CreateVolumeInput): Promise<VolumeRow> {
  const { jobs, config } = deps;
  const az = input.availabilityZone ?? config.availabilityZone;
  if (az !== config.availabilityZone) throw invalidInput(`Availability zone '${az}' is invalid.`);
  let size = input.size;
  let host: string | null = null;
  let typeRef = input.volumeType;
  // Clones keep their source's image metadata and bootable flag, as Cinder's
  // volume_glance_metadata does: a clone of a boot volume boots.
  let inherited: { image_metadata: string | null; bootable: number } | null = null;
  if (input.snapshotId) {
    const snap = await trx.selectFrom('snapshots').selectAll().where('id', '=', input.snapshotId).executeTakeFirst();
    if (!snap || (!caller.isAdmin && snap.project_id !== caller.projectId)) throw notFound(`Snapshot ${input.snapshotId} could not be found.`);
    if (snap.status !== 'available') throw badRequest(`Invalid snapshot: Originating snapshot status must be one of 'available' values`);
    size ??= snap.size;
    if (size < snap.size) throw invalidInput(`Volume size '${size}'GB cannot be smaller than the snapshot size ${snap.size}GB. They must be >= original snapshot size.`);
    const origin = await trx.selectFrom('volumes').select(['host', 'volume_type_id', 'image_metadata', 'bootable']).where('id', '=', snap.volume_id).executeTakeFirst();
    host = origin?.host ?? null;
    typeRef ??= origin?.volume_type_id ?? null;
    inherited = origin ?? null;
  } else if (input.sourceVolid) {
    const src = await trx.selectFrom('volumes').selectAll().where('id', '=', input.sourceVolid).executeTakeFirst();
    if (!src || (!caller.isAdmin && src.project_id !== caller.projectId)) throw notFound(`Volume ${input.sourceVolid} could not be found.`);
    if (!['available', 'in-use'].includes(src.status)) throw invalidVolume(`Volume ${src.id} status must be available or in-use, but current status is: ${src.status}.`);
    size ??= src.size;
    if (size < src.size) throw invalidInput(`Volume size '${size}'GB cannot be smaller than original volume size  ${src.size}GB. They must be >= original volume size.`);
    host = src.host;
    typeRef ??= src.volume_type_id;
    inherited = src;
  }
  let imageMetadata: Record<string, string> | null = null;
  if (input.imageRef) {
    if (input.snapshotId || input.sourceVolid) throw invalidInput('imageRef cannot be combined with snapshot_id or source_volid.');
    const fit = await imageForVolume(trx, caller, input.imageRef, size);
    size = fit.sizeGiB;
    imageMetadata = volumeImageMetadata(fit.image);
  }
  if (size === undefined) throw invalidInput(`Size must be specified when creating a volume without a source.`);
  const vtype = await resolveVolumeType(trx, caller, typeRef);
  if (await isEncryptedType(trx, vtype.id)) throw invalidInput('encrypted volume types are not supported by this deployment.');
  if (input.groupId) {
    const group = await trx.selectFrom('groups').selectAll().where('id', '=', input.groupId).executeTakeFirst();
    if (!group || (!caller.isAdmin && group.project_id !== caller.projectId)) throw notFound(`Group ${input.groupId} could not be found.`);
    if (group.status !== 'available') throw badRequest(`Invalid group: Group status must be available, but current status is: ${group.status}.`);
    const types = JSON.parse(group.volume_type_ids) as string[];
    if (!types.includes(vtype.id)) throw invalidInput(`Invalid volume_type provided: ${vtype.id} is not in group ${group.id}.`);
    host ??= group.host;
  }
  await enforceQuota(trx, config, caller.projectId, { volumes: 1, gigabytes: size }, size, vtype.id);
  const now = nowIso();
  const volume: VolumeRow = {
    id: newId(),
    project_id: caller.projectId,
    user_id: caller.userId,
    name: input.name ?? null,
    description: input.description ?? null,
    size,
    status: 'creating',
    attach_status: 'detached',
    migration_status: null,
    volume_type_id: vtype.id,
    availability_zone: az,
    host,
    bootable: inherited?.bootable ?? 0,
    multiattach: input.multiattach ? 1 : 0,
    snapshot_id: input.snapshotId ?? null,
    source_volid: input.sourceVolid ?? null,
    group_id: input.groupId ?? null,
    metadata: JSON.stringify(input.metadata ?? {}),
    active_layer_id: null,
    error_reason: null,
    created_at: now,
    updated_at: null,
    launched_at: null,
    image_metadata: imageMetadata ? JSON.stringify(imageMetadata) : (inherited?.image_metadata ?? null),
  };
  await trx.insertInto('volumes').values(volume).execute();
  // A clone or a volume from a snapshot must live beside its source; anything
  // else is placed by the scheduler.
  await jobs.enqueue(trx, host ? { kind: 'create_volume', target: host, resourceId: volume.id } : { kind: 'schedule_volume', target: null, resourceId: volume.id });
  return volume;
}

export async function updateVolume(deps: ServiceDeps, caller: Caller, id: string, patch: { name?: string | null; description?: string | null; metadata?: Record<string, string> }): Promise<VolumeRow> {
  return deps.store.transaction(async (trx) => {
    await getVolume(trx, caller, id);
    const set: Record<string, unknown> = { updated_at: nowIso() };
    if (patch.name !== undefined) set['name'] = patch.name;
    if (patch.description !== undefined) set['description'] = patch.description;
    if (patch.metadata !== undefined) set['metadata'] = JSON.stringify(patch.metadata);
    await trx.updateTable('volumes').set(set).where('id', '=', id).execute();
    return getVolume(trx, caller, id);
  });
}

export async function deleteVolume(deps: ServiceDeps, caller: Caller, id: string, opts: { cascade: boolean; force: boolean }): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    if (opts.force && !caller.isAdmin) throw badRequest('Policy does not allow force delete.');
    if (!opts.force) {
      if (!(DELETABLE as readonly string[]).includes(vol.status)) {
        throw invalidVolume(`Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.`);
      }
      if (vol.attach_status === 'attached') throw invalidVolume(`Volume ${id} is attached; detach it first.`);
      if (vol.group_id) throw invalidVolume(`Volume ${id} belongs to group ${vol.group_id}; remove it from the group or delete the group.`);
    } else if (vol.status === 'deleting') {
      throw invalidVolume(`Volume ${id} is already being deleted.`);
    }
    const snaps = await trx.selectFrom('snapshots').select(['id', 'status']).where('volume_id', '=', id).execute();
    if (snaps.length > 0 && !opts.cascade) throw invalidVolume(`Volume ${id} still has ${snaps.length} dependent snapshots.`);
    for (const s of snaps) {
      if (!['available', 'error', 'deleting', 'error_deleting'].includes(s.status)) throw invalidVolume(`Snapshot ${s.id} is in status ${s.status} and cannot be deleted with its volume.`);
    }
    const ok = await casStatus(trx, 'volumes', id, [vol.status], { status: 'deleting' });
    if (!ok) throw invalidVolume(`Volume ${id} changed status concurrently; try again.`);
    if (snaps.length > 0) await trx.updateTable('snapshots').set({ status: 'deleting', updated_at: nowIso() }).where('volume_id', '=', id).execute();
    if (!vol.host) {
      // Never placed: nothing exists on any pool, so the row can go now.
      await trx.deleteFrom('volumes').where('id', '=', id).execute();
      return;
    }
    await deps.jobs.enqueue(trx, { kind: 'delete_volume', target: vol.host, resourceId: id, payload: { cascade: opts.cascade } });
  });
  deps.kick?.();
}

export async function extendVolume(deps: ServiceDeps, caller: Caller, id: string, newSize: number, allowInUse: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    const allowed = allowInUse ? ['available', 'in-use'] : ['available'];
    if (!allowed.includes(vol.status)) throw invalidVolume(`Volume status must be ${allowed.join(' or ')} to extend, but current status is: ${vol.status}.`);
    if (newSize <= vol.size) throw invalidInput(`New size for extend must be greater than current size. (current: ${vol.size}, extended: ${newSize}).`);
    // qemu-storage-daemon 7.2 cannot resize an image while it is exported, so a
    // connected volume cannot grow online: refuse before anything changes.
    const connected = await trx.selectFrom('attachments').select('id').where('volume_id', '=', id).where('status', '!=', 'detached').where('export_id', 'is not', null).executeTakeFirst();
    if (connected) throw invalidVolume(`Volume ${id} is connected (attachment ${connected.id}); extending a connected volume is not supported by this backend. Detach it first.`);
    await enforceQuota(trx, deps.config, vol.project_id, { gigabytes: newSize - vol.size }, newSize, vol.volume_type_id);
    if (!(await casStatus(trx, 'volumes', id, [vol.status], { status: 'extending', error_reason: vol.status }))) throw invalidVolume('Volume status changed concurrently; try again.');
    await deps.jobs.enqueue(trx, { kind: 'extend_volume', target: vol.host, resourceId: id, payload: { newSize, previousStatus: vol.status } });
  });
  deps.kick?.();
}

export async function revertVolume(deps: ServiceDeps, caller: Caller, id: string, snapshotId: string): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    const snap = await trx.selectFrom('snapshots').selectAll().where('id', '=', snapshotId).executeTakeFirst();
    if (!snap || snap.volume_id !== id) throw badRequest(`Invalid snapshot: Snapshot ${snapshotId} does not belong to volume ${id}.`);
    if (vol.status !== 'available') throw invalidVolume(`Volume status must be available to revert, but current status is: ${vol.status}.`);
    if (snap.status !== 'available') throw badRequest(`Invalid snapshot: Snapshot status must be available to revert, but current status is: ${snap.status}.`);
    const latest = await trx.selectFrom('snapshots').select('id').where('volume_id', '=', id).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    if (latest?.id !== snapshotId) throw badRequest(`Invalid snapshot: Volume ${id} can only be reverted to its latest snapshot.`);
    if (vol.size !== snap.size) throw invalidVolume(`Volume ${id} has been extended since snapshot ${snapshotId}; it cannot be reverted.`);
    if (!(await casStatus(trx, 'volumes', id, ['available'], { status: 'reverting' }))) throw invalidVolume('Volume status changed concurrently; try again.');
    if (!(await casStatus(trx, 'snapshots', snapshotId, ['available'], { status: 'restoring' }))) throw badRequest('Invalid snapshot: status changed concurrently; try again.');
    await deps.jobs.enqueue(trx, { kind: 'revert_volume', target: vol.host, resourceId: id, payload: { snapshotId } });
  });
  deps.kick?.();
}

export async function resetVolumeStatus(deps: ServiceDeps, caller: Caller, id: string, body: { status?: string; attach_status?: string; migration_status?: string }): Promise<void> {
  await deps.store.transaction(async (trx) => {
    await getVolume(trx, caller, id);
    const set: Record<string, unknown> = { updated_at: nowIso() };
    if (body.status !== undefined) {
      if (!(VOLUME_STATUSES as readonly string[]).includes(body.status)) throw invalidInput(`Must specify a valid status`);
      set['status'] = body.status;
    }
    if (body.attach_status !== undefined) {
      if (!['attached', 'detached'].includes(body.attach_status)) throw invalidInput(`Must specify a valid attach status`);
      set['attach_status'] = body.attach_status;
    }
    if (body.migration_status !== undefined) {
      if (!['migrating', 'error', 'success', 'completing', 'none', 'starting'].includes(body.migration_status)) throw invalidInput(`Must specify a valid migration status`);
      set['migration_status'] = body.migration_status === 'none' ? null : body.migration_status;
    }
    if (Object.keys(set).length === 1) throw invalidInput('Must specify status, attach_status or migration_status.');
    await trx.updateTable('volumes').set(set).where('id', '=', id).execute();
  });
}

export async function setBootable(deps: ServiceDeps, caller: Caller, id: string, bootable: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    await getVolume(trx, caller, id);
    await trx.updateTable('volumes').set({ bootable: bootable ? 1 : 0, updated_at: nowIso() }).where('id', '=', id).execute();
  });
}


/** os-retype. Every pool of a deployment stores every type the same way, so a
 *  retype never moves data: it is a compare-and-swap of the type after the same
 *  checks Cinder makes (state, same type, group membership, per-type quota). */
export async function retypeVolume(deps: ServiceDeps, caller: Caller, id: string, newType: string, policy: 'never' | 'on-demand'): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    if (!['available', 'in-use'].includes(vol.status)) throw invalidVolume(`Volume status must be available or in-use to retype, but current status is: ${vol.status}.`);
    const vtype = await resolveVolumeType(trx, caller, newType);
    if (vtype.id === vol.volume_type_id) throw invalidInput('Retype requested to the same volume type.');
    if (await isEncryptedType(trx, vtype.id)) throw invalidInput('Retype to an encrypted volume type is not supported by this deployment.');
    if (vol.group_id) {
      const group = await trx.selectFrom('groups').select('volume_type_ids').where('id', '=', vol.group_id).executeTakeFirst();
      if (group && !(JSON.parse(group.volume_type_ids) as string[]).includes(vtype.id)) throw invalidInput(`Volume type ${vtype.id} is not a type of group ${vol.group_id}.`);
    }
    void policy;
    // Only the new type's own quota changes: the project's totals stay the same.
    await enforceTypeQuota(trx, deps.config, vol.project_id, { volumes: 1, gigabytes: vol.size }, vtype.id);
    if (!(await casStatus(trx, 'volumes', id, [vol.status], { volume_type_id: vtype.id }))) throw invalidVolume('Volume status changed concurrently; try again.');
  });
}

/** Keys of volume_image_metadata that describe the source image itself, not properties to carry over. */
const IMAGE_BASE_KEYS = new Set(['image_id', 'image_name', 'checksum', 'size', 'disk_format', 'container_format', 'min_disk', 'min_ram']);

export interface UploadToImageInput {
  readonly imageName: string;
  readonly force: boolean;
  readonly diskFormat: string;
  readonly containerFormat: string;
  readonly visibility: string;
  readonly protected: boolean;
}

/** os-volume_upload_image (Cinder's copy_volume_to_image): a queued image is made
 *  now, the volume goes to uploading, and its host's volume role fills the image. */
export async function uploadVolumeToImage(deps: ServiceDeps, caller: Caller, id: string, input: UploadToImageInput): Promise<{ volume: VolumeRow; image: ImageRow }> {
  const out = await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    const allowed = input.force ? ['available', 'in-use'] : ['available'];
    if (!allowed.includes(vol.status)) throw invalidVolume(`Volume ${id} status must be ${allowed.join(' or ')}${input.force ? '' : ' (in-use needs force)'}, but current status is: ${vol.status}.`);
    if (!vol.host || !vol.active_layer_id) throw invalidVolume(`Volume ${id} has no storage yet.`);
    const carried: Record<string, string> = {};
    for (const [k, v] of Object.entries(JSON.parse(vol.image_metadata ?? '{}') as Record<string, string>)) if (!IMAGE_BASE_KEYS.has(k)) carried[k] = v;
    const image = await insertImageForVolume(trx, caller, {
      name: input.imageName, diskFormat: input.diskFormat, containerFormat: input.containerFormat, visibility: input.visibility, protected: input.protected, properties: carried, minDisk: vol.size,
    });
    if (!(await casStatus(trx, 'volumes', id, [vol.status], { status: 'uploading' }))) throw invalidVolume('Volume status changed concurrently; try again.');
    await deps.jobs.enqueue(trx, { kind: 'upload_volume_to_image', target: vol.host, resourceId: id, payload: { imageId: image.id, previousStatus: vol.status, directory: imageDirectory(deps) } });
    return { volume: { ...vol, status: 'uploading' }, image };
  });
  deps.kick?.();
  return out;
}

/** os-set_image_metadata / os-unset_image_metadata: edits the volume's copy of image properties. */
export async function changeVolumeImageMetadata(deps: ServiceDeps, caller: Caller, id: string, change: { set?: Record<string, string>; unset?: string }): Promise<Record<string, string>> {
  return deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, id);
    if (!['available', 'in-use'].includes(vol.status)) throw invalidVolume(`Volume ${id} status must be available or in-use, but current status is: ${vol.status}.`);
    const meta = JSON.parse(vol.image_metadata ?? '{}') as Record<string, string>;
    if (change.unset !== undefined) {
      if (!(change.unset in meta)) throw notFound(`Glance metadata for volume ${id} with key ${change.unset} could not be found.`);
      delete meta[change.unset];
    }
    Object.assign(meta, change.set ?? {});
    await trx.updateTable('volumes').set({ image_metadata: Object.keys(meta).length > 0 ? JSON.stringify(meta) : null, updated_at: nowIso() }).where('id', '=', id).execute();
    return meta;
  });
}
