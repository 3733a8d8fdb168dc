// /types: volume type listing for everyone, management for admins (Cinder's
// v3/types.py and contrib/types_manage.py).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { VolumeTypeRow } from '../../../store/schema.js';
import { createType, deleteType, extraSpecsOf, getDefaultType, getVisibleType, listTypes, updateType, USER_VISIBLE_EXTRA_SPECS } from '../../../services/type-admin.js';
import { badRequest } from '../../errors.js';
import { descriptionField, parseBody } from '../../validate.js';
import { nextLink, paginate, parseListQuery, parseMetadataFilter } from '../listing.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { createdVolumeTypeView, updatedVolumeTypeView, volumeTypeView } from '../views/volume-type.js';

const TRUE_STRINGS = ['True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't'] as const;
const FALSE_STRINGS = ['False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f'] as const;

/** Cinder's parameter_types.boolean: a JSON boolean or one of a fixed set of strings. */
export const cinderBoolean = z
  .union([z.boolean(), z.enum([...TRUE_STRINGS, ...FALSE_STRINGS])])
  .transform((v) => (typeof v === 'boolean' ? v : (TRUE_STRINGS as readonly string[]).includes(v)));

/** Keys as Cinder's extra_specs schema allows them on type create (spaces and '/' included). */
export const typeCreateSpecs = z.record(
  z.string().regex(/^[a-zA-Z0-9\-_:. /]{1,255}$/, 'invalid extra spec key'),
  z.string().max(255),
);

const createSchema = z
  .object({
    volume_type: z
      .object({
        name: z.string().min(1).max(255),
        description: descriptionField.optional(),
        extra_specs: typeCreateSpecs.optional(),
        'os-volume-type-access:is_public': cinderBoolean.optional(),
      })
      .strict(),
  })
  .strict();

const updateSchema = z
  .object({
    volume_type: z
      .object({
        name: z.string().min(1).max(255).nullable().optional(),
        description: descriptionField.optional(),
        is_public: cinderBoolean.nullable().optional(),
      })
      .strict(),
  })
  .strict();

const TYPE_SORT_KEYS = ['id', 'name', 'description', 'is_public', 'created_at', 'updated_at'];

function typeField(row: VolumeTypeRow, key: string): unknown {
  if (key === 'is_public') return row.is_public;
  return (row as unknown as Record<string, unknown>)[key];
}

/** Cinder's _parse_is_public: absent = public only, "none" = all, else a strict boolean. */
function parseIsPublic(value: string | undefined): boolean | null {
  if (value === undefined) return true;
  const v = value.trim().toLowerCase();
  if (v === 'none') return null;
  if (['true', 't', 'yes', 'y', 'on', '1'].includes(v)) return true;
  if (['false', 'f', 'no', 'n', 'off', '0'].includes(v)) return false;
  throw badRequest(`Invalid is_public filter [${value}]`);
}

function matchesSpecs(row: VolumeTypeRow, wanted: Record<string, string>): boolean {
  const specs = extraSpecsOf(row);
  for (const [k, v] of Object.entries(wanted)) {
    const have = specs[k];
    if (have === undefined) return false;
    // The AZ list is stored as "az1, az2", so Cinder matches it with LIKE.
    if (k === 'RESKEY:availability_zones' ? !have.includes(v) : have !== v) return false;
  }
  return true;
}

const typeIdOf = (req: FastifyRequest) => (req.params as { id: string }).id;

export function registerVolumeTypeRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store } = opts.deps;
  const db = store.db;

  app.get('/types', async (req) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: ['is_public', 'extra_specs'], sortKeys: TYPE_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    // Only admins may look beyond public (and shared) types.
    const isPublic = s.isAdmin ? parseIsPublic(q.filters['is_public']) : true;
    let rows = await listTypes(db, s, isPublic);
    const specFilter = q.filters['extra_specs'];
    if (specFilter !== undefined) {
      const wanted = parseMetadataFilter(specFilter);
      // Filtering on a spec the caller may not read would leak it; Cinder answers "nothing".
      if (!s.isAdmin && Object.keys(wanted).some((k) => !USER_VISIBLE_EXTRA_SPECS.includes(k))) rows = [];
      rows = rows.filter((r) => matchesSpecs(r, wanted));
    }
    const page = paginate(rows, q, typeField);
    const body: Record<string, unknown> = { volume_types: page.items.map((r) => volumeTypeView(s, r)) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/types`, query, page.nextMarker);
    if (next) body['volume_type_links'] = next;
    return body;
  });

  app.get('/types/:id', async (req) => {
    const s = scopeOf(req);
    const id = typeIdOf(req);
    const row = id === 'default' ? await getDefaultType(db) : await getVisibleType(db, s, id);
    return { volume_type: volumeTypeView(s, row) };
  });

  app.post('/types', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const body = parseBody(createSchema, req.body).volume_type;
    const row = await createType(store, {
      name: body.name,
      description: body.description ?? null,
      isPublic: body['os-volume-type-access:is_public'] ?? true,
      extraSpecs: body.extra_specs ?? {},
    });
    return { volume_type: createdVolumeTypeView(row) };
  });

  app.put('/types/:id', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const body = parseBody(updateSchema, req.body).volume_type;
    const row = await updateType(store, typeIdOf(req), { name: body.name, description: body.description, isPublic: body.is_public });
    return { volume_type: updatedVolumeTypeView(row) };
  });

  app.delete('/types/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireAdmin(s);
    await deleteType(store, typeIdOf(req));
    return reply.code(202).send();
  });
}
