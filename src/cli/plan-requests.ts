// `bulwark plan ...` arguments → requests of Bulwark's protection-plan
// extension, and the plan/run summaries the commands print. Pure, so the
// mapping is unit-tested without a server.
import { asRecordOrNull, CliError, type ApiRequest, type Resource } from './client.js';
import { UUID } from './requests.js';

const enc = encodeURIComponent;

export const PLANS = '/bulwark-protection-plans';
export const RUNS = '/bulwark-plan-runs';

export interface PlanInstanceArg {
  instance_id: string;
  volume_ids?: string[];
}

/**
 * One --stage value: INSTANCE[,INSTANCE...], each optionally
 * INSTANCE:VOLUME[+VOLUME...] to protect only those volumes (IDs only: the
 * instances belong to the compute API, which this client does not search).
 */
export function parseStage(text: string): { instances: PlanInstanceArg[] } {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new CliError(`--stage ${JSON.stringify(text)}: give INSTANCE[,INSTANCE...] with no empty entries`);
  return {
    instances: parts.map((part) => {
      const [inst, vols, ...rest] = part.split(':');
      if (rest.length > 0 || !inst || !UUID.test(inst)) throw new CliError(`--stage: ${JSON.stringify(part)} is not INSTANCE_ID or INSTANCE_ID:VOLUME_ID[+VOLUME_ID...]`);
      if (vols === undefined) return { instance_id: inst };
      const volumeIds = vols.split('+').map((v) => v.trim());
      if (volumeIds.some((v) => !UUID.test(v))) throw new CliError(`--stage: the volumes of ${inst} must be volume IDs joined by '+'`);
      return { instance_id: inst, volume_ids: volumeIds };
    }),
  };
}

export interface PlanCreateArgs {
  name: string;
  stage: string[];
  description?: string;
  /** commander's --no-require-quiesce sets this false. */
  requireQuiesce?: boolean;
  deadlineMs?: number;
  schedule?: string;
  keepLast?: number;
  backup?: boolean;
}

export function planCreate(a: PlanCreateArgs): ApiRequest {
  if (a.stage.length === 0) throw new CliError('give at least one --stage');
  const plan: Record<string, unknown> = { name: a.name, stages: a.stage.map(parseStage) };
  if (a.description !== undefined) plan['description'] = a.description;
  if (a.requireQuiesce === false) plan['require_quiesce'] = false;
  if (a.deadlineMs !== undefined) plan['freeze_deadline_ms'] = a.deadlineMs;
  if (a.schedule !== undefined) plan['schedule'] = a.schedule;
  if (a.keepLast !== undefined) plan['keep_last'] = a.keepLast;
  if (a.backup) plan['backup'] = true;
  return { method: 'POST', path: PLANS, body: { protection_plan: plan } };
}

export function planList(a: { allProjects?: boolean } = {}): ApiRequest {
  return { method: 'GET', path: PLANS, ...(a.allProjects ? { query: { all_tenants: '1' } } : {}) };
}

export function planItem(method: 'GET' | 'DELETE', id: string, a: { deleteRuns?: boolean } = {}): ApiRequest {
  return { method, path: `${PLANS}/${enc(id)}`, ...(method === 'DELETE' && a.deleteRuns ? { query: { delete_runs: 'true' } } : {}) };
}

export function planTrigger(id: string): ApiRequest {
  return { method: 'POST', path: `${PLANS}/${enc(id)}/runs` };
}

export function planRuns(id: string): ApiRequest {
  return { method: 'GET', path: `${PLANS}/${enc(id)}/runs` };
}

export function runItem(method: 'GET' | 'DELETE', id: string): ApiRequest {
  return { method, path: `${RUNS}/${enc(id)}` };
}

/** "1: <instance> (vol, vol)" per instance, stage by stage, for the show table. */
export function stagesText(stages: unknown): string {
  if (!Array.isArray(stages)) return '';
  return stages
    .flatMap((stage, i) => {
      const instances = (asRecordOrNull(stage)?.['instances'] ?? []) as unknown[];
      return instances.map(asRecordOrNull).filter((x): x is Resource => x !== null).map((inst) => {
        const vols = Array.isArray(inst['volume_ids']) ? (inst['volume_ids'] as unknown[]).map(String).join(', ') : '';
        return `${i + 1}: ${String(inst['instance_id'])} (${vols})`;
      });
    })
    .join('\n');
}

/** A plan for the Field/Value table: stages one line per instance. */
export function planForShow(p: Resource): Resource {
  return { ...p, stages: stagesText(p['stages']) };
}

/** The freeze window of a finished run in one line, from its record. */
export function freezeWindowLine(run: Resource): string {
  const rec = asRecordOrNull(run['record']) ?? {};
  const win = asRecordOrNull(rec['window']);
  const ms = typeof run['freeze_window_ms'] === 'number' ? run['freeze_window_ms'] : typeof win?.['ms'] === 'number' ? win['ms'] : null;
  const snaps = Array.isArray(run['snapshot_ids']) ? run['snapshot_ids'].length : 0;
  const parts = [`run ${String(run['id'])} ${String(run['status'])}`];
  parts.push(ms === null ? 'no freeze window recorded' : `freeze window ${ms.toFixed(1)} ms`);
  if (win?.['first_freeze_at'] !== undefined && win['last_thaw_at'] !== undefined) parts.push(`first freeze ${String(win['first_freeze_at'])}, last thaw ${String(win['last_thaw_at'])}`);
  if (run['consistency'] !== null && run['consistency'] !== undefined) parts.push(`consistency ${String(run['consistency'])}`);
  parts.push(`${snaps} snapshot(s)`);
  return `${parts.join('; ')}\n`;
}

/** A run for the Field/Value table: the record's orders and window, not its whole JSON. */
export function runForShow(run: Resource): Resource {
  const { record, ...rest } = run;
  const rec = asRecordOrNull(record) ?? {};
  const out: Resource = { ...rest };
  for (const k of ['freeze_order', 'thaw_order', 'snapshot_ms']) if (rec[k] !== undefined) out[`record.${k}`] = rec[k];
  const win = asRecordOrNull(rec['window']);
  if (win) for (const [k, v] of Object.entries(win)) out[`record.window.${k}`] = v;
  return out;
}
