// The protection-plan orchestrator: one run = freeze stage 1's instances
// together, then stage 2's, ...; snapshot every volume in one QMP transaction
// per storage host while all are frozen; thaw in reverse stage order.
//
// Everything that can be frozen carries the run's deadline (the compute role
// arms a detached watchdog before each freeze), so a run whose orchestrator
// dies is thawed at the deadline whatever happens. The orchestrator that takes
// the job over finds the run 'running' and aborts it: thaws what is still
// frozen, deletes the run's snapshots, records why. A failed run never leaves
// a snapshot of it available.
import type { Executor } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { ClaimedJob } from '../../store/jobs.js';
import type { InstanceRow, PlanRunRow, PlanStage, ProtectionPlanRow, SnapshotRow, VolumeRow } from '../../store/schema.js';
import type { Caller, ServiceDeps } from '../../services/deps.js';
import { bootOf, computeTarget } from '../../services/instances.js';
import { backUpRun, type InstanceBlueprint } from './restore-points.js';
import { applyRetention } from '../../services/plans.js';
import { enforceQuota } from '../../services/quotas.js';
import { checkSnapshotSource, deleteSnapshot, newSnapshotRow } from '../../services/snapshots.js';
import type { Logger } from '../../util/log.js';
import { errorText } from '../worker.js';
// The compute role's answers to quiesce_instances / unquiesce_instances.
import type { FreezeOutcome, ThawOutcome } from '../compute/quiesce.js';

/** Polling for the jobs a run waits on: these waits sit inside the freeze window. */
const WAIT_POLL_MS = 3;
/** Beyond the freeze deadline, how long to wait for a thaw or cleanup job. */
const CLEANUP_WAIT_MS = 30_000;

export interface InstanceRecord {
  instance_id: string;
  host: string;
  quiesced: boolean;
  freeze_started_at: number | null;
  frozen_at: number | null;
  thaw_started_at: number | null;
  thawed_at: number | null;
  frozen_ms: number | null;
  filesystems: number;
  error: string | null;
}

export interface RunRecord {
  stages: { index: number; instances: InstanceRecord[] }[];
  freeze_order: string[];
  thaw_order: string[];
  snapshot_ms: number | null;
  window: { first_freeze_at: number | null; last_thaw_at: number | null; ms: number | null };
  deadline_at: number;
  warnings: string[];
  /** Per stage, what is needed to rebuild each instance from this run. */
  blueprints: InstanceBlueprint[][];
  backup: { status: 'available' | 'error'; ms: number; error: string | null } | null;
}

class RunFailure extends Error {}

/** Waits for every job; a job that does not finish in time counts as failed. */
async function waitAll(ex: Executor, ids: readonly number[], timeoutMs: number): Promise<Map<number, { state: string; result: Record<string, unknown>; error: string | null }>> {
  const out = new Map<number, { state: string; result: Record<string, unknown>; error: string | null }>();
  const deadline = Date.now() + timeoutMs;
  let pending = [...ids];
  while (pending.length > 0) {
    const rows = await ex.selectFrom('jobs').select(['id', 'state', 'result', 'error']).where('id', 'in', pending).execute();
    for (const r of rows) {
      if (r.state === 'done' || r.state === 'failed') out.set(r.id, { state: r.state, result: JSON.parse(r.result ?? '{}') as Record<string, unknown>, error: r.error });
    }
    pending = pending.filter((id) => !out.has(id));
    if (pending.length === 0) break;
    if (Date.now() > deadline) {
      for (const id of pending) out.set(id, { state: 'timeout', result: {}, error: `job ${id} did not finish within ${timeoutMs} ms` });
      break;
    }
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
  return out;
}

function byHost<T extends { host: string | null }>(rows: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    if (!r.host) continue;
    const list = m.get(r.host) ?? [];
    list.push(r);
    m.set(r.host, list);
  }
  return m;
}

