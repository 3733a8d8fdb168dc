// Version discovery documents. keystoneauth reads keystone's before every
// authentication; openstackclient/openstacksdk read Glance's as soon as anything
// touches the image service (Bulwark has no Glance; the stub only answers discovery).
import type { FastifyPluginAsync } from 'fastify';

import type { BaseUrls } from './plugin-options.js';

const KEYSTONE_MEDIA_TYPE = 'application/vnd.openstack.identity-v3+json';

/** Keystone's current v3 version entry (keystone/api/discovery.py). */
export function keystoneV3Version(identityBase: string): Record<string, unknown> {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${identityBase}/v3/` }],
    'media-types': [{ base: 'application/json', type: KEYSTONE_MEDIA_TYPE }],
  };
}

export const keystoneDiscoveryRoutes: FastifyPluginAsync<{ urls: BaseUrls }> = async (app, { urls }) => {
  // Keystone answers the root with 300 Multiple Choices even though it lists one version.
  app.get('/', async (request, reply) =>
    reply.code(300).send({ versions: { values: [keystoneV3Version(urls.identityBase(request))] } }),
  );
  for (const path of ['/v3', '/v3/']) {
    app.get(path, async (request) => ({ version: keystoneV3Version(urls.identityBase(request)) }));
  }
};

// glance/api/versions.py with the api-ref's version list: v2.18 current, down to v2.0.
const GLANCE_MINORS = [18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0];

export function glanceVersions(imageBase: string): Record<string, unknown> {
  const href = `${imageBase}/v2/`;
  return {
    versions: GLANCE_MINORS.map((minor, i) => ({
      id: `v2.${minor}`,
      status: i === 0 ? 'CURRENT' : 'SUPPORTED',
      links: [{ rel: 'self', href }],
    })),
  };
}

export const glanceDiscoveryRoutes: FastifyPluginAsync<{ urls: BaseUrls }> = async (app, { urls }) => {
  // Glance: the root negotiates (300); an explicit /versions is a plain 200.
  app.get('/', async (request, reply) => reply.code(300).send(glanceVersions(urls.imageBase(request))));
  app.get('/versions', async (request) => glanceVersions(urls.imageBase(request)));
};
