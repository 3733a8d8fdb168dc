// The Keystone v3 subset (plus Glance's discovery stub) as one fastify plugin.
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

import { KeystoneError, UNAUTHORIZED_MESSAGE, openstackErrorBody } from './errors.js';
import { type BaseUrls, type IdentityPluginOptions, baseUrls, normalizePrefix } from './plugin-options.js';
import { authRoutes } from './routes-auth.js';
import { glanceDiscoveryRoutes, keystoneDiscoveryRoutes } from './routes-discovery.js';
import { resourceRoutes } from './routes-resources.js';
import { serviceRoutes } from './routes-services.js';

function errorHandler(urls: BaseUrls) {
  return function keystoneErrorHandler(err: FastifyError | KeystoneError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    let code = err.statusCode ?? 500;
    let message = err.message;
    if (!(err instanceof KeystoneError)) {
      if (code >= 500) {
        request.log.error({ err }, 'identity request failed');
        // Keystone's wording; the details stay in the log.
        message = 'An unexpected error prevented the server from fulfilling your request.';
      }
      if (code < 400) code = 500;
    }
    if (code === 401) {
      message = UNAUTHORIZED_MESSAGE;
      reply.header('WWW-Authenticate', `Keystone uri="${urls.identityBase(request)}"`);
    }
    return reply.code(code).type('application/json').send(openstackErrorBody(code, message));
  };
}

/**
 * Register once, on the root instance (or anywhere: URLs account for the
 * registration prefix):
 *
 *   const identity = new IdentityService({ config: cfg.identity, tokenKey, catalog: defaultCatalogServices({ identityPrefix: '/identity' }) });
 *   await app.register(identityPlugin, { identity, identityPrefix: '/identity' });
 */
export const identityPlugin: FastifyPluginAsync<IdentityPluginOptions> = async (app, opts) => {
  const identityPrefix = normalizePrefix(opts.identityPrefix, '');
  const imagePrefix = opts.imagePrefix === null ? null : normalizePrefix(opts.imagePrefix, '/image');
  // app.prefix is where this plugin itself was registered; links must include it.
  const outer = app.prefix.replace(/\/+$/, '');
  const urls = baseUrls(opts.publicUrl, outer + identityPrefix, outer + (imagePrefix ?? ''));
  const deps = { identity: opts.identity, urls };

  await app.register(
    async (keystone) => {
      keystone.setErrorHandler(errorHandler(urls));
      await keystone.register(keystoneDiscoveryRoutes, { urls });
      await keystone.register(authRoutes, deps);
      await keystone.register(resourceRoutes, deps);
      await keystone.register(serviceRoutes, deps);
    },
    { prefix: identityPrefix },
  );
  if (imagePrefix !== null) await app.register(glanceDiscoveryRoutes, { prefix: imagePrefix, urls });
};
