// Admin-only /v3/services and /v3/endpoints, rendered from the configured
// catalog, so `openstack endpoint list` / `service list` work for debugging.
import type { FastifyPluginAsync } from 'fastify';

import { absoluteUrl } from './catalog.js';
import { forbidden } from './errors.js';
import { endpointId, serviceId } from './ids.js';
import { type RouteDeps, callerToken, isAdmin } from './routes-auth.js';
import { renderCollection } from './views.js';

export const serviceRoutes: FastifyPluginAsync<RouteDeps> = async (app, { identity, urls }) => {
  app.get('/v3/services', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_services');
    const base = urls.identityBase(request);
    const services = identity.catalog.map((svc) => {
      const id = serviceId(svc.type, svc.name);
      return { id, type: svc.type, name: svc.name, description: '', enabled: true, links: { self: `${base}/v3/services/${id}` } };
    });
    return renderCollection('services', services, `${base}/v3/services`);
  });

  // Unlike a token's catalog, keystone lists endpoint URLs as templates, unsubstituted.
  app.get('/v3/endpoints', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_endpoints');
    const base = urls.identityBase(request);
    const origin = urls.origin(request);
    const endpoints = identity.catalog.flatMap((svc) =>
      svc.endpoints.map((ep) => {
        const id = endpointId(svc.type, ep.interface, ep.url);
        return {
          id,
          interface: ep.interface,
          region: ep.region,
          region_id: ep.region,
          service_id: serviceId(svc.type, svc.name),
          url: absoluteUrl(ep.url, origin),
          enabled: true,
          links: { self: `${base}/v3/endpoints/${id}` },
        };
      }),
    );
    return renderCollection('endpoints', endpoints, `${base}/v3/endpoints`);
  });
};
