// The os-quota-sets and os-quota-class-sets operations (Cinder's
// api/contrib/quotas.py and quota_classes.py): validate every key and value
// first, then write them all in one transaction, so a refused request changes
// nothing.
import { badRequest, invalidInput } from '../api/errors.js';
import type { BulwarkConfig } from '../config/schema.js';
import type { Executor, Store } from '../store/db.js';
import {
  MAX_QUOTA_LIMIT,
  classQuotaLimits,
  projectQuotaLimits,
  projectQuotaUsage,
  quotaResourceNames,
  type QuotaMap,
} from './quotas.js';

/** Keys Cinder tolerates in a quota_set body and ignores. */
const NON_QUOTA_KEYS = ['tenant_id', 'id'];

export interface QuotaUsageEntry {
  readonly limit: number;
  readonly in_use: number;
  readonly reserved: number;
}

export async function projectQuotaSetWithUsage(ex: Executor, config: BulwarkConfig, projectId: string): Promise<Record<string, QuotaUsageEntry>> {
  const limits = await projectQuotaLimits(ex, config, projectId);
  const usage = await projectQuotaUsage(ex, projectId);
  const out: Record<string, QuotaUsageEntry> = {};
  // Nothing is ever reserved: usage is counted from live rows inside the
  // transaction that creates them, so there is no reservation window.
  for (const [k, limit] of Object.entries(limits)) out[k] = { limit, in_use: usage[k] ?? 0, reserved: 0 };
  return out;
}

/** Cinder's validate_integer: an integer or an integer string within [-1, DB_MAX_INT]. */
function quotaInteger(key: string, value: unknown): number {
  let n: number;
  if (typeof value === 'number' && Number.isInteger(value)) n = value;
  else if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) n = Number(value.trim());
  else throw invalidInput(`${key} must be an integer.`);
  if (n < -1) throw invalidInput(`${key} must be >= -1.`);
  if (n > MAX_QUOTA_LIMIT) throw invalidInput(`${key} must be <= ${MAX_QUOTA_LIMIT}.`);
  return n;
}

function requireObject(body: unknown, wrapper: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`Invalid input received: request body must be a JSON object.`);
  const keys = Object.keys(body);
  const extra = keys.filter((k) => k !== wrapper);
  if (extra.length > 0) throw badRequest(`Invalid input for field/attribute ${extra[0]}. Additional properties are not allowed.`);
  const inner = (body as Record<string, unknown>)[wrapper];
  if (inner === undefined) throw badRequest(`Invalid input for field/attribute ${wrapper}. '${wrapper}' is a required property.`);
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) throw badRequest(`Invalid input for field/attribute ${wrapper}. must be an object.`);
  return inner as Record<string, unknown>;
}

/**
 * PUT /os-quota-sets/{project}. A limit may not go below what the project
 * already uses (per_volume_gigabytes and -1 excepted). Cinder only checks
 * resources that already had a project-specific limit; this checks every one,
 * since a limit below usage is never what an operator means.
 */
export async function updateProjectQuotas(store: Store, config: BulwarkConfig, projectId: string, body: unknown): Promise<QuotaMap> {
  const set = requireObject(body, 'quota_set');
  if (Object.keys(set).length === 0) throw badRequest(`Invalid input for field/attribute quota_set. Expected at least 1 property.`);
  if (projectId.length < 1 || projectId.length > 255) throw invalidInput('quota_set_name must be between 1 and 255 characters.');
  return store.transaction(async (trx) => {
    const names = new Set(await quotaResourceNames(trx));
    const bad = Object.keys(set).filter((k) => !names.has(k) && !NON_QUOTA_KEYS.includes(k));
    if (bad.length > 0) throw invalidInput(`Bad key(s) in quota set: ${bad.join(', ')}`);
    const values: [string, number][] = [];
    for (const [k, v] of Object.entries(set)) if (!NON_QUOTA_KEYS.includes(k)) values.push([k, quotaInteger(k, v)]);
    const usage = await projectQuotaUsage(trx, projectId);
    for (const [k, v] of values) {
      if (k === 'per_volume_gigabytes' || v === -1) continue;
      const used = usage[k] ?? 0;
      if (v < used) {
        throw badRequest(`Quota ${k} limit must be equal or greater than existing resources. Current usage is ${used} and the requested limit is ${v}.`);
      }
    }
    for (const [resource, hard_limit] of values) {
      await trx
        .insertInto('quotas')
        .values({ project_id: projectId, resource, hard_limit })
        .onConflict((oc) => oc.columns(['project_id', 'resource']).doUpdateSet({ hard_limit }))
        .execute();
    }
    return projectQuotaLimits(trx, config, projectId);
  });
}

/** DELETE /os-quota-sets/{project}: back to the defaults. */
export async function resetProjectQuotas(store: Store, projectId: string): Promise<void> {
  await store.transaction(async (trx) => {
    await trx.deleteFrom('quotas').where('project_id', '=', projectId).execute();
  });
}

/**
 * PUT /os-quota-class-sets/{class}. Cinder's quota_class_set schema: values
 * are integers >= -1 or digit strings; keys must be quota resources.
 */
export async function updateQuotaClass(store: Store, config: BulwarkConfig, className: string, body: unknown): Promise<QuotaMap> {
  const set = requireObject(body, 'quota_class_set');
  if (className.length < 1 || className.length > 255) throw invalidInput('quota_class_name must be between 1 and 255 characters.');
  const values: [string, number][] = [];
  for (const [k, v] of Object.entries(set)) {
    if (!/^[a-zA-Z0-9-_:. ]{1,300}$/.test(k)) throw badRequest(`Invalid input for field/attribute quota_class_set. Additional properties are not allowed ('${k}' was unexpected).`);
    let n: number;
    if (typeof v === 'number' && Number.isInteger(v)) n = v;
    else if (typeof v === 'string' && /^[0-9]+$/.test(v)) n = Number(v);
    else throw badRequest(`Invalid input for field/attribute ${k}. Value: ${JSON.stringify(v)}. must be an integer >= -1.`);
    if (n < -1 || n > MAX_QUOTA_LIMIT) throw badRequest(`Invalid input for field/attribute ${k}. Value: ${n}. must be between -1 and ${MAX_QUOTA_LIMIT}.`);
    values.push([k, n]);
  }
  return store.transaction(async (trx) => {
    const names = new Set(await quotaResourceNames(trx));
    const bad = values.map(([k]) => k).filter((k) => !names.has(k));
    if (bad.length > 0) throw invalidInput(`Bad key(s) in quota class set: ${bad.join(', ')}`);
    for (const [resource, hard_limit] of values) {
      await trx
        .insertInto('quota_classes')
        .values({ class_name: className, resource, hard_limit })
        .onConflict((oc) => oc.columns(['class_name', 'resource']).doUpdateSet({ hard_limit }))
        .execute();
    }
    return classQuotaLimits(trx, config, className);
  });
}
