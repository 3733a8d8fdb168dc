// /v3/{project_id}/snapshots: Cinder's snapshots controller, the snapshot
// metadata controller and the snapshot actions (admin reset/force-delete and
// nova's os-update_snapshot_status).
import { registerMetadataRoutes } from './metadata.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { SnapshotRow } from '../../../store/schema.js';
import {
  createSnapshot, deleteSnapshot, getSnapshot, resetSnapshotStatus, updateSnapshot, updateSnapshotStatus,
} from '../../../services/snapshots.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { descriptionField, metadataField, nameField, parseBody, parseBool, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin, requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { snapshotSummaryView, snapshotView } from '../views/snapshot.js';

const SNAPSHOT_FILTERS = ['name', 'status', 'volume_id', 'metadata', 'availability_zone'];
const SNAPSHOT_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'size', 'volume_id', 'project_id', 'user_id'];

/** Cinder's parameter_types.boolean: a JSON boolean or one of its boolean words. */
const boolish = z.union([z.boolean(), z.string()]);

const createSchema = z.object({
  snapshot: z
    .object({
      // Required but nullable: Cinder answers a null volume_id with 404, not 400.
      volume_id: uuidField.nullable(),
      force: boolish.optional(),
      name: nameField.optional(),
      display_name: nameField.optional(),
      description: descriptionField.optional(),
      metadata: metadataField.nullable().optional(),
    })
    .strict(),
}).strict();

const updateSchema = z.object({
  snapshot: z
    .object({
      name: nameField.optional(),
      display_name: nameField.optional(),
      description: descriptionField.optional(),
      display_description: descriptionField.optional(),
    })
    .strict()
    .refine((v) => Object.keys(v).length > 0, 'at least one of name or description is required'),
}).strict();


const resetStatusBody = z.object({ 'os-reset_status': z.object({ status: z.string().min(1) }).strict() }).strict();
const forceDeleteBody = z.object({ 'os-force_delete': z.record(z.string(), z.unknown()).nullable() }).strict();
const updateStatusBody = z.object({
  'os-update_snapshot_status': z.object({ status: z.string(), progress: z.string().nullable().optional() }).strict(),
}).strict();

/** The one key of an action body names the action, as in Cinder's wsgi dispatcher. */
export function actionName(body: unknown): string {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('Invalid input received: request body must be a JSON object.');
  }
  const keys = Object.keys(body);
  if (keys.length !== 1) throw badRequest('Malformed request body');
  return keys[0]!;
}

export function registerSnapshotRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const snapId = (req: FastifyRequest) => (req.params as { id: string }).id;

  const field = (row: SnapshotRow, key: string): unknown => {
    if (key === 'metadata') return JSON.parse(row.metadata) as Record<string, string>;
    // Snapshots live in their volume's zone, and there is one zone per deployment.
    if (key === 'availability_zone') return deps.config.availabilityZone;
    return (row as unknown as Record<string, unknown>)[key];
  };

  const list = async (req: FastifyRequest, detail: boolean) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: SNAPSHOT_FILTERS, sortKeys: SNAPSHOT_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const filters = { ...q.filters };
    // The metadata filter exists from 3.22; before, Cinder drops it silently.
    if (!atLeast(s.version, '3.22')) delete filters['metadata'];
    let sel = db.selectFrom('snapshots').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    // Cinder looks the marker up by id and answers an unknown one with 404.
    if (q.marker !== undefined && !rows.some((r) => r.id === q.marker)) throw notFound(`Snapshot ${q.marker} could not be found.`);
    const page = paginate(rows.filter((r) => matchesFilters(r, filters, field)), q, field);
    const body: Record<string, unknown> = {
      snapshots: page.items.map((r) => (detail ? snapshotView(s, r, { extended: true }) : snapshotSummaryView(r))),
    };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/snapshots${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['snapshots_links'] = next;
    if (q.withCount) body['count'] = page.count;
    return body;
  };

  app.get('/snapshots', (req) => list(req, false));
  app.get('/snapshots/detail', (req) => list(req, true));

  app.post('/snapshots', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(createSchema, req.body).snapshot;
    const row = await createSnapshot(deps, s, {
      volumeId: body.volume_id,
      force: body.force === undefined ? false : parseBool(body.force, 'force'),
      name: body.name !== undefined ? body.name : (body.display_name ?? null),
      description: body.description ?? null,
      metadata: body.metadata ?? {},
    });
    return reply.code(202).send({ snapshot: snapshotView(s, row, { extended: false }) });
  });

  app.get('/snapshots/:id', async (req) => {
    const s = scopeOf(req);
    return { snapshot: snapshotView(s, await getSnapshot(db, s, snapId(req)), { extended: true }) };
  });

  app.put('/snapshots/:id', async (req) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(updateSchema, req.body).snapshot;
    const row = await updateSnapshot(deps, s, snapId(req), {
      name: body.name !== undefined ? body.name : body.display_name,
      description: body.description !== undefined ? body.description : body.display_description,
    });
    return { snapshot: snapshotView(s, row, { extended: false }) };
  });

  app.delete('/snapshots/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    await deleteSnapshot(deps, s, snapId(req), false);
    return reply.code(202).send();
  });

  app.post('/snapshots/:id/action', async (req, reply) => {
    const s = scopeOf(req);
    const action = actionName(req.body);
    const id = snapId(req);
    switch (action) {
      case 'os-reset_status': {
        const { status } = parseBody(resetStatusBody, req.body)['os-reset_status'];
        // Cinder finds the snapshot (404 across projects) before it authorizes (403).
        await getSnapshot(db, s, id);
        requireAdmin(s);
        await resetSnapshotStatus(deps, s, id, status);
        break;
      }
      case 'os-force_delete':
        parseBody(forceDeleteBody, req.body);
        await getSnapshot(db, s, id);
        requireAdmin(s);
        await deleteSnapshot(deps, s, id, true);
        break;
      case 'os-update_snapshot_status': {
        const b = parseBody(updateStatusBody, req.body)['os-update_snapshot_status'];
        await getSnapshot(db, s, id);
        requireWriter(s);
        await updateSnapshotStatus(deps, s, id, b.status, b.progress ?? undefined);
        break;
      }
      default:
        throw badRequest(`There is no such action: ${action}`);
    }
    return reply.code(202).send();
  });

  registerMetadataRoutes(app, deps, { collection: 'snapshots', label: 'Snapshot', load: (ex, s, id) => getSnapshot(ex, s, id) });
}
