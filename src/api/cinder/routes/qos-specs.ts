// /qos-specs (Cinder's qos_specs_manage extension): admin only, as Cinder's
// default policy. Associations are managed with GETs carrying vol_type_id, as
// in Cinder's member actions.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  associateQos, createQosSpecs, deleteQosKeys, deleteQosSpecs, disassociateAllQos, disassociateQos, getQosSpecs,
  listQosAssociations, listQosSpecs, setQosKeys, type QosSpecs,
} from '../../../services/qos-specs.js';
import { badRequest } from '../../errors.js';
import { parseVersion } from '../../microversion.js';
import { parseBody, parseBool } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { qosSpecsDetailView, qosSpecsItemView } from '../views/admin-extras.js';

const specValue = z.string().max(255).nullable();

/** Cinder's create schema: a name plus any keys (validate_dictionary_string_length). */
const createSchema = z
  .object({
    qos_specs: z
      .object({
        name: z.string().refine((n) => n.trim().length > 0 && n.trim().length <= 255, "The 'name' can not be empty or longer than 255 characters"),
      })
      .catchall(specValue)
      .refine((o) => Object.keys(o).every((k) => k.length >= 1 && k.length <= 255), 'keys must be 1 to 255 characters'),
  })
  .strict();

/** parameter_types.extra_specs_with_null. */
const setSchema = z.object({ qos_specs: z.record(z.string().regex(/^[a-zA-Z0-9\-_:. /]{1,255}$/, 'invalid key'), specValue) }).strict();

const unsetSchema = z
  .object({
    keys: z
      .array(z.string().min(1).max(255))
      .refine((a) => new Set(a).size === a.length, 'keys must be unique'),
  })
  .strict();

const QOS_SORT_KEYS = ['id', 'name', 'consumer', 'created_at', 'updated_at'];
/** Cinder's qos index never refuses an unknown filter; parse it as before 3.34. */
const LENIENT = parseVersion('3.0')!;

function qosField(q: QosSpecs, key: string): unknown {
  switch (key) {
    case 'created_at':
      return q.createdAt;
    case 'updated_at':
      return q.updatedAt;
    default:
      return (q as unknown as Record<string, unknown>)[key];
  }
}

const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

function volTypeId(req: FastifyRequest): string {
  const v = (req.query as Record<string, string | string[] | undefined>)['vol_type_id'];
  const id = Array.isArray(v) ? v[v.length - 1] : v;
  if (!id) throw badRequest('Volume Type id must not be None.');
  return id;
}

export function registerQosSpecsRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store } = opts.deps;
  const db = store.db;

  app.get('/qos-specs', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: ['id', 'name', 'consumer'], sortKeys: QOS_SORT_KEYS, version: LENIENT, isAdmin: true });
    const rows = (await listQosSpecs(db)).filter((r) => matchesFilters(r, q.filters, qosField));
    const page = paginate(rows, q, qosField);
    const body: Record<string, unknown> = { qos_specs: page.items.map(qosSpecsItemView) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/qos-specs`, query, page.nextMarker);
    if (next) body['qos_specs_links'] = next;
    return body;
  });

  app.post('/qos-specs', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const { name, ...specs } = parseBody(createSchema, req.body).qos_specs;
    return qosSpecsDetailView(s, await createQosSpecs(store, name, specs));
  });

  app.get('/qos-specs/:id', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    return qosSpecsDetailView(s, await getQosSpecs(db, idOf(req)));
  });

  app.put('/qos-specs/:id', async (req) => {
    requireAdmin(scopeOf(req));
    const body = parseBody(setSchema, req.body);
    await setQosKeys(store, idOf(req), body.qos_specs);
    // Cinder echoes the request body.
    return body;
  });

  app.put('/qos-specs/:id/delete_keys', async (req, reply) => {
    requireAdmin(scopeOf(req));
    const { keys } = parseBody(unsetSchema, req.body);
    await deleteQosKeys(store, idOf(req), keys);
    return reply.code(202).send();
  });

  app.delete('/qos-specs/:id', async (req, reply) => {
    requireAdmin(scopeOf(req));
    const raw = (req.query as Record<string, string | undefined>)['force'];
    await deleteQosSpecs(store, idOf(req), raw === undefined ? false : parseBool(raw, 'force'));
    return reply.code(202).send();
  });

  app.get('/qos-specs/:id/associations', async (req) => {
    requireAdmin(scopeOf(req));
    return { qos_associations: await listQosAssociations(db, idOf(req)) };
  });

  app.get('/qos-specs/:id/associate', async (req, reply) => {
    requireAdmin(scopeOf(req));
    await associateQos(store, idOf(req), volTypeId(req));
    return reply.code(202).send();
  });

  app.get('/qos-specs/:id/disassociate', async (req, reply) => {
    requireAdmin(scopeOf(req));
    await disassociateQos(store, idOf(req), volTypeId(req));
    return reply.code(202).send();
  });

  app.get('/qos-specs/:id/disassociate_all', async (req, reply) => {
    requireAdmin(scopeOf(req));
    await disassociateAllQos(store, idOf(req));
    return reply.code(202).send();
  });
}
