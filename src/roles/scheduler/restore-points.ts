// Restore points: a plan run whose snapshots are also backed up (incremental
// per volume) is restored as a unit: every volume of the run is made again
// (from its backup when there is one, else from its snapshot), then the
// instances are booted stage by stage, each stage ACTIVE before the next
// starts, so an application comes back up in the order it was quiesced.
import { nowIso } from '../../store/db.js';
import type { ClaimedJob } from '../../store/jobs.js';
import type { PlanRunRow, ProtectionPlanRow } from '../../store/schema.js';
import type { Caller, ServiceDeps } from '../../services/deps.js';
import { createBackup } from '../../services/backups.js';
import { restoreBackup } from '../../services/backup-restore.js';
import { createServer } from '../../services/instances.js';
import { createVolume } from '../../services/volumes.js';
import type { Logger } from '../../util/log.js';
import { errorText } from '../worker.js';
import { pollUntil } from '../../util/poll.js';

/** What a run records about each instance so it can be rebuilt later, even after the original is gone. */
export interface InstanceBlueprint {
  instance_id: string;
  name: string;
  flavor_id: string;
  volumes: { volume_id: string; device: string; boot_index: number | null; snapshot_id: string | null; backup_id: string | null }[];
}

export interface RestoreRecord {
  status: 'queued' | 'running' | 'available' | 'error';
  requested_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  /** In boot order. */
  servers: { stage: number; from_instance_id: string; server_id: string | null; volume_ids: string[]; active_at: string | null; note: string | null }[];
}


export function callerFor(plan: ProtectionPlanRow): Caller {
  return { userId: plan.user_id, projectId: plan.project_id, isAdmin: true };
}

/** Backs every snapshot of an available run up, incremental when the volume has an earlier backup. */
export async function backUpRun(deps: ServiceDeps, log: Logger, run: PlanRunRow, plan: ProtectionPlanRow, blueprints: InstanceBlueprint[], timeoutMs: number): Promise<{ backupIds: string[]; ms: number }> {
  const started = performance.now();
  const caller = callerFor(plan);
  const ids: string[] = [];
  for (const bp of blueprints) {
    for (const v of bp.volumes) {
      if (!v.snapshot_id) continue;
      const prior = await deps.store.db.selectFrom('backups').select('id').where('volume_id', '=', v.volume_id).where('status', '=', 'available').executeTakeFirst();
      const backup = await createBackup(deps, caller, {
        volumeId: v.volume_id,
        snapshotId: v.snapshot_id,
        name: `${plan.name}-${run.id.slice(0, 8)}`,
        description: `restore point of protection plan ${plan.id} run ${run.id}`,
        container: null,
        incremental: prior !== undefined,
        force: false,
        metadata: { bulwark_plan_id: plan.id, bulwark_plan_run_id: run.id },
        availabilityZone: null,
      });
      v.backup_id = backup.id;
      ids.push(backup.id);
    }
  }
  for (const id of ids) {
    await pollUntil(`backup ${id}`, timeoutMs, async () => {
      const b = await deps.store.db.selectFrom('backups').select(['status', 'fail_reason']).where('id', '=', id).executeTakeFirst();
      if (!b) throw new Error(`backup ${id} vanished`);
      if (b.status === 'error') throw new Error(`backup ${id} failed: ${b.fail_reason ?? 'unknown'}`);
      return b.status === 'available' ? true : null;
    });
  }
  log.info({ run: run.id, backups: ids.length }, 'restore point backed up');
  return { backupIds: ids, ms: performance.now() - started };
}

async function saveRestore(deps: ServiceDeps, runId: string, restore: RestoreRecord): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const row = await trx.selectFrom('plan_runs').select('record').where('id', '=', runId).executeTakeFirstOrThrow();
    const record = JSON.parse(row.record) as Record<string, unknown>;
    record['restore'] = restore;
    await trx.updateTable('plan_runs').set({ record: JSON.stringify(record), updated_at: nowIso() }).where('id', '=', runId).execute();
  });
}

