// The metadata sub-resource Cinder gives volumes and snapshots:
// GET/POST/PUT .../metadata and GET/PUT/DELETE .../metadata/{key}.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServiceDeps } from '../../../services/deps.js';
import { changeMetadata, type MetadataOwner } from '../../../services/metadata.js';
import type { Executor } from '../../../store/db.js';
import { badRequest, notFound } from '../../errors.js';
import { metadataField, parseBody } from '../../validate.js';
import { requireWriter } from '../policy.js';
import { scopeOf, type CinderScope } from '../scope.js';

const metadataBody = z.object({ metadata: metadataField }).strict();
const metaItemBody = z.object({ meta: metadataField.refine((m) => Object.keys(m).length === 1, 'meta must hold exactly one item') }).strict();

export interface MetadataRouteOptions {
  readonly collection: 'volumes' | 'snapshots';
  readonly label: string;
  readonly load: (ex: Executor, scope: CinderScope, id: string) => Promise<{ id: string; metadata: string }>;
}

export function registerMetadataRoutes(app: FastifyInstance, deps: ServiceDeps, opts: MetadataRouteOptions): void {
  const base = `/${opts.collection}/:id/metadata`;
  const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;
  const keyOf = (req: FastifyRequest) => (req.params as { key: string }).key;
  const owner = (s: CinderScope): MetadataOwner => ({ table: opts.collection, label: opts.label, load: (ex, id) => opts.load(ex, s, id) });
  const writer = (req: FastifyRequest) => {
    const s = scopeOf(req);
    requireWriter(s);
    return s;
  };

  app.get(base, async (req) => {
    const row = await opts.load(deps.store.db, scopeOf(req), idOf(req));
    return { metadata: JSON.parse(row.metadata) as Record<string, string> };
  });
  app.post(base, async (req) => ({ metadata: await changeMetadata(deps, owner(writer(req)), idOf(req), parseBody(metadataBody, req.body).metadata, 'merge') }));
  app.put(base, async (req) => ({ metadata: await changeMetadata(deps, owner(writer(req)), idOf(req), parseBody(metadataBody, req.body).metadata, 'replace') }));
  app.get(`${base}/:key`, async (req) => {
    const row = await opts.load(deps.store.db, scopeOf(req), idOf(req));
    const meta = JSON.parse(row.metadata) as Record<string, string>;
    const key = keyOf(req);
    if (!(key in meta)) throw notFound(`${opts.label} ${row.id} has no metadata with key ${key}.`);
    return { meta: { [key]: meta[key] } };
  });
  app.put(`${base}/:key`, async (req) => {
    const s = writer(req);
    const meta = parseBody(metaItemBody, req.body).meta;
    if (!(keyOf(req) in meta)) throw badRequest('Request body and URI mismatch');
    await changeMetadata(deps, owner(s), idOf(req), meta, 'merge');
    return { meta };
  });
  app.delete(`${base}/:key`, async (req, reply) => {
    await changeMetadata(deps, owner(writer(req)), idOf(req), {}, { delete: keyOf(req) });
    return reply.code(200).send();
  });
}