export class PlanRunner {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly log: Logger,
  ) {}

  async run(job: ClaimedJob): Promise<object> {
    const db = this.deps.store.db;
    const run = await db.selectFrom('plan_runs').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
    if (!run || !['queued', 'running'].includes(run.status)) return { skipped: true };
    const plan = await db.selectFrom('protection_plans').selectAll().where('id', '=', run.plan_id).executeTakeFirst();
    if (!plan) {
      await this.finish(run.id, 'error', { error: 'the plan was deleted before the run started' });
      return { skipped: true };
    }
    if (run.status === 'running') {
      // Its orchestrator died mid-run: nothing says how far it got, so undo it all.
      await this.abort(run, plan, 'the orchestrator running this plan stopped mid-run; every guest was thawed and the run\'s snapshots deleted');
      return { aborted: true };
    }
    const started = await db
      .updateTable('plan_runs')
      .set({ status: 'running', started_at: nowIso(), updated_at: nowIso() })
      .where('id', '=', run.id)
      .where('status', '=', 'queued')
      .executeTakeFirst();
    if (started.numUpdatedRows !== 1n) return { skipped: true };
    try {
      const record = await this.execute(run, plan);
      return { window_ms: record.window.ms };
    } catch (err) {
      const fresh = (await db.selectFrom('plan_runs').selectAll().where('id', '=', run.id).executeTakeFirst()) ?? run;
      await this.abort(fresh, plan, errorText(err));
      return { failed: errorText(err) };
    }
  }

  private caller(plan: ProtectionPlanRow): Caller {
    return { userId: plan.user_id, projectId: plan.project_id, isAdmin: true };
  }

  private async execute(run: PlanRunRow, plan: ProtectionPlanRow): Promise<RunRecord> {
    const { store, jobs } = this.deps;
    const db = store.db;
    const stages = JSON.parse(plan.stages) as PlanStage[];
    const instanceIds = stages.flatMap((s) => s.instances.map((i) => i.instance_id));
    const instances = new Map((await db.selectFrom('instances').selectAll().where('id', 'in', instanceIds).execute()).map((r) => [r.id, r]));
    for (const id of instanceIds) {
      const inst = instances.get(id);
      if (!inst || inst.status !== 'ACTIVE' || inst.task_state !== null || !inst.host) {
        throw new RunFailure(`instance ${id} is not running (${inst ? `${inst.status}${inst.task_state ? `/${inst.task_state}` : ''}` : 'gone'})`);
      }
    }
    const volumeIds = stages.flatMap((s) => s.instances.flatMap((i) => i.volume_ids));
    const volumes = await db.selectFrom('volumes').selectAll().where('id', 'in', volumeIds.length > 0 ? volumeIds : ['-']).execute();
    if (volumes.length !== new Set(volumeIds).size) throw new RunFailure('a volume of the plan no longer exists');
    for (const v of volumes) {
      checkSnapshotSource(v);
      if (!['available', 'in-use'].includes(v.status)) throw new RunFailure(`volume ${v.id} status must be available or in-use, but is ${v.status}`);
    }

    const deadlineAt = Date.now() + plan.freeze_deadline_ms;
    const record: RunRecord = {
      stages: stages.map((s, index) => ({
        index,
        instances: s.instances.map((i) => ({ instance_id: i.instance_id, host: instances.get(i.instance_id)!.host!, quiesced: false, freeze_started_at: null, frozen_at: null, thaw_started_at: null, thawed_at: null, frozen_ms: null, filesystems: 0, error: null })),
      })),
      freeze_order: [],
      thaw_order: [],
      snapshot_ms: null,
      window: { first_freeze_at: null, last_thaw_at: null, ms: null },
      deadline_at: deadlineAt,
      warnings: [],
      blueprints: [],
      backup: null,
    };
    const attached = await db.selectFrom('instance_volumes').selectAll().where('instance_id', 'in', instanceIds).execute();
    record.blueprints = stages.map((st) =>
      st.instances.map((i) => {
        const inst = instances.get(i.instance_id)!;
        return {
          instance_id: inst.id,
          name: inst.name,
          flavor_id: bootOf(inst).flavorId,
          volumes: i.volume_ids.map((vid) => {
            const iv = attached.find((a) => a.instance_id === inst.id && a.volume_id === vid);
            return { volume_id: vid, device: iv?.device ?? '/dev/vdz', boot_index: iv?.boot_index ?? null, snapshot_id: null, backup_id: null };
          }),
        };
      }),
    );
    // ---- before anything is frozen: the snapshots' overlays made and opened,
    // every instance's deadline armed (its watchdog started) ----
    const snaps = await this.createSnapshotRows(run, plan, volumes);
    for (const bp of record.blueprints.flat()) for (const v of bp.volumes) v.snapshot_id = snaps.find((sn) => sn.volume_id === v.volume_id)?.id ?? null;
    // One prepare job and one snapshot_set job per storage host, over the same snapshots.
    const volumeHostOf = new Map(volumes.map((v) => [v.id, v.host]));
    const snapshotsByHost = byHost(snaps.map((sn) => ({ id: sn.id, host: volumeHostOf.get(sn.volume_id) ?? null })));
    const enqueueSnapshotJobs = async (trx: Executor, kind: 'prepare_snapshot_set' | 'snapshot_set'): Promise<number[]> => {
      const ids: number[] = [];
      for (const [host, list] of snapshotsByHost) ids.push(await jobs.enqueue(trx, { kind, target: host, resourceId: run.id, payload: { snapshotIds: list.map((x) => x.id) } }));
      return ids;
    };
    const prepJobs = await store.transaction(async (trx) => {
      // Until the snapshots are taken the storage hosts start no other job, so none
      // queued meanwhile (an image copy, a merge) can run between the prepare and
      // the snapshot and stretch the freeze. The hold ends after the thaw, or at the
      // deadline by itself if this runner dies.
      await jobs.hold(trx, [...snapshotsByHost.keys()], run.id, deadlineAt);
      const ids = await enqueueSnapshotJobs(trx, 'prepare_snapshot_set');
      for (const [host, list] of byHost([...instances.values()])) {
        ids.push(await jobs.enqueue(trx, { kind: 'arm_quiesce_deadlines', target: computeTarget(host), resourceId: run.id, payload: { deadlineAt, instanceIds: list.map((i) => i.id) } }));
      }
      return ids;
    });
    this.deps.kick?.();
    const prepared = await waitAll(db, prepJobs, Math.max(1_000, deadlineAt - Date.now()));
    const prepFailed = [...prepared.values()].find((r) => r.state !== 'done');
    // Letting go never hides the run's own outcome: a hold left behind lapses at the deadline.
    const letGo = (): Promise<void> => jobs.unhold(db, run.id).catch(() => undefined);
    if (prepFailed) {
      await letGo();
      throw new RunFailure(`snapshot preparation failed before any guest was frozen: ${prepFailed.error ?? prepFailed.state}`);
    }

    let failure: string | null = null;
    try {
      // ---- freeze, stage by stage; inside a stage every host at once ----
      for (const stage of record.stages) {
        const results = await this.onHosts<FreezeOutcome>(stage.instances, 'quiesce_instances', { deadlineAt }, deadlineAt - Date.now() + 5_000);
        for (const rec of stage.instances) {
          const r = results.get(rec.instance_id);
          rec.freeze_started_at = r?.freeze_started_at ?? null;
          rec.frozen_at = r?.frozen_at ?? null;
          rec.filesystems = r?.filesystems ?? 0;
          rec.quiesced = r?.quiesced === true;
          rec.error = r?.error ?? (r ? null : 'no answer from its compute service');
          if (rec.quiesced) record.freeze_order.push(rec.instance_id);
        }
        const failed = stage.instances.filter((i) => !i.quiesced);
        if (failed.length > 0) {
          if (plan.require_quiesce === 1) throw new RunFailure(`quiesce failed for ${failed.map((f) => `${f.instance_id} (${f.error})`).join(', ')}`);
          for (const f of failed) record.warnings.push(`instance ${f.instance_id} was not quiesced (${f.error}); its volumes are crash-consistent`);
        }
      }

      // ---- the snapshots: all volumes, one transaction per storage host ----
      const snapStarted = performance.now();
      const snapJobs = await store.transaction((trx) => enqueueSnapshotJobs(trx, 'snapshot_set'));
      this.deps.kick?.();
      const snapResults = await waitAll(db, snapJobs, Math.max(1_000, deadlineAt - Date.now()));
      const bad = [...snapResults.values()].find((r) => r.state !== 'done');
      if (bad) throw new RunFailure(`snapshot failed: ${bad.error ?? bad.state}`);
      const states = await db.selectFrom('snapshots').select(['id', 'status']).where('id', 'in', snaps.map((x) => x.id)).execute();
      const notTaken = states.filter((x) => x.status !== 'available');
      if (notTaken.length > 0 || states.length !== snaps.length) throw new RunFailure(`snapshot failed: ${notTaken.map((x) => `${x.id} is ${x.status}`).join(', ') || 'a snapshot vanished'}`);
      record.snapshot_ms = performance.now() - snapStarted;
    } catch (err) {
      failure = errorText(err);
    } finally {
      // ---- thaw in reverse stage order, whatever happened ----
      await this.thawStages(record, failure !== null);
      await letGo();
    }
    const frozen = record.stages.flatMap((s) => s.instances).filter((i) => i.quiesced);
    for (const i of frozen) if (i.frozen_at !== null && i.thawed_at !== null) i.frozen_ms = i.thawed_at - i.frozen_at;
    const first = frozen.map((i) => i.freeze_started_at).filter((t): t is number => t !== null);
    const last = frozen.map((i) => i.thawed_at).filter((t): t is number => t !== null);
    if (first.length > 0 && last.length > 0) {
      record.window = { first_freeze_at: Math.min(...first), last_thaw_at: Math.max(...last), ms: Math.max(...last) - Math.min(...first) };
    }
    await db.updateTable('plan_runs').set({ record: JSON.stringify(record), updated_at: nowIso() }).where('id', '=', run.id).execute();
    if (failure !== null) throw new RunFailure(failure);

    const all = record.stages.flatMap((s) => s.instances);
    const consistency = all.every((i) => i.quiesced) ? 'application' : all.some((i) => i.quiesced) ? 'mixed' : 'crash';
    if (plan.backup === 1) {
      // The restore point: guests are long thawed; this only reads the snapshots.
      try {
        const b = await backUpRun(this.deps, this.log, run, plan, record.blueprints.flat(), 6 * 3_600_000);
        record.backup = { status: 'available', ms: b.ms, error: null };
        await db.updateTable('plan_runs').set({ backup_ids: JSON.stringify(b.backupIds), updated_at: nowIso() }).where('id', '=', run.id).execute();
      } catch (err) {
        record.backup = { status: 'error', ms: 0, error: errorText(err) };
        record.warnings.push(`backup of the restore point failed: ${errorText(err)}; the snapshots are kept`);
      }
      await db.updateTable('plan_runs').set({ record: JSON.stringify(record), updated_at: nowIso() }).where('id', '=', run.id).execute();
    }
    await this.finish(run.id, 'available', { consistency, freeze_window_ms: record.window.ms });
    this.log.info({ plan: plan.id, run: run.id, window_ms: record.window.ms, consistency }, 'protection plan run done');
    await applyRetention(this.deps, plan.id).catch((err: unknown) => this.log.warn({ plan: plan.id, err: errorText(err) }, 'retention failed; the next run retries'));
    return record;
  }

  /** Sends one job per compute host for the instances given, waits for all. */
  private async onHosts<T extends { instance_id: string }>(items: readonly InstanceRecord[], kind: string, payload: object, timeoutMs: number): Promise<Map<string, T>> {
    const { store, jobs } = this.deps;
    const hosts = byHost(items);
    const jobIds = await store.transaction(async (trx) => {
      const ids: number[] = [];
      for (const [host, list] of hosts) {
        ids.push(await jobs.enqueue(trx, { kind, target: computeTarget(host), resourceId: list[0]!.instance_id, payload: { ...payload, instanceIds: list.map((i) => i.instance_id) } }));
      }
      return ids;
    });
    this.deps.kick?.();
    const results = await waitAll(store.db, jobIds, Math.max(1_000, timeoutMs));
    const out = new Map<string, T>();
    for (const r of results.values()) {
      const list = (r.result['instances'] ?? []) as T[];
      for (const x of list) out.set(x.instance_id, x);
    }
    return out;
  }

  private async thawStages(record: RunRecord, afterFailure: boolean): Promise<void> {
    for (const stage of [...record.stages].reverse()) {
      // After a failure thaw every instance of the stage: a freeze that timed
      // out on our side may still have landed in the guest.
      const targets = stage.instances.filter((i) => i.quiesced || (afterFailure && i.freeze_started_at !== null) || (afterFailure && i.error !== null));
      if (targets.length === 0) continue;
      const results = await this.onHosts<ThawOutcome>(targets, 'unquiesce_instances', {}, CLEANUP_WAIT_MS);
      for (const rec of targets) {
        const r = results.get(rec.instance_id);
        rec.thaw_started_at = r?.thaw_started_at ?? null;
        rec.thawed_at = r?.thawed_at ?? null;
        if (r?.ok && rec.quiesced) record.thaw_order.push(rec.instance_id);
        if (!r?.ok && rec.quiesced) record.warnings.push(`thaw of ${rec.instance_id} failed (${r?.error ?? 'no answer'}); its watchdog thaws it at the deadline`);
      }
    }
  }

  private async createSnapshotRows(run: PlanRunRow, plan: ProtectionPlanRow, volumes: readonly VolumeRow[]): Promise<SnapshotRow[]> {
    const caller = this.caller(plan);
    return this.deps.store.transaction(async (trx) => {
      await enforceQuota(trx, this.deps.config, plan.project_id, { snapshots: volumes.length, gigabytes: volumes.reduce((n, v) => n + v.size, 0) });
      const rows: SnapshotRow[] = [];
      for (const v of volumes) {
        const snap = newSnapshotRow(caller, v, {
          name: `${plan.name}-${run.id.slice(0, 8)}`,
          description: `protection plan ${plan.id} run ${run.id}`,
          metadata: { bulwark_plan_id: plan.id, bulwark_plan_run_id: run.id },
          groupSnapshotId: null,
        });
        await trx.insertInto('snapshots').values(snap).execute();
        rows.push(snap);
      }
      // Recorded with the rows, so an abort always knows what to delete.
      await trx.updateTable('plan_runs').set({ snapshot_ids: JSON.stringify(rows.map((r) => r.id)), updated_at: nowIso() }).where('id', '=', run.id).execute();
      return rows;
    });
  }

  /** Thaws every instance of the plan that may be frozen, deletes the run's snapshots, marks the run failed. */
  private async abort(run: PlanRunRow, plan: ProtectionPlanRow, reason: string): Promise<void> {
    const db = this.deps.store.db;
    this.log.warn({ plan: plan.id, run: run.id, reason }, 'protection plan run failed');
    const stages = JSON.parse(plan.stages) as PlanStage[];
    const ids = stages.flatMap((s) => s.instances.map((i) => i.instance_id));
    // Every running instance of the plan, frozen or not: a thaw of a thawed
    // guest is harmless, and it also releases the agent sessions and deadlines
    // the run's preparation left on instances it never froze.
    const running = (await db.selectFrom('instances').selectAll().where('id', 'in', ids.length > 0 ? ids : ['-']).execute()).filter((i: InstanceRow) => i.status === 'ACTIVE' && i.host !== null);
    if (running.length > 0) {
      const items = running.map((i) => ({ instance_id: i.id, host: i.host! })) as InstanceRecord[];
      await this.onHosts<ThawOutcome>(items, 'unquiesce_instances', {}, CLEANUP_WAIT_MS).catch(() => undefined);
    }
    const snapIds = JSON.parse(run.snapshot_ids) as string[];
    if (snapIds.length > 0) {
      // A snapshot still 'creating' is taken out of its job's hands first.
      await db.updateTable('snapshots').set({ status: 'error', updated_at: nowIso() }).where('id', 'in', snapIds).where('status', '=', 'creating').execute();
      for (const id of snapIds) {
        await deleteSnapshot(this.deps, this.caller(plan), id, false).catch((err: unknown) => this.log.warn({ snapshot: id, err: errorText(err) }, 'could not delete a snapshot of a failed run'));
      }
    }
    await this.finish(run.id, 'error', { error: reason.slice(0, 2000) });
  }

  private async finish(runId: string, status: 'available' | 'error', values: { error?: string; consistency?: string; freeze_window_ms?: number | null }): Promise<void> {
    await this.deps.store.db
      .updateTable('plan_runs')
      .set({ status, ...values, finished_at: nowIso(), updated_at: nowIso() })
      .where('id', '=', runId)
      .where('status', 'in', ['queued', 'running'])
      .execute();
  }
}
