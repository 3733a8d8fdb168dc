// /v3/{project_id}/group_types (3.11+): Cinder's group types and group specs
// controllers. Every write, and reading the specs, is admin-only by Cinder's
// default policy.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  createGroupType, deleteGroupType, getDefaultGroupType, getGroupType, groupSpecsOf, listGroupTypes, setGroupSpecs, updateGroupType,
} from '../../../services/group-types.js';
import type { GroupTypeRow } from '../../../store/schema.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { descriptionField, nameField, parseBody, parseBool } from '../../validate.js';
import { nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf, type CinderScope } from '../scope.js';
import { groupTypeView } from '../views/group-type.js';

const GROUP_TYPE_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'description', 'is_public'];
const PAGING_KEYS = ['sort', 'sort_key', 'sort_dir', 'limit', 'marker', 'offset'];

/** Cinder's versioned routing: below a route's microversion the route does not exist. */
export function requireMicroversion(s: CinderScope, min: string): void {
  if (!atLeast(s.version, min)) throw notFound('The resource could not be found.');
}

const boolish = z.union([z.boolean(), z.string()]);
/** parameter_types.extra_specs for types; group_specs endpoints also allow null values but no spaces or slashes in keys. */
const typeSpecs = z.record(z.string().regex(/^[a-zA-Z0-9-_:. /]{1,255}$/, 'invalid key'), z.string().max(255));
const specItems = z.record(z.string().regex(/^[a-zA-Z0-9-_:.]{1,255}$/, 'invalid key'), z.string().max(255).nullable());

const createSchema = z.object({
  group_type: z
    .object({
      name: z.string().min(1).max(255),
      description: descriptionField.optional(),
      is_public: boolish.optional(),
      group_specs: typeSpecs.nullable().optional(),
    })
    .strict(),
}).strict();

const updateSchema = z.object({
  group_type: z.object({ name: nameField.optional(), description: descriptionField.optional(), is_public: boolish.nullable().optional() }).strict(),
}).strict();

const specsBody = z.object({ group_specs: specItems }).strict();
const specItemBody = specItems.refine((m) => Object.keys(m).length === 1, 'the body must hold exactly one spec');

/** Cinder's _parse_is_public: absent = public only, "None" = both, otherwise a strict boolean. */
function parseIsPublic(raw: string | undefined): boolean | null {
  if (raw === undefined) return true;
  if (raw.toLowerCase() === 'none') return null;
  try {
    return parseBool(raw, 'is_public');
  } catch {
    throw badRequest(`Invalid is_public filter [${raw}]`);
  }
}

export function registerGroupTypeRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const typeId = (req: FastifyRequest) => (req.params as { id: string }).id;
  const scoped = (req: FastifyRequest) => {
    const s = scopeOf(req);
    requireMicroversion(s, '3.11');
    return s;
  };

  app.get('/group_types', async (req) => {
    const s = scoped(req);
    const query = req.query as Record<string, string>;
    // Group types accept is_public and paging only; anything else is ignored, not refused.
    const paging = Object.fromEntries(PAGING_KEYS.filter((k) => query[k] !== undefined).map((k) => [k, query[k]]));
    const q = parseListQuery(paging, { allowedFilters: [], sortKeys: GROUP_TYPE_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const rows = await listGroupTypes(db, s, parseIsPublic(query['is_public']));
    if (q.marker !== undefined && !rows.some((r) => r.id === q.marker)) throw notFound(`Group type ${q.marker} could not be found.`);
    const page = paginate(rows, q, (r: GroupTypeRow, k) => (r as unknown as Record<string, unknown>)[k]);
    const body: Record<string, unknown> = { group_types: page.items.map((r) => groupTypeView(s, r)) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/group_types`, query, page.nextMarker);
    if (next) body['group_type_links'] = next;
    return body;
  });

  app.get('/group_types/default', async (req) => {
    const s = scoped(req);
    return { group_type: groupTypeView(s, await getDefaultGroupType(db)) };
  });

  app.get('/group_types/:id', async (req) => {
    const s = scoped(req);
    return { group_type: groupTypeView(s, await getGroupType(db, s, typeId(req))) };
  });

  app.post('/group_types', async (req, reply) => {
    const s = scoped(req);
    requireAdmin(s);
    const body = parseBody(createSchema, req.body).group_type;
    const row = await createGroupType(deps, {
      name: body.name,
      description: body.description ?? null,
      isPublic: body.is_public === undefined ? true : parseBool(body.is_public, 'is_public'),
      specs: body.group_specs ?? {},
    });
    return reply.code(202).send({ group_type: groupTypeView(s, row) });
  });

  app.put('/group_types/:id', async (req) => {
    const s = scoped(req);
    requireAdmin(s);
    const body = parseBody(updateSchema, req.body).group_type;
    const row = await updateGroupType(deps, s, typeId(req), {
      name: body.name,
      description: body.description,
      isPublic: body.is_public === undefined || body.is_public === null ? undefined : parseBool(body.is_public, 'is_public'),
    });
    return { group_type: groupTypeView(s, row) };
  });

  app.delete('/group_types/:id', async (req, reply) => {
    const s = scoped(req);
    requireAdmin(s);
    await deleteGroupType(deps, s, typeId(req));
    return reply.code(202).send();
  });

  // Group specs sub-resource.
  app.get('/group_types/:id/group_specs', async (req) => {
    const s = scoped(req);
    requireAdmin(s);
    return { group_specs: groupSpecsOf(await getGroupType(db, s, typeId(req))) };
  });
  app.post('/group_types/:id/group_specs', async (req, reply) => {
    const s = scoped(req);
    requireAdmin(s);
    const specs = parseBody(specsBody, req.body).group_specs;
    await setGroupSpecs(deps, s, typeId(req), specs, 'merge');
    // Cinder echoes the request, not the merged set.
    return reply.code(202).send({ group_specs: specs });
  });
  app.get('/group_types/:id/group_specs/:key', async (req) => {
    const s = scoped(req);
    requireAdmin(s);
    const id = typeId(req);
    const key = (req.params as { key: string }).key;
    const specs = groupSpecsOf(await getGroupType(db, s, id));
    if (!(key in specs)) throw notFound(`Group Type ${id} has no extra spec with key ${key}.`);
    return { [key]: specs[key] };
  });
  app.put('/group_types/:id/group_specs/:key', async (req) => {
    const s = scoped(req);
    requireAdmin(s);
    const key = (req.params as { key: string }).key;
    const item = parseBody(specItemBody, req.body);
    if (!(key in item)) throw badRequest('Request body and URI mismatch');
    await setGroupSpecs(deps, s, typeId(req), item, 'merge');
    return item;
  });
  app.delete('/group_types/:id/group_specs/:key', async (req, reply) => {
    const s = scoped(req);
    requireAdmin(s);
    await setGroupSpecs(deps, s, typeId(req), {}, { delete: (req.params as { key: string }).key });
    return reply.code(202).send();
  });
}
