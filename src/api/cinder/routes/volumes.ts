import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Executor } from '../../../store/db.js';
import type { VolumeRow } from '../../../store/schema.js';
import { createVolume, deleteVolume, getVolume, updateVolume } from '../../../services/volumes.js';
import { registerMetadataRoutes } from './metadata.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { descriptionField, metadataField, nameField, parseBody, parseBool, sizeGiB, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf, type CinderScope } from '../scope.js';
import { volumeSummaryView, volumeView } from '../views/volume.js';

const VOLUME_FILTERS = ['name', 'status', 'metadata', 'bootable', 'migration_status', 'availability_zone', 'group_id', 'size', 'volume_type', 'image_metadata', 'created_at', 'updated_at', 'id', 'user_id', 'project_id', 'snapshot_id', 'source_volid', 'host'];
const VOLUME_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'size', 'status', 'availability_zone', 'bootable', 'volume_type', 'host', 'project_id', 'user_id'];

const createSchema = z.object({
  volume: z
    .object({
      size: sizeGiB.nullable().optional(),
      name: nameField.optional(),
      display_name: nameField.optional(),
      description: descriptionField.optional(),
      display_description: descriptionField.optional(),
      volume_type: z.string().nullable().optional(),
      availability_zone: z.string().nullable().optional(),
      snapshot_id: uuidField.nullable().optional(),
      source_volid: uuidField.nullable().optional(),
      group_id: uuidField.nullable().optional(),
      consistencygroup_id: uuidField.nullable().optional(),
      imageRef: z.string().nullable().optional(),
      backup_id: z.string().nullable().optional(),
      metadata: metadataField.nullable().optional(),
      multiattach: z.union([z.boolean(), z.string()]).optional(),
      source_replica: z.unknown().optional(),
      scheduler_hints: z.unknown().optional(),
    })
    .strict(),
  'OS-SCH-HNT:scheduler_hints': z.unknown().optional(),
}).strict();

const updateSchema = z.object({
  volume: z
    .object({
      name: nameField.optional(),
      display_name: nameField.optional(),
      description: descriptionField.optional(),
      display_description: descriptionField.optional(),
      metadata: metadataField.optional(),
    })
    .strict()
    .refine((v) => Object.keys(v).length > 0, 'at least one of name, description or metadata is required'),
}).strict();


export async function renderVolumes(ex: Executor, s: CinderScope, rows: VolumeRow[], bare = false): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const attachments = await ex.selectFrom('attachments').selectAll().where('volume_id', 'in', ids).execute();
  const types = await ex.selectFrom('volume_types').select(['id', 'name']).execute();
  const typeName = new Map(types.map((t) => [t.id, t.name]));
  return rows.map((row) =>
    volumeView(s, row, { typeName: typeName.get(row.volume_type_id) ?? null, attachments: attachments.filter((a) => a.volume_id === row.id), bare }),
  );
}

function volumeField(typeNames: Map<string, string>) {
  return (row: VolumeRow, key: string): unknown => {
    switch (key) {
      case 'metadata':
        return JSON.parse(row.metadata) as Record<string, string>;
      case 'bootable':
        return row.bootable === 1 ? 'true' : 'false';
      case 'volume_type':
        return typeNames.get(row.volume_type_id) ?? row.volume_type_id;
      default:
        return (row as unknown as Record<string, unknown>)[key];
    }
  };
}

export function registerVolumeRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;

  const list = async (req: FastifyRequest, detail: boolean) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: VOLUME_FILTERS, sortKeys: VOLUME_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    let sel = db.selectFrom('volumes').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    const types = await db.selectFrom('volume_types').select(['id', 'name']).execute();
    const field = volumeField(new Map(types.map((t) => [t.id, t.name])));
    const filters = { ...q.filters };
    if (filters['bootable'] !== undefined) filters['bootable'] = parseBool(filters['bootable'], 'bootable') ? 'true' : 'false';
    const page = paginate(rows.filter((r) => matchesFilters(r, filters, field)), q, field);
    const body: Record<string, unknown> = {
      volumes: detail ? await renderVolumes(db, s, page.items) : page.items.map((r) => volumeSummaryView(s, r)),
    };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/volumes${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['volumes_links'] = next;
    if (q.withCount) body['count'] = page.count;
    return body;
  };

  app.get('/volumes', (req) => list(req, false));
  app.get('/volumes/detail', (req) => list(req, true));

  app.get('/volumes/summary', async (req) => {
    const s = scopeOf(req);
    if (!atLeast(s.version, '3.12')) throw notFound('The resource could not be found.');
    const query = req.query as Record<string, string>;
    const allTenants = query['all_tenants'] !== undefined && s.isAdmin && parseBool(query['all_tenants'], 'all_tenants');
    let sel = db.selectFrom('volumes').select(['size', 'metadata']);
    if (!allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    const summary: Record<string, unknown> = { total_size: rows.reduce((n, r) => n + r.size, 0), total_count: rows.length };
    if (atLeast(s.version, '3.36')) {
      const meta: Record<string, string[]> = {};
      for (const r of rows) for (const [k, v] of Object.entries(JSON.parse(r.metadata) as Record<string, string>)) (meta[k] ??= []).includes(v) || meta[k].push(v);
      summary['metadata'] = meta;
    }
    return { 'volume-summary': summary };
  });

  app.post('/volumes', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(createSchema, req.body).volume;
    if (body.backup_id) throw badRequest('Invalid input received: restoring from a backup is done through the backups API.');
    const row = await createVolume(deps, s, {
      size: body.size ?? undefined,
      name: body.name ?? body.display_name ?? null,
      description: body.description ?? body.display_description ?? null,
      volumeType: body.volume_type ?? null,
      availabilityZone: body.availability_zone ?? null,
      snapshotId: body.snapshot_id ?? null,
      sourceVolid: body.source_volid ?? null,
      groupId: body.group_id ?? null,
      metadata: body.metadata ?? {},
      multiattach: body.multiattach === undefined ? false : parseBool(body.multiattach, 'multiattach'),
      imageRef: body.imageRef ?? null,
    });
    const [view] = await renderVolumes(db, s, [row], true);
    return reply.code(202).send({ volume: view });
  });

  app.get('/volumes/:id', async (req) => {
    const s = scopeOf(req);
    const row = await getVolume(db, s, (req.params as { id: string }).id);
    const [view] = await renderVolumes(db, s, [row]);
    return { volume: view };
  });

  app.put('/volumes/:id', async (req) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(updateSchema, req.body).volume;
    const row = await updateVolume(deps, s, (req.params as { id: string }).id, {
      name: body.name !== undefined ? body.name : body.display_name,
      description: body.description !== undefined ? body.description : body.display_description,
      metadata: body.metadata,
    });
    const [view] = await renderVolumes(db, s, [row], true);
    return { volume: view };
  });

  app.delete('/volumes/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const query = req.query as Record<string, string>;
    await deleteVolume(deps, s, (req.params as { id: string }).id, {
      cascade: query['cascade'] !== undefined && parseBool(query['cascade'], 'cascade'),
      force: query['force'] !== undefined && parseBool(query['force'], 'force'),
    });
    return reply.code(202).send();
  });

  registerMetadataRoutes(app, deps, { collection: 'volumes', label: 'Volume', load: (ex, s, id) => getVolume(ex, s, id) });
}
