// os-quota-sets, os-quota-class-sets and limits (Cinder's contrib/quotas.py,
// contrib/quota_classes.py, v3/limits.py with os-used-limits).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { classQuotaLimits, projectQuotaLimits, projectQuotaUsage } from '../../../services/quotas.js';
import { projectQuotaSetWithUsage, resetProjectQuotas, updateProjectQuotas, updateQuotaClass } from '../../../services/quota-sets.js';
import { forbidden } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { parseBool } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf, type CinderScope } from '../scope.js';
import { limitsView } from '../views/limits.js';

/** quotas:show is "admin or owner": a project may read its own quotas, including readers. */
function requireQuotaReader(s: CinderScope, target: string): void {
  if (!s.isAdmin && s.projectId !== target) throw forbidden();
}

const targetOf = (req: FastifyRequest) => (req.params as { target: string }).target;

export function registerQuotaRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store, config } = opts.deps;
  const db = store.db;

  app.get('/os-quota-sets/:target', async (req) => {
    const s = scopeOf(req);
    const target = targetOf(req);
    requireQuotaReader(s, target);
    const query = req.query as Record<string, string | undefined>;
    const usage = query['usage'] !== undefined && parseBool(query['usage'], 'usage');
    const set = usage ? await projectQuotaSetWithUsage(db, config, target) : await projectQuotaLimits(db, config, target);
    return { quota_set: { ...set, id: target } };
  });

  app.get('/os-quota-sets/:target/defaults', async (req) => {
    const s = scopeOf(req);
    const target = targetOf(req);
    requireQuotaReader(s, target);
    return { quota_set: { ...(await classQuotaLimits(db, config)), id: target } };
  });

  app.put('/os-quota-sets/:target', async (req) => {
    requireAdmin(scopeOf(req));
    // Cinder answers an update without the project id.
    return { quota_set: await updateProjectQuotas(store, config, targetOf(req), req.body) };
  });

  app.delete('/os-quota-sets/:target', async (req, reply) => {
    requireAdmin(scopeOf(req));
    await resetProjectQuotas(store, targetOf(req));
    return reply.code(200).send();
  });

  app.get('/os-quota-class-sets/:target', async (req) => {
    requireAdmin(scopeOf(req));
    const cls = targetOf(req);
    return { quota_class_set: { ...(await classQuotaLimits(db, config, cls)), id: cls } };
  });

  app.put('/os-quota-class-sets/:target', async (req) => {
    requireAdmin(scopeOf(req));
    return { quota_class_set: await updateQuotaClass(store, config, targetOf(req), req.body) };
  });

  app.get('/limits', async (req) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string | undefined>;
    // From 3.39 an admin may ask about another project.
    const other = s.isAdmin && atLeast(s.version, '3.39') ? (query['project_id'] ?? query['tenant_id']) : undefined;
    const project = other ?? s.projectId;
    return limitsView(await projectQuotaLimits(db, config, project), await projectQuotaUsage(db, project));
  });
}
