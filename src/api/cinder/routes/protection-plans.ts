// Bulwark's protection-plan extension (docs/api-extensions.md, "Protection plans"):
//   POST/GET         /v3/{project_id}/bulwark-protection-plans
//   GET/PUT/DELETE   /v3/{project_id}/bulwark-protection-plans/{id}   (DELETE ?delete_runs=true)
//   POST/GET         /v3/{project_id}/bulwark-protection-plans/{id}/runs
//   GET/DELETE       /v3/{project_id}/bulwark-plan-runs/{run_id}
//   POST             /v3/{project_id}/bulwark-plan-runs/{run_id}/restore   (a restore point, as a unit)
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  createPlan, deletePlan, deletePlanRun, getPlan, getPlanRun, listPlanRuns, listPlans, requestRunRestore, triggerPlanRun, updatePlan,
} from '../../../services/plans.js';
import type { PlanRunRow, ProtectionPlanRow } from '../../../store/schema.js';
import { badRequest } from '../../errors.js';
import { descriptionField, parseBody, parseBool, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { PLAN_COLLECTION, planRunView, protectionPlanView } from '../views/protection-plan.js';

const PLAN_FILTERS = ['name', 'schedule'];
const PLAN_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'project_id'];
const RUN_FILTERS = ['status', 'trigger', 'consistency'];
const RUN_SORT_KEYS = ['created_at', 'updated_at', 'id', 'status', 'started_at', 'finished_at'];

const instanceSchema = z
  .object({
    instance_id: uuidField,
    volume_ids: z.array(uuidField).min(1).max(64).optional(),
  })
  .strict();
const stageSchema = z.object({ instances: z.array(instanceSchema).min(1).max(100) }).strict();

const planFields = {
  name: z.string().min(1).max(255).refine((s) => s.trim() !== '', 'must not be blank'),
  description: descriptionField.optional(),
  stages: z.array(stageSchema).min(1).max(20),
  require_quiesce: z.boolean().optional(),
  freeze_deadline_ms: z.number().int().min(1000).max(600_000).optional(),
  schedule: z.string().max(255).nullable().optional(),
  keep_last: z.number().int().min(1).max(1000).nullable().optional(),
  backup: z.boolean().optional(),
};

const createSchema = z.object({ protection_plan: z.object(planFields).strict() }).strict();
const updateSchema = z
  .object({
    protection_plan: z
      .object({ ...planFields, name: planFields.name.optional(), stages: planFields.stages.optional() })
      .strict()
      .refine((v) => Object.keys(v).length > 0, 'at least one field to change is required'),
  })
  .strict();
/** A run takes no options; the body may be absent, {} or {"plan_run": {}}. */
const triggerSchema = z.object({ plan_run: z.object({}).strict().nullable().optional() }).strict();

export function registerProtectionPlanRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

  const planField = (row: ProtectionPlanRow, key: string): unknown => (row as unknown as Record<string, unknown>)[key];
  const runField = (row: PlanRunRow, key: string): unknown => (row as unknown as Record<string, unknown>)[key];

  app.post('/bulwark-protection-plans', async (req) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(createSchema, req.body).protection_plan;
    return { protection_plan: protectionPlanView(s, await createPlan(deps, s, body)) };
  });

  app.get('/bulwark-protection-plans', async (req) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: PLAN_FILTERS, sortKeys: PLAN_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const rows = (await listPlans(db, s, q.allTenants)).filter((r) => matchesFilters(r, q.filters, planField));
    const page = paginate(rows, q, planField);
    const body: Record<string, unknown> = { protection_plans: page.items.map((r) => protectionPlanView(s, r)) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/${PLAN_COLLECTION}`, query, page.nextMarker);
    if (next) body['protection_plans_links'] = next;
    if (q.withCount) body['count'] = page.count;
    return body;
  });

  app.get('/bulwark-protection-plans/:id', async (req) => {
    const s = scopeOf(req);
    return { protection_plan: protectionPlanView(s, await getPlan(db, s, idOf(req))) };
  });

  app.put('/bulwark-protection-plans/:id', async (req) => {
    const s = scopeOf(req);
    requireWriter(s);
    const patch = parseBody(updateSchema, req.body).protection_plan;
    return { protection_plan: protectionPlanView(s, await updatePlan(deps, s, idOf(req), patch)) };
  });

  app.delete('/bulwark-protection-plans/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const query = req.query as Record<string, string | undefined>;
    const unknown = Object.keys(query).filter((k) => k !== 'delete_runs');
    if (unknown.length > 0) throw badRequest(`Invalid input received: unknown query parameter(s) ${unknown.join(', ')}.`);
    const deleteRuns = query['delete_runs'] === undefined ? false : parseBool(query['delete_runs'], 'delete_runs');
    await deletePlan(deps, s, idOf(req), { deleteRuns });
    return reply.code(202).send();
  });

  app.post('/bulwark-protection-plans/:id/runs', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const raw = req.body;
    if (raw !== undefined && raw !== null) parseBody(triggerSchema, raw);
    const run = await triggerPlanRun(deps, s, idOf(req));
    return reply.code(202).send({ plan_run: planRunView(s, run) });
  });

  app.get('/bulwark-protection-plans/:id/runs', async (req) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: RUN_FILTERS, sortKeys: RUN_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const rows = (await listPlanRuns(db, s, idOf(req))).filter((r) => matchesFilters(r, q.filters, runField));
    const page = paginate(rows, q, runField);
    const body: Record<string, unknown> = { plan_runs: page.items.map((r) => planRunView(s, r)) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/${PLAN_COLLECTION}/${idOf(req)}/runs`, query, page.nextMarker);
    if (next) body['plan_runs_links'] = next;
    if (q.withCount) body['count'] = page.count;
    return body;
  });

  app.get('/bulwark-plan-runs/:id', async (req) => {
    const s = scopeOf(req);
    return { plan_run: planRunView(s, await getPlanRun(db, s, idOf(req))) };
  });

  app.post('/bulwark-plan-runs/:id/restore', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    if (req.body !== undefined && req.body !== null) parseBody(z.object({ restore: z.object({}).strict().nullable().optional() }).strict(), req.body);
    const run = await requestRunRestore(deps, s, idOf(req));
    return reply.code(202).send({ plan_run: planRunView(s, run) });
  });

  app.delete('/bulwark-plan-runs/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    await deletePlanRun(deps, s, idOf(req));
    return reply.code(202).send();
  });
}
