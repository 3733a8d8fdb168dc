// The HTTP surface on one port, laid out like devstack's: Keystone under
// /identity, Cinder under /volume, Glance (version document and v2) under /image.
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import type { BulwarkConfig } from '../../config/schema.js';
import { installApiBehaviour } from '../../api/http.js';
import { cinderPlugin } from '../../api/cinder/plugin.js';
import { computePlugin } from '../../api/compute/plugin.js';
import { imagePlugin } from '../../api/image/plugin.js';
import type { Authenticate } from '../../api/cinder/scope.js';
import { identityPlugin, IdentityService, loadOrCreateTokenKey, type CatalogService } from '../../api/identity/index.js';
import type { ServiceDeps } from '../../services/deps.js';
import { ensureDefaultVolumeType } from '../../services/volume-types.js';
import { ensureDefaultGroupType } from '../../services/group-types.js';

export function publicUrlOf(config: BulwarkConfig, boundPort?: number): string {
  if (config.api.publicUrl) return config.api.publicUrl.replace(/\/+$/, '');
  const { host } = config.api.listen;
  return `http://${host.includes(':') ? `[${host}]` : host}:${boundPort ?? config.api.listen.port}`;
}

export function catalogFor(base: string): CatalogService[] {
  const all = (url: string) => (['public', 'internal', 'admin'] as const).map((iface) => ({ interface: iface, url, region: 'RegionOne' }));
  const volume = `${base}/volume/v3/%(project_id)s`;
  return [
    { type: 'identity', name: 'keystone', endpoints: all(`${base}/identity/v3`) },
    { type: 'volumev3', name: 'cinderv3', endpoints: all(volume) },
    { type: 'block-storage', name: 'cinder', endpoints: all(volume) },
    { type: 'image', name: 'glance', endpoints: all(`${base}/image`) },
    { type: 'compute', name: 'nova', endpoints: all(`${base}/compute/v2.1`) },
  ];
}

export async function buildApiApp(deps: ServiceDeps, publicUrl: string, opts: { logger?: boolean } = {}): Promise<{ app: FastifyInstance; identity: IdentityService }> {
  const { config } = deps;
  const tokenKey = await loadOrCreateTokenKey(config.identity.tokenKeyFile ?? join(config.dataDir, 'token.key'));
  const identity = new IdentityService({ config: config.identity, tokenKey, catalog: catalogFor(publicUrl) });
  await ensureDefaultVolumeType(deps.store.db);
  await ensureDefaultGroupType(deps.store.db);
  const app = fastify({ logger: opts.logger ?? false, bodyLimit: 1024 * 1024 });
  installApiBehaviour(app);
  const authenticate: Authenticate = (token) => {
    const ctx = identity.verifyToken(token);
    return ctx ? { userId: ctx.userId, userName: ctx.userName, projectId: ctx.projectId, roles: ctx.roles } : null;
  };
  await app.register(identityPlugin, { identity, identityPrefix: '/identity', imagePrefix: '/image', publicUrl });
  await app.register(cinderPlugin, { prefix: '/volume', deps, authenticate, publicBaseUrl: `${publicUrl}/volume` });
  await app.register(computePlugin, { prefix: '/compute', deps, authenticate, publicBaseUrl: `${publicUrl}/compute` });
  // Glance v2 beside the version document the identity plugin serves at /image.
  await app.register(imagePlugin, { prefix: '/image', deps, authenticate });
  return { app, identity };
}
