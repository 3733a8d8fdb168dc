// The compute role's jobs. Each handler is idempotent: a job taken over after
// its owner died runs again from the top and finds the work done so far (a
// QEMU already running for the instance, attachments already connected).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ClaimedJob, JobQueue } from '../../store/jobs.js';
import { nowIso } from '../../store/db.js';
import type { InstanceRow } from '../../store/schema.js';
import { chooseAccel, findVm, launchVm, vmPid, type NbdDiskSource, type VmDisk } from '../../drivers/vm/index.js';
import { disarmFreezeDeadline } from '../../drivers/vm/freeze-watchdog.js';
import { completeAttachment, connectAttachment, deleteAttachment } from '../../services/attachments.js';
import { bootOf, instanceVolumes } from '../../services/instances.js';
import { deleteVolume } from '../../services/volumes.js';
import type { JobHandler } from '../worker.js';
import { serviceCaller, type ComputeContext } from './context.js';
import { freezeInstance, prepareInstance, thawInstance } from './quiesce.js';

async function loadInstance(ctx: ComputeContext, id: string): Promise<InstanceRow | undefined> {
  return ctx.deps.store.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
}

async function imagePath(ctx: ComputeContext, imageId: string): Promise<string> {
  const img = await ctx.deps.store.db.selectFrom('images').select(['location', 'status']).where('id', '=', imageId).executeTakeFirst();
  if (!img?.location || img.status !== 'active') throw new Error(`boot image ${imageId} is not available`);
  return img.location;
}

/** Cinder connection info (driver_volume_type nbd) to the VM driver's disk source. */
function diskSource(info: Record<string, unknown>): NbdDiskSource {
  const data = (info['data'] ?? {}) as Record<string, unknown>;
  const exportName = String(data['export_name']);
  if (data['transport'] === 'tcp') {
    return { transport: 'tcp', host: String(data['host']), port: Number(data['port']), exportName, pskIdentity: String(data['psk_identity']), pskKey: String(data['psk_key']) };
  }
  return { transport: 'unix', socketPath: String(data['socket_path']), exportName };
}

/** Exports every volume of the instance for this host and boots QEMU on them,
 *  unless a QEMU for it is already running (a retried job). */
async function bootInstance(ctx: ComputeContext, inst: InstanceRow): Promise<void> {
  const dir = ctx.instanceDir(inst.id);
  const caller = serviceCaller(inst.project_id);
  const vols = await instanceVolumes(ctx.deps.store.db, inst.id);
  if (vmPid(dir) === null) {
    const disks: VmDisk[] = [];
    for (const iv of vols) {
      const info = await connectAttachment(ctx.deps, caller, iv.attachment_id, { host: ctx.host });
      disks.push({ source: diskSource(info), serial: iv.volume_id.replace(/-/g, '').slice(0, 20) });
    }
    const boot = bootOf(inst);
    const kernel = await imagePath(ctx, boot.kernelImageId);
    const initrd = await imagePath(ctx, boot.ramdiskImageId);
    const { compute } = ctx.deps.config;
    const accel = await chooseAccel({ mode: compute.accel, qemuBinary: compute.qemuBinary, kernel, initrd, cacheFile: join(ctx.instancesDir, 'accel.json') });
    const vm = await launchVm(
      { id: inst.id, dir, kernel, initrd, commandLine: boot.commandLine, memoryMib: inst.memory_mib, vcpus: inst.vcpus, disks, accel: accel.accel },
      { qemuBinary: compute.qemuBinary },
    );
    ctx.log.info({ instance: inst.id, pid: vm.pid, accel: accel.accel }, 'instance started');
    await vm.close();
  }
  for (const iv of vols) {
    await completeAttachment(ctx.deps, caller, iv.attachment_id, { mountpoint: iv.device, hostName: ctx.host, instanceUuid: inst.id });
  }
}

async function powerOffInstance(ctx: ComputeContext, inst: InstanceRow, graceMs: number): Promise<void> {
  const vm = await findVm(ctx.instanceDir(inst.id));
  if (vm) await vm.powerOff(graceMs);
}

async function setInstance(jobs: JobQueue, job: ClaimedJob, id: string, fromStatus: readonly string[], values: Partial<InstanceRow>): Promise<void> {
  await jobs.withFence(job, (trx) =>
    trx
      .updateTable('instances')
      .set({ ...values, updated_at: nowIso() })
      .where('id', '=', id)
      .where('status', 'in', [...fromStatus])
      .execute(),
  );
}

function idsOf(job: ClaimedJob): string[] {
  const raw = job.payload['instanceIds'];
  return Array.isArray(raw) ? raw.map(String) : [job.resourceId];
}

