// /v3/{project_id}/backups: Cinder's backups controller (contrib and v3), the
// backup admin actions (os-reset_status, os-force_delete), restore, export and
// import of records, and Bulwark's progress resource at
// /v3/{project_id}/bulwark-progress/backups/{id}.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BackupRow } from '../../../store/schema.js';
import { createBackup, deleteBackup, dependentCounts, getBackup, RESETTABLE_STATUSES, resetBackupStatus, updateBackup } from '../../../services/backups.js';
import { exportBackupRecord, importBackupRecord } from '../../../services/backup-records.js';
import { restoreBackup } from '../../../services/backup-restore.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast, type Microversion } from '../../microversion.js';
import { descriptionField, nameField, parseBody, parseBool, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin, requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { actionName } from './snapshots.js';
import { backupProgressView, backupSummaryView, backupView, restoreView } from '../views/backup.js';

/** resource_filters.json's "backup"; an admin may filter on any column. */
const BACKUP_FILTERS = ['name', 'status', 'volume_id'];
const ADMIN_FILTERS = [...BACKUP_FILTERS, 'id', 'project_id', 'user_id', 'snapshot_id', 'parent_id', 'availability_zone', 'container', 'host', 'size'];
const BACKUP_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'size', 'volume_id', 'project_id', 'user_id', 'availability_zone', 'container', 'data_timestamp', 'object_count'];

/** Cinder's parameter_types.boolean: a JSON boolean or one of its boolean words. */
const boolish = z.union([z.boolean(), z.string()]);
const containerField = z.string().max(255).nullable();
/** Cinder's extra_specs / metadata_allows_null: restricted keys, short string values. */
const backupMetadata = z.record(z.string().regex(/^[a-zA-Z0-9-_:. /]{1,255}$/, 'invalid metadata key'), z.string().max(255));

const createShape = {
  volume_id: uuidField,
  container: containerField.optional(),
  description: descriptionField.optional(),
  incremental: boolish.optional(),
  force: boolish.optional(),
  name: nameField.optional(),
  snapshot_id: uuidField.nullable().optional(),
};
const createSchemas = {
  base: z.object({ backup: z.object(createShape).strict() }).strict(),
  v343: z.object({ backup: z.object({ ...createShape, metadata: backupMetadata.nullable().optional() }).strict() }).strict(),
  v351: z.object({ backup: z.object({ ...createShape, metadata: backupMetadata.nullable().optional(), availability_zone: z.string().max(255).nullable().optional() }).strict() }).strict(),
};

const updateShape = { name: nameField.optional(), description: descriptionField.optional() };
const updateSchemas = {
  base: z.object({ backup: z.object(updateShape).strict().nullable() }).strict(),
  v343: z.object({ backup: z.object({ ...updateShape, metadata: backupMetadata.optional() }).strict().nullable() }).strict(),
};

const restoreSchema = z.object({
  restore: z.object({ name: nameField.optional(), volume_id: uuidField.nullable().optional() }).strict().nullable(),
}).strict();

const importSchema = z.object({
  'backup-record': z.object({ backup_service: z.string().max(255), backup_url: z.string().min(1) }).strict(),
}).strict();

const resetStatusBody = z.object({
  'os-reset_status': z.object({
    status: z.string().refine((s) => (RESETTABLE_STATUSES as readonly string[]).includes(s.toLowerCase()), `valid statuses are: ${RESETTABLE_STATUSES.join(', ')}`),
  }).strict(),
}).strict();
const forceDeleteBody = z.object({ 'os-force_delete': z.record(z.string(), z.unknown()).nullable() }).strict();

/** Cinder's clean_name_and_description: surrounding whitespace goes. */
const clean = (s: string | null | undefined): string | null | undefined => (typeof s === 'string' ? s.trim() : s);

function createSchemaFor(v: Microversion) {
  if (atLeast(v, '3.51')) return createSchemas.v351;
  return atLeast(v, '3.43') ? createSchemas.v343 : createSchemas.base;
}

function field(row: BackupRow, key: string): unknown {
  return (row as unknown as Record<string, unknown>)[key];
}

