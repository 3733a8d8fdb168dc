// /messages (3.3+, Cinder's v3/messages.py): readers see their project's
// messages (admins every project's); members and admins delete them.
// Filters, sort and pagination from 3.5, as Cinder.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deleteMessage, getMessage, listMessages } from '../../../services/messages.js';
import type { MessageRow } from '../../../store/schema.js';
import { atLeast } from '../../microversion.js';
import { matchesFilters, nextLink, paginate, parseListQuery } from '../listing.js';
import { requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { messageView } from '../views/admin-extras.js';
import { requireMicroversion } from './group-types.js';

const MESSAGE_FILTERS = ['resource_uuid', 'resource_type', 'event_id', 'request_id', 'message_level'];
const MESSAGE_SORT_KEYS = ['id', 'created_at', 'expires_at', 'event_id', 'resource_type', 'resource_uuid', 'request_id', 'message_level', 'project_id'];

const messageField = (row: MessageRow, key: string): unknown => (row as unknown as Record<string, unknown>)[key];
const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

export function registerMessageRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store } = opts.deps;
  const db = store.db;

  app.get('/messages', async (req) => {
    const s = scopeOf(req);
    requireMicroversion(s, '3.3');
    // Before 3.5 Cinder passes no filters, sort or paging at all.
    const query = atLeast(s.version, '3.5') ? (req.query as Record<string, string>) : {};
    const q = parseListQuery(query, { allowedFilters: MESSAGE_FILTERS, sortKeys: MESSAGE_SORT_KEYS, version: s.version, isAdmin: s.isAdmin });
    const rows = (await listMessages(db, s)).filter((r) => matchesFilters(r, q.filters, messageField));
    const page = paginate(rows, q, messageField);
    const body: Record<string, unknown> = { messages: page.items.map((r) => messageView(s, r)) };
    const next = nextLink(`${s.baseUrl}/v3/${s.projectId}/messages`, query, page.nextMarker);
    if (next) body['messages_links'] = next;
    return body;
  });

  app.get('/messages/:id', async (req) => {
    const s = scopeOf(req);
    requireMicroversion(s, '3.3');
    return { message: messageView(s, await getMessage(db, s, idOf(req))) };
  });

  app.delete('/messages/:id', async (req, reply) => {
    const s = scopeOf(req);
    requireMicroversion(s, '3.3');
    // Cinder looks the message up before it checks the policy: 404 wins over 403.
    await getMessage(db, s, idOf(req));
    requireWriter(s);
    await deleteMessage(store, s, idOf(req));
    return reply.code(204).send();
  });
}