export function computeHandlers(ctx: ComputeContext): Record<string, JobHandler> {
  const { jobs } = ctx.deps;
  return {
    spawn_instance: async (job) => {
      const inst = await loadInstance(ctx, job.resourceId);
      if (!inst || inst.status !== 'BUILD') return;
      await bootInstance(ctx, inst);
      await setInstance(jobs, job, inst.id, ['BUILD'], { status: 'ACTIVE', task_state: null, power_state: 1, launched_at: nowIso(), fault: null });
    },

    start_instance: async (job) => {
      const inst = await loadInstance(ctx, job.resourceId);
      if (!inst || inst.status !== 'SHUTOFF') return;
      await bootInstance(ctx, inst);
      await setInstance(jobs, job, inst.id, ['SHUTOFF'], { status: 'ACTIVE', task_state: null, power_state: 1, fault: null });
    },

    stop_instance: async (job) => {
      const inst = await loadInstance(ctx, job.resourceId);
      if (!inst || inst.status !== 'ACTIVE') return;
      await powerOffInstance(ctx, inst, ctx.deps.config.compute.shutdownGraceMs);
      await setInstance(jobs, job, inst.id, ['ACTIVE'], { status: 'SHUTOFF', task_state: null, power_state: 4 });
    },

    delete_instance: async (job) => {
      const inst = await loadInstance(ctx, job.resourceId);
      if (!inst || inst.status === 'DELETED') return;
      await powerOffInstance(ctx, inst, 2_000);
      const dir = ctx.instanceDir(inst.id);
      await disarmFreezeDeadline(dir).catch(() => undefined);
      const caller = serviceCaller(inst.project_id);
      for (const iv of await instanceVolumes(ctx.deps.store.db, inst.id)) {
        const att = await ctx.deps.store.db.selectFrom('attachments').select('status').where('id', '=', iv.attachment_id).executeTakeFirst();
        if (att && att.status !== 'detached') await deleteAttachment(ctx.deps, caller, iv.attachment_id);
        await jobs.withFence(job, (trx) => trx.deleteFrom('instance_volumes').where('instance_id', '=', inst.id).where('volume_id', '=', iv.volume_id).execute());
        if (iv.delete_on_termination === 1) {
          await deleteVolume(ctx.deps, caller, iv.volume_id, { cascade: true, force: false }).catch((err: unknown) => {
            ctx.log.warn({ instance: inst.id, volume: iv.volume_id, err: String(err) }, 'delete_on_termination: the volume stays');
          });
        }
      }
      await setInstance(jobs, job, inst.id, ['ACTIVE', 'SHUTOFF', 'ERROR', 'BUILD'], { status: 'DELETED', task_state: null, power_state: 0, quiesce_state: 'thawed', quiesce_deadline_at: null });
      rmSync(dir, { recursive: true, force: true });
    },

    // Freezes every named instance of this host at once (a plan stage is
    // concurrent inside); each answer says what happened to that instance.
    quiesce_instances: async (job) => {
      const deadlineAt = Number(job.payload['deadlineAt']);
      if (!Number.isFinite(deadlineAt)) throw new Error('quiesce_instances needs a deadlineAt');
      const instances = await Promise.all(idsOf(job).map((id) => freezeInstance(ctx, id, deadlineAt)));
      return { instances };
    },

    // Before a plan's first freeze: every instance's deadline is armed (its
    // watchdog process started), so that starting one never sits inside the
    // freeze window. Arming a guest that is never frozen is harmless.
    arm_quiesce_deadlines: async (job) => {
      const deadlineAt = Number(job.payload['deadlineAt']);
      if (!Number.isFinite(deadlineAt)) throw new Error('arm_quiesce_deadlines needs a deadlineAt');
      return { instances: await Promise.all(idsOf(job).map((id) => prepareInstance(ctx, id, deadlineAt))) };
    },

    unquiesce_instances: async (job) => {
      const instances = await Promise.all(idsOf(job).map((id) => thawInstance(ctx, id)));
      return { instances };
    },
  };
}

/** What a failed job leaves on the instance: a fault the API shows, and an
 *  instance that is not stuck in a task. */
export async function recordComputeFailure(ctx: ComputeContext, job: ClaimedJob, err: unknown): Promise<void> {
  const message = err instanceof Error ? err.message : String(err);
  const values: Partial<InstanceRow> = { task_state: null, fault: message.slice(0, 1000), updated_at: nowIso() };
  switch (job.kind) {
    case 'spawn_instance':
    case 'delete_instance':
    case 'start_instance':
      values.status = 'ERROR';
      break;
    default:
      break;
  }
  await ctx.deps.store.db.updateTable('instances').set(values).where('id', '=', job.resourceId).execute();
}
