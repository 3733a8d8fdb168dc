// Glance Image API v2, the minimal subset Bulwark needs (images with data,
// JSON-patch updates, schemas), mounted under the image prefix beside the
// version document the identity plugin serves there. Tokens are checked the
// way the Cinder plugin checks them; errors use the shared JSON fault shape.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Caller, ServiceDeps } from '../../services/deps.js';
import { createImage, deleteImage, getImage, imageDataFor, listImages, parseImageListQuery, parsePatch, updateImage, uploadImageData } from '../../services/images.js';
import { ApiError, badRequest } from '../errors.js';
import type { Authenticate } from '../cinder/scope.js';
import { imageSchema, imagesSchema, imageView } from './views.js';

export interface ImagePluginOptions {
  readonly deps: ServiceDeps;
  readonly authenticate: Authenticate;
}

const PATCH_TYPES = ['application/openstack-images-v2.1-json-patch', 'application/openstack-images-v2.0-json-patch'];

function callerOf(req: FastifyRequest, authenticate: Authenticate): Caller {
  const token = req.headers['x-auth-token'];
  const user = typeof token === 'string' ? authenticate(token.trim()) : null;
  if (!user?.projectId) throw new ApiError(401, 'The request you have made requires authentication.');
  return { userId: user.userId, projectId: user.projectId, isAdmin: user.roles.includes('admin') };
}

function requireMember(req: FastifyRequest, authenticate: Authenticate): Caller {
  const token = req.headers['x-auth-token'];
  const user = typeof token === 'string' ? authenticate(token.trim()) : null;
  if (user && !user.roles.includes('admin') && !user.roles.includes('member')) throw new ApiError(403, 'Policy does not allow this action.');
  return callerOf(req, authenticate);
}

function parseJsonText(text: string | Buffer): unknown {
  const raw = typeof text === 'string' ? text : text.toString('utf8');
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw badRequest('Malformed request body: the body is not valid JSON.');
  }
}

export async function imagePlugin(app: FastifyInstance, opts: ImagePluginOptions): Promise<void> {
  const { deps, authenticate } = opts;
  const db = deps.store.db;

  // Image data arrives as a stream and is written to disk as it comes: the
  // server's 1 MiB JSON body limit does not apply to it (parsers that take the
  // raw payload are not size-checked by fastify; uploadImageData enforces maxSizeBytes).
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  app.addContentTypeParser(PATCH_TYPES, { parseAs: 'string' }, (_req, text, done) => {
    try {
      done(null, parseJsonText(text));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.get('/v2/schemas/image', async () => imageSchema());
  app.get('/v2/schemas/images', async () => imagesSchema());

  app.post('/v2/images', async (req, reply) => {
    const caller = requireMember(req, authenticate);
    const body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('Request body must be a JSON object.');
    const row = await createImage(deps, caller, body as Record<string, unknown>);
    return reply.code(201).header('Location', `/v2/images/${row.id}`).send(imageView(row));
  });

  app.get('/v2/images', async (req) => {
    const caller = callerOf(req, authenticate);
    const query = req.query as Record<string, string | string[] | undefined>;
    const q = parseImageListQuery(query);
    const { rows, next } = await listImages(db, caller, q);
    const body: Record<string, unknown> = { images: rows.map(imageView), first: '/v2/images', schema: '/v2/schemas/images' };
    if (next) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (k !== 'marker' && v !== undefined) for (const x of Array.isArray(v) ? v : [v]) params.append(k, x);
      params.set('marker', next);
      if (!params.has('limit')) params.set('limit', String(q.limit));
      body['next'] = `/v2/images?${params.toString()}`;
    }
    return body;
  });

  app.get('/v2/images/:id', async (req) => imageView(await getImage(db, callerOf(req, authenticate), (req.params as { id: string }).id)));

  app.patch('/v2/images/:id', async (req) => {
    const caller = requireMember(req, authenticate);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!PATCH_TYPES.includes(type)) throw new ApiError(415, `Unsupported Content-Type ${type || '(none)'}: use ${PATCH_TYPES[0]}.`);
    return imageView(await updateImage(deps, caller, (req.params as { id: string }).id, parsePatch(req.body)));
  });

  app.delete('/v2/images/:id', async (req, reply) => {
    await deleteImage(deps, requireMember(req, authenticate), (req.params as { id: string }).id);
    return reply.code(204).send();
  });

  app.put('/v2/images/:id/file', async (req, reply) => {
    const caller = requireMember(req, authenticate);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/octet-stream') throw new ApiError(415, 'Image data must be sent as application/octet-stream.');
    const length = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : null;
    try {
      await uploadImageData(deps, caller, (req.params as { id: string }).id, req.body as Readable, length !== null && Number.isFinite(length) ? length : null);
    } catch (err) {
      // A refused upload may leave body bytes unread: do not reuse the connection for them.
      reply.header('Connection', 'close');
      throw err;
    }
    return reply.code(204).send();
  });

  app.get('/v2/images/:id/file', async (req, reply) => {
    const row = await imageDataFor(db, callerOf(req, authenticate), (req.params as { id: string }).id);
    // Glance answers 204 when an image has no data yet.
    if (!row) return reply.code(204).send();
    const size = (await stat(row.location)).size;
    reply.header('Content-Type', 'application/octet-stream').header('Content-Length', String(size));
    if (row.checksum) reply.header('Content-MD5', row.checksum);
    return reply.send(createReadStream(row.location));
  });
}
