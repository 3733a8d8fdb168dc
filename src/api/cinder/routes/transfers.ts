// /v3/{project_id}/os-volume-transfer and /v3/{project_id}/volume-transfers:
// Cinder's contrib transfer controller and its v3 successor. Both paths serve
// the same verbs at every microversion, as Cinder's router does; the v3 one
// also takes no_snapshots (3.55) and sorting and markers (3.59).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { TransferRow } from '../../../store/schema.js';
import { acceptTransfer, createTransfer, deleteTransfer, getTransfer } from '../../../services/transfers.js';
import { atLeast } from '../../microversion.js';
import { parseBody, parseBool, uuidField } from '../../validate.js';
import { matchesFilters, nextLink, paginate, parseListQuery, type ListQuery } from '../listing.js';
import { requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { transferSummaryView, transferView } from '../views/transfer.js';

const LEGACY = '/os-volume-transfer';
const V3 = '/volume-transfers';

/** Cinder's name_skip_leading_trailing_spaces: non-empty and at most 255 once stripped. */
const transferName = z
  .string()
  .transform((s) => s.trim())
  .refine((s) => s.length > 0, "The 'name' can not be empty.")
  .refine((s) => s.length <= 255, "The 'name' can not be greater than 255 characters.")
  .nullable();

const createSchema = z.object({
  transfer: z.object({ volume_id: uuidField, name: transferName.optional() }).strict(),
}).strict();

const createSchemaV355 = z.object({
  transfer: z.object({ volume_id: uuidField, name: transferName.optional(), no_snapshots: z.union([z.boolean(), z.string()]).optional() }).strict(),
}).strict();

const acceptSchema = z.object({
  accept: z.object({ auth_key: z.union([z.string(), z.number().int()]) }).strict(),
}).strict();

/** Columns a transfer list may be filtered on; 'name' is Cinder's display_name. */
const FILTER_KEYS = ['id', 'volume_id', 'name', 'source_project_id', 'no_snapshots'];
const SORT_KEYS = ['created_at', 'id', 'name', 'volume_id'];
const PAGING = ['limit', 'offset', 'all_tenants', 'project_id'];
const PAGING_359 = [...PAGING, 'marker', 'sort', 'sort_key', 'sort_dir'];
const LEGACY_ORDER: ListQuery['sort'] = [{ key: 'created_at', dir: 'asc' }, { key: 'id', dir: 'asc' }];

function field(row: TransferRow, key: string): unknown {
  switch (key) {
    case 'source_project_id':
      return row.project_id;
    case 'no_snapshots':
      return row.no_snapshots === 1 ? 'true' : 'false';
    default:
      return (row as unknown as Record<string, unknown>)[key];
  }
}

export function registerTransferRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;
  const transferId = (req: FastifyRequest) => (req.params as { id: string }).id;

  const list = async (req: FastifyRequest, base: string, detail: boolean) => {
    const s = scopeOf(req);
    const raw = req.query as Record<string, string | string[] | undefined>;
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) if (v !== undefined) query[k] = Array.isArray(v) ? v[v.length - 1]! : v;
    const paged = base === V3 && atLeast(s.version, '3.59');
    const pagingKeys = paged ? PAGING_359 : PAGING;
    const paging = Object.fromEntries(Object.entries(query).filter(([k]) => pagingKeys.includes(k)));
    const q = parseListQuery(paging, { allowedFilters: [], sortKeys: SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const filters: Record<string, string> = { ...q.filters };
    let unknownFilter = false;
    for (const [k, v] of Object.entries(query)) {
      if (PAGING_359.includes(k)) continue;
      const key = k === 'display_name' ? 'name' : k;
      if (!FILTER_KEYS.includes(key)) unknownFilter = true;
      else filters[key] = key === 'no_snapshots' ? String(parseBool(v, k)) : v;
    }
    let sel = db.selectFrom('transfers').selectAll();
    if (!q.allTenants) sel = sel.where('project_id', '=', s.projectId);
    // Cinder answers a filter on a column transfers lack with an empty list, not a 400.
    const rows = unknownFilter ? [] : await sel.execute();
    const page = paginate(rows.filter((r) => matchesFilters(r, filters, field)), paged ? q : { ...q, sort: LEGACY_ORDER }, field);
    const body: Record<string, unknown> = {
      transfers: page.items.map((r) => (detail ? transferView(s, r) : transferSummaryView(s, r))),
    };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}${base}${detail ? '/detail' : ''}`, query, page.nextMarker);
    if (next) body['transfers_links'] = next;
    return body;
  };

  for (const base of [LEGACY, V3]) {
    app.get(base, (req) => list(req, base, false));
    app.get(`${base}/detail`, (req) => list(req, base, true));

    app.post(base, async (req, reply) => {
      const s = scopeOf(req);
      requireWriter(s);
      // The contrib controller never took no_snapshots; the v3 one does from 3.55.
      const v355 = base === V3 && atLeast(s.version, '3.55');
      const body = v355 ? parseBody(createSchemaV355, req.body).transfer : { ...parseBody(createSchema, req.body).transfer, no_snapshots: undefined };
      const { row, authKey } = await createTransfer(deps, s, {
        volumeId: body.volume_id,
        name: body.name ?? null,
        noSnapshots: body.no_snapshots === undefined ? false : parseBool(body.no_snapshots, 'no_snapshots'),
      });
      return reply.code(202).send({ transfer: transferView(s, row, authKey) });
    });

    app.get(`${base}/:id`, async (req) => {
      const s = scopeOf(req);
      return { transfer: transferView(s, await getTransfer(db, s, transferId(req))) };
    });

    app.delete(`${base}/:id`, async (req, reply) => {
      const s = scopeOf(req);
      requireWriter(s);
      await deleteTransfer(deps, s, transferId(req));
      return reply.code(202).send();
    });

    app.post(`${base}/:id/accept`, async (req, reply) => {
      const s = scopeOf(req);
      requireWriter(s);
      const { auth_key } = parseBody(acceptSchema, req.body).accept;
      const row = await acceptTransfer(deps, s, transferId(req), String(auth_key));
      return reply.code(202).send({ transfer: transferSummaryView(s, row) });
    });
  }
}
