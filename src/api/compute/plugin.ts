// Nova's compute API v2.1, the part Bulwark needs: servers booted from volumes,
// start/stop/delete, volume attachments, flavors, and the quiesce actions of
// seed 000 (a Bulwark extension: Nova never exposed quiesce). Mounted at
// /compute; URLs carry no project id (Nova allows that since 2.18, and the
// token names the project anyway).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError, badRequest, notFound } from '../errors.js';
import { parseBody, parseBool, uuidField } from '../validate.js';
import { roleFlags, type Authenticate } from '../cinder/scope.js';
import type { Caller, ServiceDeps } from '../../services/deps.js';
import {
  attachVolumeToServer,
  createServer,
  deleteServer,
  detachVolumeFromServer,
  findFlavor,
  getInstance,
  instanceVolumes,
  listInstances,
  powerServer,
  quiesceServer,
} from '../../services/instances.js';
import { allFlavors, flavorView, quiesceView, serverDetail, serverSummary, volumeAttachmentView, type ComputeViewContext } from './views.js';

export interface ComputePluginOptions {
  readonly deps: ServiceDeps;
  readonly authenticate: Authenticate;
  /** e.g. http://127.0.0.1:8776/compute */
  readonly publicBaseUrl: string;
}

interface ComputeScope extends Caller, ComputeViewContext {
  readonly isReader: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    compute: ComputeScope | null;
  }
}

function scope(req: FastifyRequest): ComputeScope {
  if (!req.compute) throw new Error('route used outside the compute scope');
  return req.compute;
}

function requireWriter(s: ComputeScope): void {
  if (s.isReader) throw new ApiError(403, 'Policy does not allow this action.');
}

const MAX_DEADLINE_MS = 600_000;

const bdmSchema = z
  .object({
    uuid: uuidField,
    source_type: z.literal('volume', { message: "Bulwark boots servers from volumes: source_type must be 'volume'" }),
    destination_type: z.literal('volume').optional(),
    boot_index: z.union([z.number().int(), z.string().regex(/^-?\d+$/).transform(Number), z.null()]).optional(),
    delete_on_termination: z.union([z.boolean(), z.string()]).optional(),
    device_name: z.string().max(255).nullable().optional(),
    volume_size: z.union([z.number(), z.string(), z.null()]).optional(),
    disk_bus: z.string().optional(),
    device_type: z.string().optional(),
  })
  .strict();

const serverCreateSchema = z.object({
  server: z
    .object({
      name: z.string().trim().min(1).max(255),
      flavorRef: z.union([z.string().min(1), z.number().int().transform(String)]),
      imageRef: z.string().max(255).optional(),
      block_device_mapping_v2: z.array(bdmSchema).min(1).max(26),
      metadata: z.record(z.string().min(1).max(255), z.string().max(255)).optional(),
      min_count: z.union([z.literal(1), z.literal('1')]).optional(),
      max_count: z.union([z.literal(1), z.literal('1')]).optional(),
      networks: z.union([z.literal('none'), z.literal('auto'), z.array(z.unknown()).max(0)]).optional(),
      security_groups: z.array(z.object({ name: z.string() }).passthrough()).optional(),
      availability_zone: z.string().optional(),
      config_drive: z.union([z.boolean(), z.string()]).optional(),
      key_name: z.string().optional(),
      user_data: z.string().optional(),
      description: z.string().max(255).nullable().optional(),
    })
    .strict(),
  'os:scheduler_hints': z.record(z.string(), z.unknown()).optional(),
}).strict();

const quiesceBody = z
  .object({
    /** How long the guest may stay frozen before the watchdog thaws it. */
    deadline_seconds: z.number().positive().max(MAX_DEADLINE_MS / 1000).optional(),
    /** A synchronous call waits this long. */
    timeout_seconds: z.number().positive().max(600).optional(),
    async: z.boolean().optional(),
  })
  .strict();

const unquiesceBody = z.object({ timeout_seconds: z.number().positive().max(600).optional(), async: z.boolean().optional() }).strict();

