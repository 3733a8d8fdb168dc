import type { FastifyInstance } from 'fastify';
import { MAX_VERSION, MIN_VERSION } from '../../microversion.js';
import type { CinderPluginOptions } from '../plugin.js';

function v3Doc(base: string) {
  return {
    id: 'v3.0',
    status: 'CURRENT',
    version: MAX_VERSION,
    min_version: MIN_VERSION,
    updated: '2023-03-01T00:00:00Z',
    links: [
      { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
      { rel: 'self', href: `${base}/v3/` },
    ],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
  };
}

export function registerVersionRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  app.get('/', async (_req, reply) => reply.code(300).send({ versions: [v3Doc(opts.publicBaseUrl)] }));
  app.get('/v3', async () => ({ versions: [v3Doc(opts.publicBaseUrl)] }));
  app.get('/v3/', async () => ({ versions: [v3Doc(opts.publicBaseUrl)] }));
}