export function registerBackupRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const backupId = (req: FastifyRequest) => (req.params as { id: string }).id;

  const list = async (req: FastifyRequest, detail: boolean) => {
    const s = scopeOf(req);
    const query = req.query as Record<string, string>;
    const q = parseListQuery(query, { allowedFilters: s.isAdmin ? ADMIN_FILTERS : BACKUP_FILTERS, sortKeys: BACKUP_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    let sel = db.selectFrom('backups').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    const page = paginate(rows.filter((r) => matchesFilters(r, q.filters, field)), q, field);
    let items: Record<string, unknown>[];
    if (detail) {
      const counts = await dependentCounts(db, page.items.map((r) => r.id));
      items = page.items.map((r) => backupView(s, r, counts.get(r.id) ?? 0));
    } else {
      items = page.items.map((r) => backupSummaryView(s, r));
    }
    const body: Record<string, unknown> = { backups: items };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/backups${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['backups_links'] = next;
    if (q.withCount) body['count'] = page.count;
    return body;
  };

  app.get('/backups', (req) => list(req, false));
  app.get('/backups/detail', (req) => list(req, true));

  app.post('/backups', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    // Earlier microversions' bodies are the 3.51 body without its newer fields.
    const body: z.infer<typeof createSchemas.v351>['backup'] = parseBody(createSchemaFor(s.version), req.body).backup;
    const row = await createBackup(deps, s, {
      volumeId: body.volume_id,
      snapshotId: body.snapshot_id ?? null,
      name: clean(body.name) ?? null,
      description: clean(body.description) ?? null,
      container: body.container ?? null,
      incremental: body.incremental === undefined ? false : parseBool(body.incremental, 'incremental'),
      force: body.force === undefined ? false : parseBool(body.force, 'force'),
      metadata: body.metadata ?? {},
      availabilityZone: body.availability_zone ?? null,
    });
    return reply.code(202).send({ backup: backupSummaryView(s, row) });
  });

  app.get('/backups/:id', async (req) => {
    const s = scopeOf(req);
    const row = await getBackup(db, s, backupId(req));
    const counts = await dependentCounts(db, [row.id]);
    return { backup: backupView(s, row, counts.get(row.id) ?? 0) };
  });

  app.put('/backups/:id', async (req) => {
    const s = scopeOf(req);
    // Cinder's update exists from 3.9 on; before, the route is not there.
    if (!atLeast(s.version, '3.9')) throw notFound('The resource could not be found.');
    requireWriter(s);
    const body: NonNullable<z.infer<typeof updateSchemas.v343>['backup']> = parseBody(atLeast(s.version, '3.43') ? updateSchemas.v343 : updateSchemas.base, req.body).backup ?? {};
    const row = await updateBackup(deps, s, backupId(req), {
      name: clean(body.name),
      description: clean(body.description),
      metadata: body.metadata,
    });
    return { backup: backupSummaryView(s, row) };
  });

  app.delete('/backups/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const query = req.query as Record<string, string>;
    const force = query['force'] !== undefined && parseBool(query['force'], 'force');
    if (force) {
      await getBackup(db, s, backupId(req));
      requireAdmin(s);
    }
    await deleteBackup(deps, s, backupId(req), force);
    return reply.code(202).send();
  });

  app.post('/backups/:id/action', async (req, reply) => {
    const s = scopeOf(req);
    const action = actionName(req.body);
    const id = backupId(req);
    switch (action) {
      case 'os-reset_status': {
        const { status } = parseBody(resetStatusBody, req.body)['os-reset_status'];
        // Cinder finds the backup (404 across projects) before it authorizes (403).
        await getBackup(db, s, id);
        requireAdmin(s);
        await resetBackupStatus(deps, s, id, status);
        break;
      }
      case 'os-force_delete':
        parseBody(forceDeleteBody, req.body);
        await getBackup(db, s, id);
        requireAdmin(s);
        await deleteBackup(deps, s, id, true);
        break;
      default:
        throw badRequest(`There is no such action: ${action}`);
    }
    return reply.code(202).send();
  });

  app.post('/backups/:id/restore', async (req, reply) => {
    const s = scopeOf(req);
    requireWriter(s);
    const body = parseBody(restoreSchema, req.body).restore ?? {};
    const result = await restoreBackup(deps, s, backupId(req), { volumeId: body.volume_id ?? null, name: clean(body.name) ?? null });
    return reply.code(202).send({ restore: restoreView(result) });
  });

  app.get('/backups/:id/export_record', async (req) => {
    const s = scopeOf(req);
    const record = await exportBackupRecord(deps, s, backupId(req), () => requireAdmin(s));
    return { 'backup-record': { backup_service: record.backupService, backup_url: record.backupUrl } };
  });

  app.post('/backups/import_record', async (req, reply) => {
    const s = scopeOf(req);
    const body = parseBody(importSchema, req.body)['backup-record'];
    requireAdmin(s);
    const row = await importBackupRecord(deps, s, body.backup_service, body.backup_url);
    return reply.code(201).send({ backup: backupSummaryView(s, row) });
  });

  app.get('/bulwark-progress/backups/:id', async (req) => {
    const s = scopeOf(req);
    return { progress: backupProgressView(await getBackup(db, s, backupId(req))) };
  });
}