const attachSchema = z.object({ volumeAttachment: z.object({ volumeId: uuidField, device: z.string().max(255).nullable().optional(), tag: z.string().optional(), delete_on_termination: z.boolean().optional() }).strict() }).strict();

function versionDoc(base: string) {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: '2.1',
    min_version: '2.1',
    updated: '2013-07-23T11:33:21Z',
    links: [{ rel: 'self', href: `${base}/v2.1/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
  };
}

function serverIdParam(req: FastifyRequest): string {
  const id = (req.params as { id: string }).id;
  if (!id) throw notFound('The resource could not be found.');
  return id;
}

export async function computePlugin(app: FastifyInstance, opts: ComputePluginOptions): Promise<void> {
  const base = opts.publicBaseUrl;
  const { deps } = opts;
  app.decorateRequest('compute', null);
  app.get('/', async (_req, reply) => reply.code(300).send({ versions: [versionDoc(base)] }));
  app.get('/v2.1', async () => ({ version: versionDoc(base) }));
  app.get('/v2.1/', async () => ({ version: versionDoc(base) }));

  await app.register(
    async (s) => {
      s.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
        reply.header('OpenStack-API-Version', 'compute 2.1');
        reply.header('X-OpenStack-Nova-API-Version', '2.1');
        const token = req.headers['x-auth-token'];
        const user = typeof token === 'string' ? opts.authenticate(token) : null;
        if (!user || !user.projectId) throw new ApiError(401, 'The request you have made requires authentication.');
        req.compute = {
          userId: user.userId,
          projectId: user.projectId,
          ...roleFlags(user.roles),
          baseUrl: base,
        };
      });

      // ---- flavors ----
      s.get('/flavors', async (req) => ({ flavors: allFlavors.map((f) => flavorView(scope(req), f, false)) }));
      s.get('/flavors/detail', async (req) => ({ flavors: allFlavors.map((f) => flavorView(scope(req), f, true)) }));
      s.get('/flavors/:id', async (req) => {
        const f = findFlavor((req.params as { id: string }).id);
        if (!f) throw notFound(`Flavor ${(req.params as { id: string }).id} could not be found.`);
        return { flavor: flavorView(scope(req), f, true) };
      });

      s.get('/flavors/:id/os-extra_specs', async (req) => {
        if (!findFlavor((req.params as { id: string }).id)) throw notFound(`Flavor ${(req.params as { id: string }).id} could not be found.`);
        return { extra_specs: {} };
      });

      // ---- servers ----
      const list = async (req: FastifyRequest, detail: boolean) => {
        const sc = scope(req);
        const q = req.query as Record<string, string | undefined>;
        const allTenants = q['all_tenants'] !== undefined ? parseBool(q['all_tenants'] === '' ? 'true' : q['all_tenants'], 'all_tenants') : false;
        const rows = await listInstances(deps.store.db, sc, { allTenants, name: q['name'], status: q['status'] });
        if (!detail) return { servers: rows.map((r) => serverSummary(sc, r)) };
        const out = [];
        for (const r of rows) out.push(serverDetail(sc, r, await instanceVolumes(deps.store.db, r.id)));
        return { servers: out };
      };
      s.get('/servers', (req) => list(req, false));
      s.get('/servers/detail', (req) => list(req, true));
      s.get('/servers/:id', async (req) => {
        const sc = scope(req);
        const row = await getInstance(deps.store.db, sc, serverIdParam(req));
        return { server: serverDetail(sc, row, await instanceVolumes(deps.store.db, row.id)) };
      });
      s.post('/servers', async (req, reply) => {
        const sc = scope(req);
        requireWriter(sc);
        const body = parseBody(serverCreateSchema, req.body).server;
        const mappings = body.block_device_mapping_v2.map((m) => ({
          uuid: m.uuid,
          bootIndex: m.boot_index === undefined || m.boot_index === null || m.boot_index < 0 ? null : m.boot_index,
          deleteOnTermination: m.delete_on_termination === undefined ? false : parseBool(m.delete_on_termination, 'delete_on_termination'),
        }));
        if (body.imageRef) throw badRequest('Bulwark boots servers from volumes: create a volume from the image (imageRef on the volume) and boot from it.');
        const row = await createServer(deps, sc, { name: body.name, flavorRef: body.flavorRef, mappings, metadata: body.metadata ?? {} });
        return reply.code(202).send({ server: { id: row.id, links: serverSummary(sc, row).links, 'OS-DCF:diskConfig': 'MANUAL', security_groups: [{ name: 'default' }], adminPass: '' } });
      });
      s.delete('/servers/:id', async (req, reply) => {
        const sc = scope(req);
        requireWriter(sc);
        await deleteServer(deps, sc, serverIdParam(req));
        return reply.code(204).send();
      });
      s.post('/servers/:id/action', async (req, reply) => {
        const sc = scope(req);
        requireWriter(sc);
        const id = serverIdParam(req);
        const body = req.body;
        if (!body || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length !== 1) throw badRequest('Invalid input: the body must name exactly one action.');
        const [action, arg] = Object.entries(body as Record<string, unknown>)[0]!;
        switch (action) {
          case 'os-start':
          case 'os-stop':
            await powerServer(deps, sc, id, action === 'os-start');
            return reply.code(202).send();
          case 'quiesce': {
            const a = parseBody(quiesceBody, arg ?? {}, 'quiesce');
            const out = await quiesceServer(deps, sc, id, true, {
              deadlineMs: Math.round((a.deadline_seconds ?? deps.config.compute.defaultFreezeDeadlineMs / 1000) * 1000),
              timeoutMs: Math.round((a.timeout_seconds ?? 30) * 1000),
              async: a.async ?? false,
            });
            return reply.code(out.result === null ? 202 : 200).send({ quiesce: { ...quiesceView(out.row), result: out.result } });
          }
          case 'unquiesce': {
            const a = parseBody(unquiesceBody, arg ?? {}, 'unquiesce');
            const out = await quiesceServer(deps, sc, id, false, { deadlineMs: 0, timeoutMs: Math.round((a.timeout_seconds ?? 30) * 1000), async: a.async ?? false });
            return reply.code(out.result === null ? 202 : 200).send({ quiesce: { ...quiesceView(out.row), result: out.result } });
          }
          default:
            // Make sure the server exists before saying the action is unknown.
            await getInstance(deps.store.db, sc, id);
            throw badRequest(`Bulwark does not support the server action '${action}'.`);
        }
      });
      // Bulwark extension: the quiesce state of a server, for async callers to poll.
      s.get('/servers/:id/os-quiesce', async (req) => {
        const row = await getInstance(deps.store.db, scope(req), serverIdParam(req));
        return { quiesce: quiesceView(row) };
      });

      // ---- volume attachments ----
      s.get('/servers/:id/os-volume_attachments', async (req) => {
        const row = await getInstance(deps.store.db, scope(req), serverIdParam(req));
        return { volumeAttachments: (await instanceVolumes(deps.store.db, row.id)).map(volumeAttachmentView) };
      });
      s.get('/servers/:id/os-volume_attachments/:volumeId', async (req) => {
        const row = await getInstance(deps.store.db, scope(req), serverIdParam(req));
        const volumeId = (req.params as { volumeId: string }).volumeId;
        const iv = (await instanceVolumes(deps.store.db, row.id)).find((v) => v.volume_id === volumeId);
        if (!iv) throw notFound(`Volume ${volumeId} is not attached to instance ${row.id}.`);
        return { volumeAttachment: volumeAttachmentView(iv) };
      });
      s.post('/servers/:id/os-volume_attachments', async (req) => {
        const sc = scope(req);
        requireWriter(sc);
        const body = parseBody(attachSchema, req.body).volumeAttachment;
        const iv = await attachVolumeToServer(deps, sc, serverIdParam(req), body.volumeId);
        return { volumeAttachment: volumeAttachmentView(iv) };
      });
      s.delete('/servers/:id/os-volume_attachments/:volumeId', async (req, reply) => {
        const sc = scope(req);
        requireWriter(sc);
        await detachVolumeFromServer(deps, sc, serverIdParam(req), (req.params as { volumeId: string }).volumeId);
        return reply.code(202).send();
      });
    },
    { prefix: '/v2.1' },
  );
}
