// Bulwark's backup repository administration extension, admin only:
//   POST /v3/{project_id}/bulwark-repository/verify  {"verify": {"backup_ids": [...]}}?
//   POST /v3/{project_id}/bulwark-repository/gc      {"gc": {"dry_run": bool}}?
// Both run synchronously on a backup service and answer 200 with the report.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { gcRepository, verifyRepository } from '../../../services/repository-admin.js';
import { parseBody, uuidField } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';

const verifySchema = z.object({ verify: z.object({ backup_ids: z.array(uuidField).max(1000).optional() }).strict().nullable() }).strict();
const gcSchema = z.object({ gc: z.object({ dry_run: z.boolean().optional() }).strict().nullable() }).strict();

/** A bodiless POST is the same as an empty object. */
const orEmpty = (body: unknown, key: string): unknown => (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0) ? { [key]: null } : body);

export function registerRepositoryAdminRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;

  app.post('/bulwark-repository/verify', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const body = parseBody(verifySchema, orEmpty(req.body, 'verify')).verify;
    return { verify: await verifyRepository(deps, s, body?.backup_ids ?? null) };
  });

  app.post('/bulwark-repository/gc', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const body = parseBody(gcSchema, orEmpty(req.body, 'gc')).gc;
    return { gc: await gcRepository(deps, body?.dry_run ?? false) };
  });
}
