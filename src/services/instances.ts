// Instances: VMs the compute role runs on Bulwark volumes. The API writes the
// row and the volume reservations in one transaction and hands the work to the
// compute role of the chosen host as a job; every status change is a CAS on
// (status, task_state), so two requests can never both move one instance.
import { ApiError, badRequest, conflict, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { InstanceBoot, InstanceRow, InstanceVolumeRow, VolumeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { casStatus } from './status.js';
import { deleteAttachment, reservedAttachmentRow } from './attachments.js';
import { canSee } from './images.js';
import { COMPUTE_BINARY, listUpServices } from './registry.js';

export { COMPUTE_BINARY };

export function computeTarget(host: string): string {
  return `compute@${host}`;
}

export interface Flavor {
  readonly id: string;
  readonly name: string;
  readonly vcpus: number;
  readonly ram: number;
  readonly disk: number;
}

/** A fixed flavor list: Bulwark sizes VMs for the workloads it protects, not a cloud's catalogue. */
export const FLAVORS: readonly Flavor[] = [
  { id: '1', name: 'm1.tiny', vcpus: 1, ram: 256, disk: 0 },
  { id: '2', name: 'm1.small', vcpus: 1, ram: 512, disk: 0 },
  { id: '3', name: 'm1.medium', vcpus: 2, ram: 1024, disk: 0 },
  { id: '4', name: 'm1.large', vcpus: 2, ram: 2048, disk: 0 },
];

export function findFlavor(ref: string): Flavor | undefined {
  const id = ref.replace(/^.*\/flavors\//, '');
  return FLAVORS.find((f) => f.id === id || f.name === id);
}

/** Stored in instances.boot: how to boot, plus the flavor it was made from. */
export interface StoredBoot extends InstanceBoot {
  flavorId: string;
}

export function bootOf(row: InstanceRow): StoredBoot {
  return JSON.parse(row.boot) as StoredBoot;
}

export interface BlockDeviceMapping {
  uuid: string;
  bootIndex: number | null;
  deleteOnTermination: boolean;
}

export interface CreateServerInput {
  name: string;
  flavorRef: string;
  mappings: BlockDeviceMapping[];
  metadata: Record<string, string>;
}

export async function getInstance(ex: Executor, caller: Caller, id: string): Promise<InstanceRow> {
  const row = await ex.selectFrom('instances').selectAll().where('id', '=', id).where('status', '!=', 'DELETED').executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Instance ${id} could not be found.`);
  return row;
}

export async function instanceVolumes(ex: Executor, instanceId: string): Promise<InstanceVolumeRow[]> {
  return ex.selectFrom('instance_volumes').selectAll().where('instance_id', '=', instanceId).orderBy('device').execute();
}

export async function listInstances(ex: Executor, caller: Caller, filters: { allTenants: boolean; name?: string; status?: string }): Promise<InstanceRow[]> {
  let q = ex.selectFrom('instances').selectAll().where('status', '!=', 'DELETED');
  if (!(caller.isAdmin && filters.allTenants)) q = q.where('project_id', '=', caller.projectId);
  if (filters.status) q = q.where('status', '=', filters.status.toUpperCase());
  const rows = await q.orderBy('created_at', 'desc').orderBy('id').execute();
  // Nova's name filter is a regular expression; a substring match covers what clients send.
  return filters.name ? rows.filter((r) => r.name.includes(filters.name!)) : rows;
}

/** Where the boot volume says its kernel, initramfs and command line are
 *  (Glance's kernel_id / ramdisk_id / os_command_line, carried in the volume's
 *  image metadata as Cinder does). */
function bootFromVolume(vol: VolumeRow): InstanceBoot {
  const meta = vol.image_metadata ? (JSON.parse(vol.image_metadata) as Record<string, unknown>) : {};
  const kernel = meta['kernel_id'];
  const ramdisk = meta['ramdisk_id'];
  if (typeof kernel !== 'string' || typeof ramdisk !== 'string') {
    throw badRequest(`Block Device Mapping is Invalid: volume ${vol.id} is not bootable here: its image metadata names no kernel_id and ramdisk_id (Bulwark boots with QEMU direct kernel boot).`);
  }
  const cmd = meta['os_command_line'];
  return { kernelImageId: kernel, ramdiskImageId: ramdisk, commandLine: typeof cmd === 'string' ? cmd : 'console=ttyS0' };
}

async function checkBootImage(ex: Executor, caller: Caller, imageId: string, what: string): Promise<void> {
  const img = await ex.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
  if (!img || !canSee(img, caller)) throw badRequest(`Block Device Mapping is Invalid: ${what} image ${imageId} could not be found.`);
  if (img.status !== 'active' || !img.location) throw badRequest(`Block Device Mapping is Invalid: ${what} image ${imageId} is not active.`);
}

/** The least busy live, enabled compute host: fewest instances not deleted. */
export async function pickComputeHost(deps: ServiceDeps): Promise<string | null> {
  const up = (await listUpServices(deps.store.db, COMPUTE_BINARY, deps.config.jobs.serviceDownAfterMs)).filter((s) => !s.disabled);
  if (up.length === 0) return null;
  const counts = await deps.store.db
    .selectFrom('instances')
    .select(['host', (eb) => eb.fn.countAll<number>().as('n')])
    .where('status', '!=', 'DELETED')
    .groupBy('host')
    .execute();
  const load = new Map(counts.map((c) => [c.host, Number(c.n)]));
  return up.map((s) => s.host).sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b))[0]!;
}

function deviceName(i: number): string {
  if (i >= 26) throw badRequest('Block Device Mapping is Invalid: at most 26 volumes per server.');
  return `/dev/vd${String.fromCharCode(0x61 + i)}`;
}

/** Reserves a volume for an instance: the volume's status (CAS), its
 *  attachment in 'reserved' (connected later by the compute role) and the
 *  instance's device mapping, all in the caller's transaction. */
async function reserveForInstance(trx: Executor, inst: Pick<InstanceRow, 'id' | 'host'>, vol: VolumeRow, device: string, bootIndex: number | null, deleteOnTermination: boolean): Promise<InstanceVolumeRow> {
  const next = vol.status === 'available' ? 'reserved' : vol.status;
  if (!(await casStatus(trx, 'volumes', vol.id, [vol.status], { status: next }))) throw conflict(`Volume ${vol.id} changed status concurrently; try again.`);
  const att = reservedAttachmentRow(vol, { instanceUuid: inst.id, mode: 'rw', host: inst.host, mountpoint: device });
  await trx.insertInto('attachments').values(att).execute();
  const row: InstanceVolumeRow = { instance_id: inst.id, volume_id: vol.id, attachment_id: att.id, device, boot_index: bootIndex, delete_on_termination: deleteOnTermination ? 1 : 0, created_at: att.created_at };
  await trx.insertInto('instance_volumes').values(row).execute();
  return row;
}

export async function createServer(deps: ServiceDeps, caller: Caller, input: CreateServerInput): Promise<InstanceRow> {
  const flavor = findFlavor(input.flavorRef);
  if (!flavor) throw badRequest(`Flavor ${input.flavorRef} could not be found.`);
  const boot = input.mappings.filter((m) => m.bootIndex === 0);
  if (boot.length !== 1) throw badRequest('Block Device Mapping is Invalid: exactly one volume must have boot_index 0 (Bulwark boots servers from volumes).');
  if (new Set(input.mappings.map((m) => m.uuid)).size !== input.mappings.length) throw badRequest('Block Device Mapping is Invalid: a volume is mapped twice.');
  const host = await pickComputeHost(deps);
  if (!host) throw new ApiError(503, 'No valid host was found. There is no compute service up.');
  // The boot volume first (vda), the rest in the order given.
  const ordered = [...boot, ...input.mappings.filter((m) => m.bootIndex !== 0)];
  const row = await deps.store.transaction(async (trx) => {
    const vols: VolumeRow[] = [];
    for (const m of ordered) {
      const vol = await trx.selectFrom('volumes').selectAll().where('id', '=', m.uuid).executeTakeFirst();
      if (!vol || (!caller.isAdmin && vol.project_id !== caller.projectId)) throw badRequest(`Block Device Mapping is Invalid: failed to get volume ${m.uuid}.`);
      const ok = vol.status === 'available' || (vol.multiattach === 1 && vol.status === 'in-use');
      if (!ok) throw badRequest(`Block Device Mapping is Invalid: volume ${vol.id} status must be available, but current status is: ${vol.status}.`);
      if (!vol.host) throw badRequest(`Block Device Mapping is Invalid: volume ${vol.id} has no storage host yet.`);
      vols.push(vol);
    }
    const bootSpec = bootFromVolume(vols[0]!);
    await checkBootImage(trx, caller, bootSpec.kernelImageId, 'kernel');
    await checkBootImage(trx, caller, bootSpec.ramdiskImageId, 'ramdisk');
    const now = nowIso();
    const inst: InstanceRow = {
      id: newId(),
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name,
      status: 'BUILD',
      task_state: 'spawning',
      power_state: 0,
      host,
      vcpus: flavor.vcpus,
      memory_mib: flavor.ram,
      boot: JSON.stringify({ ...bootSpec, flavorId: flavor.id } satisfies StoredBoot),
      metadata: JSON.stringify(input.metadata),
      quiesce_state: 'thawed',
      quiesce_deadline_at: null,
      quiesce_frozen_at: null,
      quiesce_detail: null,
      fault: null,
      created_at: now,
      updated_at: null,
      launched_at: null,
    };
    await trx.insertInto('instances').values(inst).execute();
    for (const [i, vol] of vols.entries()) {
      const m = ordered[i]!;
      await reserveForInstance(trx, inst, vol, deviceName(i), m.bootIndex, m.deleteOnTermination);
    }
    await deps.jobs.enqueue(trx, { kind: 'spawn_instance', target: computeTarget(host), resourceId: inst.id });
    return inst;
  });
  deps.kick?.();
  return row;
}

/** CAS on (status, task_state): the instance must be idle in one of `from`. */
async function beginTask(ex: Executor, id: string, from: readonly string[], task: string, action: string, current: InstanceRow): Promise<void> {
  const res = await ex
    .updateTable('instances')
    .set({ task_state: task, updated_at: nowIso() })
    .where('id', '=', id)
    .where('status', 'in', [...from])
    .where('task_state', 'is', null)
    .executeTakeFirst();
  if (res.numUpdatedRows !== 1n) {
    const why = current.task_state ? `task_state ${current.task_state}` : `vm_state ${vmState(current)}`;
    throw conflict(`Cannot '${action}' instance ${id} while it is in ${why}`);
  }
}

export function vmState(row: InstanceRow): string {
  switch (row.status) {
    case 'ACTIVE':
      return 'active';
    case 'SHUTOFF':
      return 'stopped';
    case 'ERROR':
      return 'error';
    case 'BUILD':
      return 'building';
    default:
      return 'deleted';
  }
}

export async function powerServer(deps: ServiceDeps, caller: Caller, id: string, on: boolean): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const inst = await getInstance(trx, caller, id);
    if (inst.quiesce_state !== 'thawed') throw conflict(`Cannot '${on ? 'start' : 'stop'}' instance ${id} while it is quiesced (${inst.quiesce_state}).`);
    await beginTask(trx, id, [on ? 'SHUTOFF' : 'ACTIVE'], on ? 'powering-on' : 'powering-off', on ? 'start' : 'stop', inst);
    await deps.jobs.enqueue(trx, { kind: on ? 'start_instance' : 'stop_instance', target: computeTarget(inst.host!), resourceId: id });
  });
  deps.kick?.();
}

export async function deleteServer(deps: ServiceDeps, caller: Caller, id: string): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const inst = await getInstance(trx, caller, id);
    // Deleting a frozen guest is allowed: the compute role thaws nothing it is about to destroy.
    await beginTask(trx, id, ['ACTIVE', 'SHUTOFF', 'ERROR'], 'deleting', 'delete', inst);
    await deps.jobs.enqueue(trx, { kind: 'delete_instance', target: computeTarget(inst.host!), resourceId: id });
  });
  deps.kick?.();
}

// ---- quiesce (seed 000): guest-fsfreeze through the compute role ----

export interface QuiesceRequest {
  /** How long the guest may stay frozen; the watchdog thaws it after that. */
  deadlineMs: number;
  /** Synchronous calls wait this long for the freeze to finish. */
  timeoutMs: number;
  async: boolean;
}

export interface QuiesceOutcome {
  jobId: number;
  /** The instance as it stands after the call (for async calls: at once). */
  row: InstanceRow;
  /** The compute role's answer; null for an async call. */
  result: Record<string, unknown> | null;
}

/** Starts a freeze (or a thaw) of one instance; waits unless async. */
export async function quiesceServer(deps: ServiceDeps, caller: Caller, id: string, freeze: boolean, req: QuiesceRequest): Promise<QuiesceOutcome> {
  const jobId = await deps.store.transaction(async (trx) => {
    const inst = await getInstance(trx, caller, id);
    if (inst.status !== 'ACTIVE' || inst.task_state !== null) throw conflict(`Cannot '${freeze ? 'quiesce' : 'unquiesce'}' instance ${id} while it is in vm_state ${vmState(inst)}${inst.task_state ? ` and task_state ${inst.task_state}` : ''}`);
    if (freeze && !['thawed', 'frozen', 'error'].includes(inst.quiesce_state)) throw conflict(`Instance ${id} is ${inst.quiesce_state}; wait for it to finish.`);
    if (!freeze && !['frozen', 'error', 'thawed'].includes(inst.quiesce_state)) throw conflict(`Instance ${id} is ${inst.quiesce_state}; wait for it to finish.`);
    const payload = freeze ? { instanceIds: [id], deadlineAt: Date.now() + req.deadlineMs, requireQuiesce: true } : { instanceIds: [id] };
    return deps.jobs.enqueue(trx, { kind: freeze ? 'quiesce_instances' : 'unquiesce_instances', target: computeTarget(inst.host!), resourceId: id, payload });
  });
  deps.kick?.();
  if (req.async) return { jobId, row: await getInstance(deps.store.db, caller, id), result: null };
  const job = await deps.jobs.waitFor(jobId, req.timeoutMs, 5).catch(() => null);
  if (!job) throw new ApiError(504, `Quiesce of instance ${id} did not finish within ${req.timeoutMs} ms; poll its quiesce status.`);
  if (job.state === 'failed') throw conflict(`Quiesce of instance ${id} failed: ${job.error ?? 'unknown error'}`);
  const result = JSON.parse(job.result ?? '{}') as { instances?: Record<string, unknown>[] };
  const mine = result.instances?.[0] ?? null;
  if (mine && mine['ok'] === false) throw conflict(`Quiesce of instance ${id} failed: ${String(mine['error'] ?? 'unknown error')}`);
  return { jobId, row: await getInstance(deps.store.db, caller, id), result: mine };
}

// ---- volume attachments (os-volume_attachments) ----

/** Cold attach: the volume joins the server's disks at its next start. A running
 *  server would need QEMU hot-plug, which Bulwark does not do yet (409). */
export async function attachVolumeToServer(deps: ServiceDeps, caller: Caller, serverId: string, volumeId: string): Promise<InstanceVolumeRow> {
  return deps.store.transaction(async (trx) => {
    const inst = await getInstance(trx, caller, serverId);
    if (inst.status !== 'SHUTOFF' || inst.task_state !== null) {
      throw conflict(`Cannot 'attach_volume' instance ${serverId} while it is in vm_state ${vmState(inst)}: Bulwark attaches volumes to stopped servers only (no hot-plug yet).`);
    }
    const vol = await trx.selectFrom('volumes').selectAll().where('id', '=', volumeId).executeTakeFirst();
    if (!vol || (!caller.isAdmin && vol.project_id !== caller.projectId)) throw notFound(`Volume ${volumeId} could not be found.`);
    const current = await instanceVolumes(trx, serverId);
    if (current.some((c) => c.volume_id === volumeId)) throw conflict(`Volume ${volumeId} is already attached to instance ${serverId}.`);
    if (vol.status !== 'available') throw badRequest(`Invalid volume: Volume ${volumeId} status must be available, but current status is: ${vol.status}.`);
    const used = new Set(current.map((c) => c.device));
    let i = 0;
    while (used.has(deviceName(i))) i++;
    return reserveForInstance(trx, inst, vol, deviceName(i), null, false);
  });
}

/** Cold detach of a data volume; the boot volume stays. */
export async function detachVolumeFromServer(deps: ServiceDeps, caller: Caller, serverId: string, volumeId: string): Promise<void> {
  const attachmentId = await deps.store.transaction(async (trx) => {
    const inst = await getInstance(trx, caller, serverId);
    const iv = (await instanceVolumes(trx, serverId)).find((c) => c.volume_id === volumeId);
    if (!iv) throw notFound(`Volume ${volumeId} is not attached to instance ${serverId}.`);
    if (iv.boot_index === 0) throw badRequest(`Invalid volume: Volume ${volumeId} is the boot volume of instance ${serverId}.`);
    if (inst.status !== 'SHUTOFF' || inst.task_state !== null) {
      throw conflict(`Cannot 'detach_volume' instance ${serverId} while it is in vm_state ${vmState(inst)}: Bulwark detaches volumes from stopped servers only (no hot-unplug yet).`);
    }
    await trx.deleteFrom('instance_volumes').where('instance_id', '=', serverId).where('volume_id', '=', volumeId).execute();
    return iv.attachment_id;
  });
  await deleteAttachment(deps, { ...caller, isAdmin: true }, attachmentId);
}
