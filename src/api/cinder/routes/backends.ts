// os-hosts, scheduler-stats/get_pools and capabilities/{host}: admin-only
// views of the volume backends (Cinder's hosts, scheduler_stats and
// capabilities extensions).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { backendCapabilities, listHosts, listPools, showHost, type PoolEntry } from '../../../services/backends.js';
import { extraSpecsOf } from '../../../services/type-admin.js';
import { resolveVolumeType } from '../../../services/volume-types.js';
import { matchesExtraSpecs } from '../../../roles/scheduler/filters.js';
import type { Executor } from '../../../store/db.js';
import { badRequest } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { parseBool } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf, type CinderScope } from '../scope.js';
import { capabilitiesView, hostView, poolView } from '../views/backend.js';

/** Query parameters with repeated keys collapsed to the last value. */
function flatQuery(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.query as Record<string, string | string[] | undefined>)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v[v.length - 1]! : v;
  }
  return out;
}

/** host_manager._equal_after_convert: a query string against a reported capability. */
function equalAfterConvert(cap: unknown, value: string): boolean {
  if (cap === null || cap === undefined || typeof cap === 'string') return cap === value;
  if (typeof cap === 'boolean') return cap === ['1', 't', 'true', 'on', 'y', 'yes'].includes(value.trim().toLowerCase());
  return String(cap) === value;
}

/**
 * Cinder's pool filtering: none before 3.28; from 3.31 only name and
 * volume_type are accepted (400 otherwise); volume_type from 3.35; any other
 * key (3.28-3.30) compares a capability.
 */
async function filterPools(s: CinderScope, db: Executor, pools: PoolEntry[], query: Record<string, string>): Promise<PoolEntry[]> {
  if (!atLeast(s.version, '3.28')) return pools;
  const filters = { ...query };
  if (atLeast(s.version, '3.31')) {
    const invalid = Object.keys(filters).filter((k) => k !== 'name' && k !== 'volume_type');
    if (invalid.length > 0) throw badRequest(`Invalid filters ${invalid.join(', ')} are found in query options.`);
  }
  const typeRef = atLeast(s.version, '3.35') ? filters['volume_type'] : undefined;
  delete filters['volume_type'];
  const name = filters['name'];
  delete filters['name'];
  let out = pools.filter((p) => (name === undefined || p.name === name) && Object.entries(filters).every(([k, v]) => equalAfterConvert(p.capabilities[k], v)));
  if (typeRef !== undefined) {
    const specs = extraSpecsOf(await resolveVolumeType(db, s, typeRef));
    out = out.filter((p) => matchesExtraSpecs(specs, p.schedulerView));
  }
  return out;
}

export function registerBackendRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store, config } = opts.deps;
  const db = store.db;
  const downAfterMs = config.jobs.serviceDownAfterMs;

  app.get('/os-hosts', async (req) => {
    requireAdmin(scopeOf(req));
    const zone = flatQuery(req)['zone'];
    return { hosts: (await listHosts(db, { downAfterMs, ...(zone ? { zone } : {}) })).map(hostView) };
  });

  app.get('/os-hosts/:host', async (req) => {
    requireAdmin(scopeOf(req));
    const resources = await showHost(db, (req.params as { host: string }).host);
    return { host: resources.map((resource) => ({ resource })) };
  });

  app.get('/scheduler-stats/get_pools', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const { detail: rawDetail, ...query } = flatQuery(req);
    const detail = rawDetail === undefined ? false : parseBool(rawDetail, 'detail');
    const pools = await filterPools(s, db, await listPools(db, downAfterMs), query);
    return { pools: pools.map((p) => poolView(p, detail)) };
  });

  app.get('/capabilities/:host', async (req) => {
    requireAdmin(scopeOf(req));
    const { serviceHost, capabilities } = await backendCapabilities(db, (req.params as { host: string }).host);
    return capabilitiesView(serviceHost, capabilities);
  });
}
