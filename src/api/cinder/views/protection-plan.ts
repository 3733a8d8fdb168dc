// Bodies of Bulwark's protection-plan extension: plans and their runs. JSON
// columns come out parsed; a run's record is shown exactly as the orchestrator
// wrote it.
import type { PlanRunRow, PlanStage, ProtectionPlanRow } from '../../../store/schema.js';
import { cinderTime, links, parseJson, type ViewContext } from './common.js';

export const PLAN_COLLECTION = 'bulwark-protection-plans';
export const RUN_COLLECTION = 'bulwark-plan-runs';

/** Epoch ms as Cinder-style naive UTC, or null. */
function epochTime(ms: number | null): string | null {
  return ms === null ? null : cinderTime(new Date(Number(ms)).toISOString());
}

export function protectionPlanView(v: ViewContext, row: ProtectionPlanRow): Record<string, unknown> {
  return {
    id: row.id,
    project_id: row.project_id,
    user_id: row.user_id,
    name: row.name,
    description: row.description,
    stages: parseJson<PlanStage[]>(row.stages, []),
    require_quiesce: row.require_quiesce === 1,
    freeze_deadline_ms: row.freeze_deadline_ms,
    schedule: row.schedule,
    next_run_at: epochTime(row.next_run_at),
    keep_last: row.keep_last,
    backup: row.backup === 1,
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    links: links(v, PLAN_COLLECTION, row.id),
  };
}

export function planRunView(v: ViewContext, row: PlanRunRow): Record<string, unknown> {
  return {
    id: row.id,
    plan_id: row.plan_id,
    project_id: row.project_id,
    status: row.status,
    trigger: row.trigger,
    consistency: row.consistency,
    freeze_window_ms: row.freeze_window_ms === null ? null : Number(row.freeze_window_ms),
    snapshot_ids: parseJson<string[]>(row.snapshot_ids, []),
    backup_ids: parseJson<string[]>(row.backup_ids, []),
    error: row.error,
    record: parseJson<Record<string, unknown>>(row.record, {}),
    started_at: cinderTime(row.started_at),
    finished_at: cinderTime(row.finished_at),
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    links: links(v, RUN_COLLECTION, row.id),
  };
}
