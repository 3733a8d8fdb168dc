// /v3/{project_id}/groups (3.13+): Cinder's generic volume groups controller,
// with create-from-src (3.14) and reset_status (3.20).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  createGroup, createGroupFromSource, deleteGroup, getGroup, memberVolumeIds, resetGroupStatus, updateGroup,
} from '../../../services/groups.js';
import type { GroupRow } from '../../../store/schema.js';
import { badRequest, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { descriptionField, nameField, parseBody, parseBool, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireAdmin, requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf, type CinderScope } from '../scope.js';
import { groupSummaryView, groupView } from '../views/group.js';
import { requireMicroversion } from './group-types.js';
import { actionName } from './snapshots.js';

const GROUP_FILTERS = ['name'];
const GROUP_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'availability_zone', 'project_id', 'user_id', 'group_type_id'];

const boolish = z.union([z.boolean(), z.string()]);

const createSchema = z.object({
  group: z
    .object({
      description: descriptionField.optional(),
      group_type: z.string().max(255).refine((t) => t.trim().length > 0, 'group_type can not be empty'),
      name: nameField.optional(),
      volume_types: z
        .array(z.string().max(255))
        .min(1)
        .refine((a) => new Set(a).size === a.length, 'volume_types must be unique'),
      availability_zone: z.string().max(255).nullable().optional(),
    })
    .strict(),
}).strict();

const fromSrcSchema = z.object({
  'create-from-src': z
    .object({
      description: descriptionField.optional(),
      name: nameField.optional(),
      source_group_id: uuidField.optional(),
      group_snapshot_id: uuidField.optional(),
    })
    .strict()
    .refine((b) => (b.source_group_id === undefined) !== (b.group_snapshot_id === undefined), 'exactly one of group_snapshot_id or source_group_id is required'),
}).strict();

const updateSchema = z.object({
  group: z
    .object({
      description: descriptionField.optional(),
      name: nameField.optional(),
      // Cinder types these like descriptions: comma-separated ids, at most 255 characters.
      add_volumes: descriptionField.optional(),
      remove_volumes: descriptionField.optional(),
    })
    .strict()
    .refine((b) => Object.keys(b).length > 0, 'at least one of name, description, add_volumes or remove_volumes is required'),
}).strict();

const deleteBody = z.object({ delete: z.object({ 'delete-volumes': boolish.optional() }).strict() }).strict();
const resetBody = z.object({ reset_status: z.object({ status: z.string() }).strict() }).strict();

const REPLICATION_ACTIONS = ['enable_replication', 'disable_replication', 'failover_replication', 'list_replication_targets'];

export function registerGroupRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const groupId = (req: FastifyRequest) => (req.params as { id: string }).id;
  const scoped = (req: FastifyRequest, min = '3.13') => {
    const s = scopeOf(req);
    requireMicroversion(s, min);
    return s;
  };
  const wantsVolumes = (s: CinderScope, query: Record<string, string>) =>
    atLeast(s.version, '3.25') && query['list_volume'] !== undefined && parseBool(query['list_volume'], 'list_volume');

  const render = async (s: CinderScope, rows: GroupRow[], query: Record<string, string>) => {
    const vols = wantsVolumes(s, query) ? await memberVolumeIds(db, rows.map((r) => r.id)) : undefined;
    return rows.map((r) => groupView(s, r, vols?.get(r.id)));
  };

  const list = async (req: FastifyRequest, detail: boolean) => {
    const s = scoped(req);
    const query = req.query as Record<string, string>;
    const { list_volume: _listVolume, ...rest } = query;
    const q = parseListQuery(rest, { allowedFilters: GROUP_FILTERS, sortKeys: GROUP_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    let sel = db.selectFrom('groups').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    const rows = await sel.execute();
    if (q.marker !== undefined && !rows.some((r) => r.id === q.marker)) throw notFound(`Group ${q.marker} could not be found.`);
    const field = (r: GroupRow, k: string) => (r as unknown as Record<string, unknown>)[k];
    const page = paginate(rows.filter((r) => matchesFilters(r, q.filters, field)), q, field);
    const body: Record<string, unknown> = { groups: detail ? await render(s, page.items, query) : page.items.map(groupSummaryView) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/groups${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['group_links'] = next;
    return body;
  };

  app.get('/groups', (req) => list(req, false));
  app.get('/groups/detail', (req) => list(req, true));

  app.get('/groups/:id', async (req) => {
    const s = scoped(req);
    const [view] = await render(s, [await getGroup(db, s, groupId(req))], req.query as Record<string, string>);
    return { group: view };
  });

  app.post('/groups', async (req, reply) => {
    const s = scoped(req);
    requireWriter(s);
    const body = parseBody(createSchema, req.body).group;
    const row = await createGroup(deps, s, {
      groupType: body.group_type.trim(),
      volumeTypes: body.volume_types,
      name: body.name?.trim() ?? null,
      description: body.description?.trim() ?? null,
      availabilityZone: body.availability_zone ?? null,
    });
    return reply.code(202).send({ group: groupSummaryView(row) });
  });

  app.post('/groups/action', async (req, reply) => {
    const s = scoped(req, '3.14');
    requireWriter(s);
    const action = actionName(req.body);
    if (action !== 'create-from-src') throw badRequest(`There is no such action: ${action}`);
    const body = parseBody(fromSrcSchema, req.body)['create-from-src'];
    const row = await createGroupFromSource(deps, s, {
      groupSnapshotId: body.group_snapshot_id,
      sourceGroupId: body.source_group_id,
      name: body.name?.trim() ?? null,
      description: body.description?.trim() ?? null,
    });
    return reply.code(202).send({ group: groupSummaryView(row) });
  });

  app.put('/groups/:id', async (req, reply) => {
    const s = scoped(req);
    requireWriter(s);
    const body = parseBody(updateSchema, req.body).group;
    await updateGroup(deps, s, groupId(req), {
      name: body.name,
      description: body.description,
      addVolumes: body.add_volumes,
      removeVolumes: body.remove_volumes,
    });
    return reply.code(202).send();
  });

  app.post('/groups/:id/action', async (req, reply) => {
    const s = scoped(req);
    const id = groupId(req);
    const action = actionName(req.body);
    if (action === 'delete') {
      const b = parseBody(deleteBody, req.body).delete;
      await getGroup(db, s, id);
      requireWriter(s);
      await deleteGroup(deps, s, id, b['delete-volumes'] === undefined ? false : parseBool(b['delete-volumes'], 'delete-volumes'));
    } else if (action === 'reset_status') {
      requireMicroversion(s, '3.20');
      const { status } = parseBody(resetBody, req.body).reset_status;
      // Cinder finds the group (404 across projects) before it authorizes (403).
      await getGroup(db, s, id);
      requireAdmin(s);
      await resetGroupStatus(deps, s, id, status);
    } else if (REPLICATION_ACTIONS.includes(action)) {
      requireMicroversion(s, '3.38');
      await getGroup(db, s, id);
      requireWriter(s);
      // No group type here enables replication, so every group answers as Cinder does for one without it.
      throw badRequest(`Invalid group type: Group ${id} is not a replication group type.`);
    } else {
      throw badRequest(`There is no such action: ${action}`);
    }
    return reply.code(202).send();
  });
}
