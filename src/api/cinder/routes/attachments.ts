// Cinder's attachments API (3.27+).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { completeAttachment, connectAttachment, deleteAttachment, getAttachment, reserveAttachment, type Connector } from '../../../services/attachments.js';
import type { AttachmentRow } from '../../../store/schema.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { parseBody, uuidField } from '../../validate.js';
import { paginate, parseListQuery, matchesFilters } from '../listing.js';
import { requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { cinderTime, parseJson } from '../views/common.js';

const createSchema = z.object({
  attachment: z.object({
    volume_uuid: uuidField,
    instance_uuid: uuidField.nullable().optional(),
    connector: z.record(z.string(), z.unknown()).nullable().optional(),
    mode: z.enum(['rw', 'ro']).optional(),
  }).strict(),
}).strict();
const updateSchema = z.object({ attachment: z.object({ connector: z.record(z.string(), z.unknown()) }).strict() }).strict();

function summary(a: AttachmentRow) {
  return { id: a.id, status: a.status, instance: a.instance_uuid, volume_id: a.volume_id };
}

function detail(a: AttachmentRow) {
  return {
    ...summary(a),
    attached_at: cinderTime(a.attach_time) ?? '',
    detached_at: cinderTime(a.detach_time) ?? '',
    attach_mode: a.attach_mode,
    connection_info: parseJson<Record<string, unknown>>(a.connection_info, {}),
  };
}

export function registerAttachmentRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const gate = (version: Parameters<typeof atLeast>[0]) => {
    if (!atLeast(version, '3.27')) throw notFound('The resource could not be found.');
  };

  const list = async (req: import('fastify').FastifyRequest, isDetail: boolean) => {
    const s = scopeOf(req);
    gate(s.version);
    const q = parseListQuery(req.query as Record<string, string>, { allowedFilters: ['volume_id', 'instance_id', 'status', 'attach_status'], sortKeys: ['created_at', 'id', 'status'], version: s.version, isAdmin: s.isAdmin });
    let sel = db.selectFrom('attachments').selectAll().where('status', '!=', 'detached');
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    const field = (r: AttachmentRow, k: string) => (k === 'instance_id' ? r.instance_uuid : k === 'attach_status' ? r.status : (r as unknown as Record<string, unknown>)[k]);
    const page = paginate(rows.filter((r) => matchesFilters(r, q.filters, field)), q, field);
    return { attachments: page.items.map(isDetail ? detail : summary) };
  };
  app.get('/attachments', (req) => list(req, false));
  app.get('/attachments/detail', (req) => list(req, true));

  app.get('/attachments/:id', async (req) => {
    const s = scopeOf(req);
    gate(s.version);
    return { attachment: detail(await getAttachment(db, s, (req.params as { id: string }).id)) };
  });

  app.post('/attachments', async (req) => {
    const s = scopeOf(req);
    gate(s.version);
    requireWriter(s);
    const b = parseBody(createSchema, req.body).attachment;
    if (b.mode && !atLeast(s.version, '3.54')) throw badRequest('Invalid input received: mode needs microversion 3.54 or later.');
    const att = await reserveAttachment(deps, s, b.volume_uuid, { instanceUuid: b.instance_uuid ?? null, mode: b.mode ?? 'rw', legacy: false });
    if (b.connector) {
      try {
        await connectAttachment(deps, s, att.id, b.connector as Connector);
      } catch (err) {
        // Leave nothing half-made: an attachment whose export failed is removed.
        await deleteAttachment(deps, s, att.id).catch(() => undefined);
        throw err;
      }
    }
    return { attachment: detail(await getAttachment(db, s, att.id)) };
  });

  app.put('/attachments/:id', async (req) => {
    const s = scopeOf(req);
    gate(s.version);
    requireWriter(s);
    const id = (req.params as { id: string }).id;
    const b = parseBody(updateSchema, req.body).attachment;
    await connectAttachment(deps, s, id, b.connector as Connector);
    return { attachment: detail(await getAttachment(db, s, id)) };
  });

  app.post('/attachments/:id/action', async (req, reply) => {
    const s = scopeOf(req);
    if (!atLeast(s.version, '3.44')) throw notFound('The resource could not be found.');
    requireWriter(s);
    const body = req.body as Record<string, unknown> | null;
    if (!body || typeof body !== 'object' || !('os-complete' in body)) throw badRequest('Invalid input received: the only attachment action is os-complete.');
    await completeAttachment(deps, s, (req.params as { id: string }).id);
    return reply.code(204).send();
  });

  app.delete('/attachments/:id', async (req) => {
    const s = scopeOf(req);
    gate(s.version);
    requireWriter(s);
    const id = (req.params as { id: string }).id;
    const att = await getAttachment(db, s, id);
    await deleteAttachment(deps, s, id);
    const rest = await db.selectFrom('attachments').selectAll().where('volume_id', '=', att.volume_id).where('status', '!=', 'detached').execute();
    return { attachments: rest.map(summary) };
  });
}
