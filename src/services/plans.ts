// Protection plans (a Bulwark extension) on the API side: validate and store
// plans, queue their runs for the orchestrator, and delete runs together with
// their snapshots. The orchestrator owns a run from 'queued' to 'available' or
// 'error'; this module owns creation and deletion.
//
// Deleting a run: one transaction CASes the run to 'deleting' and each of its
// snapshots to 'deleting' with a delete_snapshot job for the volume's host (the
// same job Cinder's snapshot delete enqueues). The run row goes once none of
// its snapshot rows is left: reapDeletingRuns, called right after and on every
// plan-schedule tick of the scheduler, removes it. A snapshot whose deletion
// failed (error_deleting) moves the run to 'error'; deleting it again retries.
import { badRequest, conflict, invalidInput, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { PlanRunRow, PlanStage, ProtectionPlanRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { cronProblem, nextCronTime } from './plan-cron.js';

export const RUN_PLAN_JOB = 'run_protection_plan';
export const ORCHESTRATOR_TARGET = 'bulwark-orchestrator';
/** A plan has at most one run in these statuses. */
export const ACTIVE_RUN_STATUSES = ['queued', 'running'] as const;
/** A run may be deleted (by hand or by retention) in these. */
const DELETABLE_RUN_STATUSES = ['available', 'error'];
/** Snapshots of a run that its deletion may take down (error_deleting: a retry). */
const DELETABLE_SNAPSHOT_STATUSES = ['available', 'error', 'error_deleting'];

export const FREEZE_DEADLINE_DEFAULT_MS = 60_000;
export type RunTrigger = 'manual' | 'schedule';

export interface PlanInstanceInput {
  readonly instance_id: string;
  /** Default: every volume attached to the instance, in device order. */
  readonly volume_ids?: readonly string[] | undefined;
}

export interface PlanStageInput {
  readonly instances: readonly PlanInstanceInput[];
}

export interface CreatePlanInput {
  readonly name: string;
  readonly description?: string | null | undefined;
  readonly stages: readonly PlanStageInput[];
  readonly require_quiesce?: boolean | undefined;
  readonly freeze_deadline_ms?: number | undefined;
  readonly schedule?: string | null | undefined;
  readonly keep_last?: number | null | undefined;
  readonly backup?: boolean | undefined;
}

export type UpdatePlanInput = Partial<CreatePlanInput>;

// ---- lookups ----

export async function getPlan(ex: Executor, caller: Caller, id: string): Promise<ProtectionPlanRow> {
  const row = await ex.selectFrom('protection_plans').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Protection plan ${id} could not be found.`);
  return row;
}

export async function getPlanRun(ex: Executor, caller: Caller, id: string): Promise<PlanRunRow> {
  const row = await ex.selectFrom('plan_runs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Plan run ${id} could not be found.`);
  return row;
}

export async function listPlans(ex: Executor, caller: Caller, allTenants: boolean): Promise<ProtectionPlanRow[]> {
  let sel = ex.selectFrom('protection_plans').selectAll();
  if (!(caller.isAdmin && allTenants)) sel = sel.where('project_id', '=', caller.projectId);
  return sel.execute();
}

export async function listPlanRuns(ex: Executor, caller: Caller, planId: string): Promise<PlanRunRow[]> {
  const plan = await getPlan(ex, caller, planId);
  return ex.selectFrom('plan_runs').selectAll().where('plan_id', '=', plan.id).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
}

async function activeRun(ex: Executor, planId: string): Promise<PlanRunRow | undefined> {
  return ex.selectFrom('plan_runs').selectAll().where('plan_id', '=', planId).where('status', 'in', [...ACTIVE_RUN_STATUSES]).executeTakeFirst();
}

// ---- validation ----

function checkSchedule(schedule: string | null | undefined): string | null {
  if (schedule === undefined || schedule === null) return null;
  const problem = cronProblem(schedule);
  if (problem) throw invalidInput(`schedule ${JSON.stringify(schedule)} is not a valid 5-field cron expression: ${problem}.`);
  return schedule.trim().split(/\s+/).join(' ');
}

function checkScalars(input: UpdatePlanInput): void {
  if (input.name !== undefined && (input.name.trim() === '' || input.name.length > 255)) throw invalidInput('name must be 1 to 255 characters.');
  const fd = input.freeze_deadline_ms;
  if (fd !== undefined && (!Number.isInteger(fd) || fd < 1000 || fd > 600_000)) throw invalidInput('freeze_deadline_ms must be an integer from 1000 to 600000.');
  const kl = input.keep_last;
  if (kl !== undefined && kl !== null && (!Number.isInteger(kl) || kl < 1 || kl > 1000)) throw invalidInput('keep_last must be null or an integer from 1 to 1000.');
}

/**
 * Resolves the stages against the store: every instance is a live instance of
 * `projectId` and appears once in the whole plan; every volume is attached to
 * its instance and appears once; an instance without volume_ids takes all of
 * its attached volumes in device order (resolved now: a volume attached later
 * joins the plan when the plan is updated).
 */
export async function resolveStages(ex: Executor, projectId: string, stages: readonly PlanStageInput[]): Promise<PlanStage[]> {
  if (stages.length === 0) throw invalidInput('stages must contain at least one stage.');
  const seenInstances = new Set<string>();
  const seenVolumes = new Set<string>();
  const out: PlanStage[] = [];
  for (const [si, stage] of stages.entries()) {
    if (stage.instances.length === 0) throw invalidInput(`stage ${si} has no instances.`);
    const resolved: PlanStage = { instances: [] };
    for (const inst of stage.instances) {
      const id = inst.instance_id;
      if (seenInstances.has(id)) throw invalidInput(`instance ${id} appears more than once in the plan.`);
      seenInstances.add(id);
      const row = await ex.selectFrom('instances').select(['id', 'status']).where('id', '=', id).where('project_id', '=', projectId).executeTakeFirst();
      if (!row || row.status === 'DELETED') throw badRequest(`Invalid input received: instance ${id} could not be found.`);
      const attached = await ex.selectFrom('instance_volumes').select(['volume_id', 'device']).where('instance_id', '=', id).execute();
      attached.sort((a, b) => a.device.length - b.device.length || a.device.localeCompare(b.device));
      let volumeIds: string[];
      if (inst.volume_ids === undefined) {
        volumeIds = attached.map((a) => a.volume_id);
        if (volumeIds.length === 0) throw invalidInput(`instance ${id} has no attached volumes to protect.`);
      } else {
        if (inst.volume_ids.length === 0) throw invalidInput(`volume_ids of instance ${id} must not be empty (leave it out for all attached volumes).`);
        const onInstance = new Set(attached.map((a) => a.volume_id));
        for (const v of inst.volume_ids) {
          if (!onInstance.has(v)) throw invalidInput(`volume ${v} is not attached to instance ${id}.`);
        }
        volumeIds = [...inst.volume_ids];
      }
      for (const v of volumeIds) {
        // A multiattached volume could be named under two instances; one snapshot is enough.
        if (seenVolumes.has(v)) throw invalidInput(`volume ${v} appears more than once in the plan.`);
        seenVolumes.add(v);
      }
      resolved.instances.push({ instance_id: id, volume_ids: volumeIds });
    }
    out.push(resolved);
  }
  return out;
}

// ---- plans ----

export async function createPlan(deps: ServiceDeps, caller: Caller, input: CreatePlanInput): Promise<ProtectionPlanRow> {
  checkScalars(input);
  const schedule = checkSchedule(input.schedule);
  return deps.store.transaction(async (trx) => {
    const stages = await resolveStages(trx, caller.projectId, input.stages);
    const row: ProtectionPlanRow = {
      id: newId(),
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name,
      description: input.description ?? null,
      stages: JSON.stringify(stages),
      require_quiesce: input.require_quiesce === false ? 0 : 1,
      freeze_deadline_ms: input.freeze_deadline_ms ?? FREEZE_DEADLINE_DEFAULT_MS,
      schedule,
      next_run_at: schedule ? nextCronTime(schedule, Date.now()) : null,
      keep_last: input.keep_last ?? null,
      backup: input.backup ? 1 : 0,
      created_at: nowIso(),
      updated_at: null,
    };
    await trx.insertInto('protection_plans').values(row).execute();
    return row;
  });
}

/** What the orchestrator reads at run start; changing it under a live run is refused. */
const RUN_SHAPING_FIELDS = ['stages', 'require_quiesce', 'freeze_deadline_ms', 'backup'] as const;

export async function updatePlan(deps: ServiceDeps, caller: Caller, id: string, patch: UpdatePlanInput): Promise<ProtectionPlanRow> {
  checkScalars(patch);
  const schedule = patch.schedule === undefined ? undefined : checkSchedule(patch.schedule);
  return deps.store.transaction(async (trx) => {
    const plan = await getPlan(trx, caller, id);
    if (RUN_SHAPING_FIELDS.some((f) => patch[f] !== undefined)) {
      const live = await activeRun(trx, plan.id);
      if (live) throw conflict(`Protection plan ${id} has run ${live.id} ${live.status}; change its stages, quiesce, deadline or backup settings once it has finished.`);
    }
    const set: Partial<ProtectionPlanRow> = { updated_at: nowIso() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    // The plan stays in its own project even when an admin edits it.
    if (patch.stages !== undefined) set.stages = JSON.stringify(await resolveStages(trx, plan.project_id, patch.stages));
    if (patch.require_quiesce !== undefined) set.require_quiesce = patch.require_quiesce ? 1 : 0;
    if (patch.freeze_deadline_ms !== undefined) set.freeze_deadline_ms = patch.freeze_deadline_ms;
    if (schedule !== undefined) {
      set.schedule = schedule;
      set.next_run_at = schedule ? nextCronTime(schedule, Date.now()) : null;
    }
    if (patch.keep_last !== undefined) set.keep_last = patch.keep_last;
    if (patch.backup !== undefined) set.backup = patch.backup ? 1 : 0;
    await trx.updateTable('protection_plans').set(set).where('id', '=', plan.id).execute();
    return getPlan(trx, caller, id);
  });
}

/**
 * Deletes a plan. Refused (409) while a run is queued or running. A plan that
 * still has runs is refused too unless `deleteRuns`: then every run goes the
 * way of deletePlanRun in the same transaction (all or nothing) and the plan
 * row goes at once; the runs' rows follow when their snapshots are gone.
 */
export async function deletePlan(deps: ServiceDeps, caller: Caller, id: string, opts: { deleteRuns: boolean }): Promise<void> {
  const enqueued = await deps.store.transaction(async (trx) => {
    const plan = await getPlan(trx, caller, id);
    const live = await activeRun(trx, plan.id);
    if (live) throw conflict(`Protection plan ${id} has run ${live.id} ${live.status}; delete the plan once it has finished.`);
    const runs = await trx.selectFrom('plan_runs').selectAll().where('plan_id', '=', plan.id).execute();
    const left = runs.filter((r) => r.status !== 'deleting');
    if (left.length > 0 && !opts.deleteRuns) {
      throw conflict(`Protection plan ${id} still has ${left.length} run(s); delete them first or pass delete_runs=true.`);
    }
    let jobs = 0;
    for (const run of left) jobs += await markRunDeleting(trx, deps, run);
    await trx.deleteFrom('protection_plans').where('id', '=', plan.id).execute();
    return jobs;
  });
  if (enqueued > 0) deps.kick?.();
  await reapDeletingRuns(deps);
}

// ---- runs ----

/**
 * Queues a run of `plan` inside the caller's transaction: the run row and the
 * orchestrator's job commit together. Null when the plan already has a queued
 * or running run (the transaction is serializable, so two triggers cannot
 * both see none).
 */
export async function queueRunIn(trx: Executor, deps: ServiceDeps, plan: ProtectionPlanRow, trigger: RunTrigger): Promise<PlanRunRow | null> {
  if (await activeRun(trx, plan.id)) return null;
  const run: PlanRunRow = {
    id: newId(),
    plan_id: plan.id,
    project_id: plan.project_id,
    status: 'queued',
    trigger,
    consistency: null,
    record: '{}',
    freeze_window_ms: null,
    snapshot_ids: '[]',
    backup_ids: '[]',
    error: null,
    started_at: null,
    finished_at: null,
    created_at: nowIso(),
    updated_at: null,
  };
  await trx.insertInto('plan_runs').values(run).execute();
  await deps.jobs.enqueue(trx, { kind: RUN_PLAN_JOB, target: ORCHESTRATOR_TARGET, resourceId: run.id, payload: { planId: plan.id } });
  return run;
}

export async function triggerPlanRun(deps: ServiceDeps, caller: Caller, planId: string): Promise<PlanRunRow> {
  const run = await deps.store.transaction(async (trx) => {
    const plan = await getPlan(trx, caller, planId);
    const queued = await queueRunIn(trx, deps, plan, 'manual');
    if (!queued) {
      const live = await activeRun(trx, plan.id);
      throw conflict(`Protection plan ${planId} already has a run in progress (${live?.id ?? '?'}, ${live?.status ?? '?'}); one run at a time.`);
    }
    return queued;
  });
  deps.kick?.();
  return run;
}

async function casRunStatus(ex: Executor, id: string, expected: readonly string[], set: Partial<PlanRunRow>): Promise<boolean> {
  const res = await ex
    .updateTable('plan_runs')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .where('status', 'in', [...expected])
    .executeTakeFirst();
  return res.numUpdatedRows === 1n;
}

export function runSnapshotIds(run: Pick<PlanRunRow, 'snapshot_ids'>): string[] {
  const parsed: unknown = JSON.parse(run.snapshot_ids || '[]');
  return Array.isArray(parsed) ? parsed.map(String) : [];
}

/**
 * Within `trx`: run → 'deleting' and each of its snapshots → 'deleting' with
 * the volume host's delete_snapshot job, as Cinder's snapshot delete does. A
 * snapshot already gone or already deleting is left alone; one that is busy
 * (creating, backing-up, ...) refuses the whole deletion (409). Returns the
 * number of jobs enqueued.
 */
async function markRunDeleting(trx: Executor, deps: ServiceDeps, run: PlanRunRow): Promise<number> {
  if (!DELETABLE_RUN_STATUSES.includes(run.status)) throw conflict(`Plan run ${run.id} is ${run.status}; only an available or error run can be deleted.`);
  if (!(await casRunStatus(trx, run.id, [run.status], { status: 'deleting' }))) throw conflict(`Plan run ${run.id} changed status concurrently; try again.`);
  let jobs = 0;
  for (const snapId of runSnapshotIds(run)) {
    const snap = await trx.selectFrom('snapshots').selectAll().where('id', '=', snapId).executeTakeFirst();
    if (!snap || snap.status === 'deleting') continue;
    if (!DELETABLE_SNAPSHOT_STATUSES.includes(snap.status) || snap.group_snapshot_id) {
      throw conflict(`Snapshot ${snapId} of plan run ${run.id} is ${snap.status}${snap.group_snapshot_id ? ' and part of a group snapshot' : ''}; try again later.`);
    }
    const res = await trx.updateTable('snapshots').set({ status: 'deleting', updated_at: nowIso() }).where('id', '=', snapId).where('status', '=', snap.status).executeTakeFirst();
    if (res.numUpdatedRows !== 1n) throw conflict(`Snapshot ${snapId} changed status concurrently; try again.`);
    const vol = await trx.selectFrom('volumes').select('host').where('id', '=', snap.volume_id).executeTakeFirst();
    const host = vol?.host ?? null;
    if (!host && !snap.layer_id) {
      // Nothing was ever written on a pool for it (as in deleteSnapshot).
      await trx.deleteFrom('snapshots').where('id', '=', snapId).execute();
      continue;
    }
    await deps.jobs.enqueue(trx, { kind: 'delete_snapshot', target: host, resourceId: snapId, payload: { volumeId: snap.volume_id, force: false } });
    jobs++;
  }
  return jobs;
}

export async function deletePlanRun(deps: ServiceDeps, caller: Caller, runId: string): Promise<void> {
  const jobs = await deps.store.transaction(async (trx) => markRunDeleting(trx, deps, await getPlanRun(trx, caller, runId)));
  if (jobs > 0) deps.kick?.();
  await reapDeletingRuns(deps);
}

export interface RetentionResult {
  /** Runs now on their way out. */
  readonly deleting: string[];
  /** Runs beyond keep_last that could not be deleted now (a busy snapshot); the next call retries. */
  readonly skipped: { readonly runId: string; readonly reason: string }[];
}

/**
 * Keeps the newest `keep_last` available runs of the plan and deletes the
 * older available ones (each as deletePlanRun would, one transaction per run).
 * Runs in error are not counted and not touched. Called by the orchestrator
 * after a run becomes available.
 */
export async function applyRetention(deps: ServiceDeps, planId: string): Promise<RetentionResult> {
  const plan = await deps.store.db.selectFrom('protection_plans').select(['id', 'keep_last']).where('id', '=', planId).executeTakeFirst();
  const out: RetentionResult = { deleting: [], skipped: [] };
  if (!plan || plan.keep_last === null) return out;
  const available = await deps.store.db
    .selectFrom('plan_runs')
    .select('id')
    .where('plan_id', '=', planId)
    .where('status', '=', 'available')
    .orderBy('created_at', 'desc')
    .orderBy('finished_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
  let jobs = 0;
  for (const { id } of available.slice(plan.keep_last)) {
    try {
      jobs += await deps.store.transaction(async (trx) => {
        const run = await trx.selectFrom('plan_runs').selectAll().where('id', '=', id).executeTakeFirst();
        // Gone or moved on since the listing (another caller's retention): nothing to do.
        if (!run || run.status !== 'available') return 0;
        const n = await markRunDeleting(trx, deps, run);
        out.deleting.push(id);
        return n;
      });
    } catch (err) {
      out.skipped.push({ runId: id, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  if (jobs > 0) deps.kick?.();
  await reapDeletingRuns(deps);
  return out;
}

/**
 * Finishes deleting runs: a 'deleting' run none of whose snapshots is left
 * loses its row; one whose remaining snapshots all failed to delete goes to
 * 'error' with their ids. Safe to call from any number of processes: both
 * changes are conditional on the run still being 'deleting'.
 */
export async function reapDeletingRuns(deps: ServiceDeps): Promise<{ removed: number; failed: number }> {
  const runs = await deps.store.db.selectFrom('plan_runs').select(['id', 'snapshot_ids']).where('status', '=', 'deleting').execute();
  let removed = 0;
  let failed = 0;
  for (const run of runs) {
    const ids = runSnapshotIds(run);
    const left = ids.length === 0 ? [] : await deps.store.db.selectFrom('snapshots').select(['id', 'status']).where('id', 'in', ids).execute();
    if (left.length === 0) {
      const res = await deps.store.db.deleteFrom('plan_runs').where('id', '=', run.id).where('status', '=', 'deleting').executeTakeFirst();
      removed += Number(res.numDeletedRows);
    } else if (left.every((s) => s.status === 'error_deleting')) {
      const error = `deleting snapshot(s) ${left.map((s) => s.id).join(', ')} failed; delete the run again to retry`;
      if (await casRunStatus(deps.store.db, run.id, ['deleting'], { status: 'error', error })) failed++;
    }
  }
  return { removed, failed };
}

// ---- restore points ----

export const RESTORE_RUN_JOB = 'restore_plan_run';

/** Restores an available run as a unit (volumes, then servers stage by stage);
 *  the orchestrator does it and reports progress in the run's record.restore. */
export async function requestRunRestore(deps: ServiceDeps, caller: Caller, runId: string): Promise<PlanRunRow> {
  const row = await deps.store.transaction(async (trx) => {
    const run = await getPlanRun(trx, caller, runId);
    if (run.status !== 'available') throw conflict(`Plan run ${runId} is ${run.status}; only an available run can be restored.`);
    const record = JSON.parse(run.record) as { blueprints?: unknown[]; restore?: { status: string } };
    if (!record.blueprints) throw badRequest(`Plan run ${runId} records no blueprint of its instances; it cannot be restored as a unit.`);
    if (record.restore && ['queued', 'running'].includes(record.restore.status)) throw conflict(`A restore of plan run ${runId} is already ${record.restore.status}.`);
    record.restore = { status: 'queued', requested_at: nowIso(), started_at: null, finished_at: null, error: null, servers: [] } as { status: string };
    const res = await trx.updateTable('plan_runs').set({ record: JSON.stringify(record), updated_at: nowIso() }).where('id', '=', runId).where('status', '=', 'available').executeTakeFirst();
    if (res.numUpdatedRows !== 1n) throw conflict(`Plan run ${runId} changed concurrently; try again.`);
    await deps.jobs.enqueue(trx, { kind: RESTORE_RUN_JOB, target: ORCHESTRATOR_TARGET, resourceId: runId, payload: {} });
    return { ...run, record: JSON.stringify(record) };
  });
  deps.kick?.();
  return row;
}
