// /v3/auth/*: issue and validate tokens, list the caller's projects.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';

import { parseAuthBody } from './auth-request.js';
import { renderCatalog } from './catalog.js';
import { KeystoneError, badRequest, forbidden, unauthorized } from './errors.js';
import type { BaseUrls } from './plugin-options.js';
import type { IdentityService, ValidToken } from './service.js';
import { renderCollection, renderProject, renderToken } from './views.js';

export interface RouteDeps {
  identity: IdentityService;
  urls: BaseUrls;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** The caller's X-Auth-Token, validated; 401 (keystone's shape) otherwise. */
export function callerToken(identity: IdentityService, request: FastifyRequest): ValidToken {
  const token = header(request, 'x-auth-token');
  const valid = token ? identity.validate(token) : null;
  if (!valid) throw unauthorized();
  return valid;
}

export function isAdmin(v: ValidToken): boolean {
  return v.project !== null && v.roles.includes('admin');
}

// keystone: any query value, even empty (?nocatalog), turns the catalog off.
function wantsCatalog(request: FastifyRequest): boolean {
  const q = request.query;
  return !(typeof q === 'object' && q !== null && 'nocatalog' in q);
}

export const authRoutes: FastifyPluginAsync<RouteDeps> = async (app, { identity, urls }) => {
  const tokenBody = (request: FastifyRequest, v: ValidToken): Record<string, unknown> =>
    renderToken(v, wantsCatalog(request) ? renderCatalog(identity.catalog, v.project?.id ?? null, urls.origin(request)) : null);

  app.post('/v3/auth/tokens', async (request, reply) => {
    const issued = identity.authenticate(parseAuthBody(request.body));
    return reply.code(201).header('X-Subject-Token', issued.token).send(tokenBody(request, issued));
  });

  // Keystone lets a user validate their own tokens and an admin anyone's.
  const subject = (request: FastifyRequest): ValidToken => {
    const caller = callerToken(identity, request);
    const subjectId = header(request, 'x-subject-token');
    if (!subjectId) throw badRequest('Expecting to find X-Subject-Token in header.');
    const subjectToken = identity.validate(subjectId);
    if (!subjectToken) throw new KeystoneError(404, 'Failed to validate token');
    if (!isAdmin(caller) && caller.user.id !== subjectToken.user.id) throw forbidden('identity:validate_token');
    return subjectToken;
  };

  app.get('/v3/auth/tokens', { exposeHeadRoute: false }, async (request, reply) => {
    const v = subject(request);
    return reply.header('X-Subject-Token', v.token).send(tokenBody(request, v));
  });

  app.head('/v3/auth/tokens', async (request, reply) => {
    const v = subject(request);
    return reply.code(200).header('X-Subject-Token', v.token).send();
  });

  // keystoneauth, openstackclient (project list --my-projects) and tempest's cred
  // helpers ask this for the projects the token's user may scope to.
  app.get('/v3/auth/projects', async (request) => {
    const caller = callerToken(identity, request);
    const base = urls.identityBase(request);
    const projects = identity.directory.projectsOfUser(caller.user.id).map((p) => renderProject(p, base));
    return renderCollection('projects', projects, `${base}/v3/auth/projects`);
  });

  // Domain-scoped tokens are not implemented, so no domain is ever a valid scope.
  app.get('/v3/auth/domains', async (request) => {
    callerToken(identity, request);
    return renderCollection('domains', [], `${urls.identityBase(request)}/v3/auth/domains`);
  });

  // tempest's CatalogClient; keystone refuses it for unscoped tokens.
  app.get('/v3/auth/catalog', async (request) => {
    const caller = callerToken(identity, request);
    if (!caller.project) throw forbidden('identity:get_auth_catalog');
    return {
      catalog: renderCatalog(identity.catalog, caller.project.id, urls.origin(request)),
      links: { self: `${urls.identityBase(request)}/v3/auth/catalog`, previous: null, next: null },
    };
  });
};