/** The orchestrator's restore_plan_run job. */
export async function restoreRun(deps: ServiceDeps, log: Logger, job: ClaimedJob): Promise<object> {
  const db = deps.store.db;
  const run = await db.selectFrom('plan_runs').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!run) return { skipped: true };
  const record = JSON.parse(run.record) as { blueprints?: InstanceBlueprint[][]; restore?: RestoreRecord };
  const restore = record.restore;
  if (!restore || restore.status === 'available' || restore.status === 'error') return { skipped: true };
  if (restore.status === 'running') {
    // Taken over from an orchestrator that died: what it made stays (visible,
    // named after the run); the restore is reported failed rather than guessed at.
    await saveRestore(deps, run.id, { ...restore, status: 'error', finished_at: nowIso(), error: 'the orchestrator restoring this run stopped; the volumes and servers made so far are kept' });
    return { aborted: true };
  }
  const plan = await db.selectFrom('protection_plans').selectAll().where('id', '=', run.plan_id).executeTakeFirst();
  const caller: Caller = plan ? callerFor(plan) : { userId: 'bulwark', projectId: run.project_id, isAdmin: true };
  restore.status = 'running';
  restore.started_at = nowIso();
  restore.servers = [];
  await saveRestore(deps, run.id, restore);
  try {
    for (const [stageIndex, stage] of (record.blueprints ?? []).entries()) {
      // Volumes of a stage are made together, then its servers are booted together.
      const made = await Promise.all(
        stage.map(async (bp) => {
          const volumes: { id: string; boot_index: number | null; device: string }[] = [];
          for (const v of bp.volumes) {
            const id = v.backup_id
              ? (await restoreBackup(deps, caller, v.backup_id, { volumeId: null, name: `${bp.name}-${v.device.replace('/dev/', '')}-restored` })).volumeId
              : (await createVolume(deps, caller, { snapshotId: v.snapshot_id, name: `${bp.name}-${v.device.replace('/dev/', '')}-restored` })).id;
            volumes.push({ id, boot_index: v.boot_index, device: v.device });
          }
          for (const v of volumes) {
            await pollUntil(`volume ${v.id}`, 3_600_000, async () => {
              const row = await db.selectFrom('volumes').select(['status']).where('id', '=', v.id).executeTakeFirst();
              if (!row || row.status === 'error' || row.status === 'error_restoring') throw new Error(`restored volume ${v.id} is ${row?.status ?? 'gone'}`);
              return row.status === 'available' ? true : null;
            });
          }
          return { bp, volumes };
        }),
      );
      const booted = await Promise.all(
        made.map(async ({ bp, volumes }) => {
          const entry: RestoreRecord['servers'][number] = { stage: stageIndex, from_instance_id: bp.instance_id, server_id: null, volume_ids: volumes.map((v) => v.id), active_at: null, note: null };
          if (!volumes.some((v) => v.boot_index === 0)) {
            entry.note = 'not booted: the plan does not hold this instance\'s boot volume';
            return entry;
          }
          const sorted = [...volumes].sort((a, b) => a.device.localeCompare(b.device));
          const server = await createServer(deps, caller, {
            name: `${bp.name}-restored`,
            flavorRef: bp.flavor_id,
            mappings: sorted.map((v) => ({ uuid: v.id, bootIndex: v.boot_index === 0 ? 0 : null, deleteOnTermination: false })),
            metadata: { bulwark_restored_from: bp.instance_id, bulwark_plan_run_id: run.id },
          });
          entry.server_id = server.id;
          await pollUntil(`server ${server.id}`, 600_000, async () => {
            const row = await db.selectFrom('instances').select(['status', 'fault']).where('id', '=', server.id).executeTakeFirst();
            if (!row || row.status === 'ERROR') throw new Error(`restored server ${server.id} failed: ${row?.fault ?? 'gone'}`);
            return row.status === 'ACTIVE' ? true : null;
          });
          entry.active_at = nowIso();
          return entry;
        }),
      );
      restore.servers.push(...booted);
      await saveRestore(deps, run.id, restore);
    }
    restore.status = 'available';
  } catch (err) {
    restore.status = 'error';
    restore.error = errorText(err);
    log.warn({ run: run.id, err: restore.error }, 'restore of a plan run failed');
  }
  restore.finished_at = nowIso();
  await saveRestore(deps, run.id, restore);
  return { status: restore.status };
}
