// os-services (admin), os-availability-zone and extensions.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listUpServices, VOLUME_BINARY } from '../../../services/registry.js';
import { listServiceRows, setBackendFrozen, setServiceDisabled } from '../../../services/service-admin.js';
import { invalidInput, notFound } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { parseBody } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { serviceView } from '../views/service.js';
import { CINDER_EXTENSIONS } from '../views/extensions.js';

/** parameter_types.cinder_host: hostname[@backend[#pool]] and friends. */
const cinderHost = z.string().min(1).max(255).regex(/^[a-zA-Z0-9\-._#@:/+[\]]*$/, 'invalid host').nullable();
const nullableString = z.string().max(255).nullable();

const toggleFields = {
  binary: z.string().min(1).max(255).optional(),
  service: z.string().min(1).max(255).optional(),
  host: cinderHost.optional(),
  cluster: nullableString.optional(),
};
const needsBinary = (b: { binary?: string; service?: string }) => b.binary !== undefined || b.service !== undefined;
const toggleSchema = z.object(toggleFields).strict().refine(needsBinary, "'binary' or 'service' is a required property");
const logReasonSchema = z
  .object({
    ...toggleFields,
    disabled_reason: z.string().min(1).max(255).refine((r) => r.trim().length > 0, 'disabled_reason can not be only spaces').optional(),
  })
  .strict()
  .refine(needsBinary, "'binary' or 'service' is a required property");
const freezeSchema = z.object({ host: cinderHost.optional(), cluster: nullableString.optional() }).strict();

export function registerServiceRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store, config } = opts.deps;
  const db = store.db;
  const downAfterMs = config.jobs.serviceDownAfterMs;

  app.get('/os-services', async (req) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const q = req.query as Record<string, string | undefined>;
    const rows = await listServiceRows(db, { host: q['host'], binary: q['binary'] });
    const now = Date.now();
    return { services: rows.map((r) => serviceView(s, r, now, downAfterMs)) };
  });

  app.put('/os-services/:action', async (req, reply) => {
    const s = scopeOf(req);
    requireAdmin(s);
    const action = (req.params as { action: string }).action;
    switch (action) {
      case 'enable':
      case 'disable':
      case 'disable-log-reason': {
        let body: z.infer<typeof toggleSchema>;
        let reason: string | null = null;
        if (action === 'disable-log-reason') {
          const withReason = parseBody(logReasonSchema, req.body);
          reason = withReason.disabled_reason ?? null;
          body = withReason;
        } else {
          body = parseBody(toggleSchema, req.body);
        }
        if (!body.host) throw invalidInput('Host field is missing.');
        const service = body.service ?? '';
        const binary = body.binary ?? '';
        // "binary" wins over the deprecated "service" key.
        await setServiceDisabled(store, { host: body.host, binary: binary || service, disabled: action !== 'enable', reason });
        const out: Record<string, unknown> = { host: body.host, service, binary, status: action === 'enable' ? 'enabled' : 'disabled', disabled: action !== 'enable' };
        if (action === 'enable') out['disabled_reason'] = null;
        if (action === 'disable-log-reason') out['disabled_reason'] = reason;
        return out;
      }
      case 'freeze':
      case 'thaw': {
        const body = parseBody(freezeSchema, req.body);
        const host = body.host ?? null;
        // From 3.26 a cluster may be named instead of a host, but never both.
        const cluster = atLeast(s.version, '3.26') ? (body.cluster ?? null) : null;
        if (atLeast(s.version, '3.26') ? Boolean(host) === Boolean(cluster) : !host) {
          throw invalidInput(atLeast(s.version, '3.26') ? 'One and only one of cluster and host must be set.' : 'Host field is missing.');
        }
        await setBackendFrozen(store, { host, cluster }, action === 'freeze');
        return reply.code(200).send();
      }
      default:
        throw notFound('Unknown action');
    }
  });

  app.get('/os-availability-zone', async () => {
    // Cinder lists the zones of its volume services; a zone is available while
    // any of them is enabled. The configured zone is where the API creates
    // volumes, so it is listed even before a volume service has reported.
    const services = await listUpServices(db, VOLUME_BINARY, downAfterMs);
    const zones = new Map<string, boolean>();
    for (const svc of services) zones.set(svc.zone, (zones.get(svc.zone) ?? false) || !svc.disabled);
    if (!zones.has(config.availabilityZone)) zones.set(config.availabilityZone, true);
    return { availabilityZoneInfo: [...zones].map(([zoneName, available]) => ({ zoneName, zoneState: { available } })) };
  });

  app.get('/extensions', async () => ({ extensions: CINDER_EXTENSIONS.map((e) => ({ ...e, links: [] })) }));

  app.get('/extensions/:alias', async (req) => {
    const alias = (req.params as { alias: string }).alias;
    const ext = CINDER_EXTENSIONS.find((e) => e.alias === alias);
    if (!ext) throw notFound('The resource could not be found.');
    return { extension: { ...ext, links: [] } };
  });
}
