// /types/{id}/extra_specs and type access (Cinder's types_extra_specs and
// volume_type_access extensions). Reads follow the type's visibility; every
// write is admin-only.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  changeTypeAccess,
  deleteExtraSpec,
  extraSpecsOf,
  getVisibleType,
  listTypeAccess,
  mergeExtraSpecs,
  visibleExtraSpecs,
} from '../../../services/type-admin.js';
import { badRequest, notFound } from '../../errors.js';
import { parseBody } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';

/** extra_specs_with_no_spaces_key: no spaces or '/' in keys once the type exists. */
const specKey = z.string().regex(/^[a-zA-Z0-9\-_:.]{1,255}$/, 'invalid extra spec key');
const specMap = z.record(specKey, z.string().max(255));

const createSpecsSchema = z.object({ extra_specs: specMap }).strict();
const updateSpecSchema = specMap.refine((m) => Object.keys(m).length === 1, 'exactly one extra spec is required');

const projectRef = z.object({ project: z.string().min(1).max(255) }).strict();
const addAccessSchema = z.object({ addProjectAccess: projectRef }).strict();
const removeAccessSchema = z.object({ removeProjectAccess: projectRef }).strict();

const params = (req: FastifyRequest) => req.params as { id: string; key?: string };

export function registerTypeSpecRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store } = opts.deps;
  const db = store.db;

  app.get('/types/:id/extra_specs', async (req) => {
    const s = scopeOf(req);
    const row = await getVisibleType(db, s, params(req).id);
    return { extra_specs: visibleExtraSpecs(extraSpecsOf(row), s.isAdmin) };
  });

  app.post('/types/:id/extra_specs', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const specs = parseBody(createSpecsSchema, req.body).extra_specs;
    await mergeExtraSpecs(store, params(req).id, specs);
    // Cinder echoes the request body, not the merged set.
    return { extra_specs: specs };
  });

  app.get('/types/:id/extra_specs/:key', async (req) => {
    const s = scopeOf(req);
    const { id, key = '' } = params(req);
    const row = await getVisibleType(db, s, id);
    const specs = visibleExtraSpecs(extraSpecsOf(row), s.isAdmin);
    const value = specs[key];
    if (value === undefined) throw notFound(`Volume Type ${id} has no extra specs with key ${key}.`);
    return { [key]: value };
  });

  app.put('/types/:id/extra_specs/:key', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const { id, key = '' } = params(req);
    const body = parseBody(updateSpecSchema, req.body, 'extra spec');
    if (!(key in body)) throw badRequest('Request body and URI mismatch');
    await mergeExtraSpecs(store, id, body);
    return body;
  });

  app.delete('/types/:id/extra_specs/:key', async (req, reply) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const { id, key = '' } = params(req);
    await deleteExtraSpec(store, id, key);
    return reply.code(202).send();
  });

  app.get('/types/:id/os-volume-type-access', async (req) => {
    requireAdmin(scopeOf(req));
    return { volume_type_access: await listTypeAccess(db, params(req).id) };
  });

  app.post('/types/:id/action', async (req, reply) => {
    const s = scopeOf(req);
    const body = req.body;
    const action = body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body)[0] : undefined;
    if (action === 'addProjectAccess') {
      requireAdmin(s);
      const project = parseBody(addAccessSchema, body).addProjectAccess.project;
      await changeTypeAccess(store, params(req).id, project, 'add');
    } else if (action === 'removeProjectAccess') {
      requireAdmin(s);
      const project = parseBody(removeAccessSchema, body).removeProjectAccess.project;
      await changeTypeAccess(store, params(req).id, project, 'remove');
    } else {
      throw badRequest(action ? `There is no such action: ${action}` : 'Malformed request body');
    }
    return reply.code(202).send();
  });
}
