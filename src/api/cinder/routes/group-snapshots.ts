// /v3/{project_id}/group_snapshots (3.14+): Cinder's group snapshots
// controller, with reset_status (3.19).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  createGroupSnapshot, deleteGroupSnapshot, getGroupSnapshot, resetGroupSnapshotStatus,
} from '../../../services/group-snapshots.js';
import type { GroupSnapshotRow } from '../../../store/schema.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { descriptionField, nameField, parseBody, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin, requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { groupSnapshotSummaryView, groupSnapshotView } from '../views/group-snapshot.js';
import { requireMicroversion } from './group-types.js';
import { actionName } from './snapshots.js';

const GROUP_SNAPSHOT_FILTERS = ['name', 'status', 'group_id'];
const GROUP_SNAPSHOT_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'group_id', 'project_id', 'user_id'];

const createSchema = z.object({
  group_snapshot: z
    .object({ group_id: uuidField, name: nameField.optional(), description: descriptionField.optional() })
    .strict(),
}).strict();

const resetBody = z.object({ reset_status: z.object({ status: z.string() }).strict() }).strict();

export function registerGroupSnapshotRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const gsId = (req: FastifyRequest) => (req.params as { id: string }).id;
  const scoped = (req: FastifyRequest) => {
    const s = scopeOf(req);
    requireMicroversion(s, '3.14');
    return s;
  };

  const list = async (req: FastifyRequest, detail: boolean) => {
    const s = scoped(req);
    // Before 3.29 Cinder takes no filters, sorting or paging for group snapshots at all.
    const query = atLeast(s.version, '3.29') ? (req.query as Record<string, string>) : {};
    const q = parseListQuery(query, { allowedFilters: GROUP_SNAPSHOT_FILTERS, sortKeys: GROUP_SNAPSHOT_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    let sel = db.selectFrom('group_snapshots').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    if (q.marker !== undefined && !rows.some((r) => r.id === q.marker)) throw notFound(`GroupSnapshot ${q.marker} could not be found.`);
    const field = (r: GroupSnapshotRow, k: string) => (r as unknown as Record<string, unknown>)[k];
    const page = paginate(rows.filter((r) => matchesFilters(r, q.filters, field)), q, field);
    const body: Record<string, unknown> = {
      group_snapshots: page.items.map((r) => (detail ? groupSnapshotView(s, r) : groupSnapshotSummaryView(r, { withType: false }))),
    };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/group_snapshots${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['group_snapshot_links'] = next;
    return body;
  };

  app.get('/group_snapshots', (req) => list(req, false));
  app.get('/group_snapshots/detail', (req) => list(req, true));

  app.get('/group_snapshots/:id', async (req) => {
    const s = scoped(req);
    return { group_snapshot: groupSnapshotView(s, await getGroupSnapshot(db, s, gsId(req))) };
  });

  app.post('/group_snapshots', async (req, reply) => {
    const s = scoped(req);
    requireWriter(s);
    const body = parseBody(createSchema, req.body).group_snapshot;
    const row = await createGroupSnapshot(deps, s, { groupId: body.group_id, name: body.name ?? null, description: body.description ?? null });
    return reply.code(202).send({ group_snapshot: groupSnapshotSummaryView(row, { withType: true }) });
  });

  app.delete('/group_snapshots/:id', async (req, reply) => {
    const s = scoped(req);
    requireWriter(s);
    await deleteGroupSnapshot(deps, s, gsId(req));
    return reply.code(202).send();
  });

  app.post('/group_snapshots/:id/action', async (req, reply) => {
    const s = scoped(req);
    const id = gsId(req);
    const action = actionName(req.body);
    if (action !== 'reset_status') throw badRequest(`There is no such action: ${action}`);
    requireMicroversion(s, '3.19');
    const { status } = parseBody(resetBody, req.body).reset_status;
    // Cinder finds the group snapshot (404 across projects) before it authorizes (403).
    await getGroupSnapshot(db, s, id);
    requireAdmin(s);
    await resetGroupSnapshotStatus(deps, s, id, status);
    return reply.code(202).send();
  });
}
