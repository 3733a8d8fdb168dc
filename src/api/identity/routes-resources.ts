// Read-only /v3/projects, /v3/users, /v3/domains and /v3/roles. openstackclient
// resolves names with GET /v3/<kind>/<name-or-id>, then on 404 GET /v3/<kind>?name=
// (osc_lib.utils.find_resource), and treats a 403 as "use the name as the id";
// so the policy mirrors keystone's defaults: admins see everything, others only
// their own user, project and domain.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { ROLE_NAMES } from './directory.js';
import { badRequest, forbidden, notFound } from './errors.js';
import { roleId } from './ids.js';
import { type RouteDeps, callerToken, isAdmin } from './routes-auth.js';
import { renderCollection, renderDomain, renderProject, renderRole, renderUser } from './views.js';

const listQuery = z.object({
  name: z.string().optional(),
  domain_id: z.string().optional(),
});

const idParams = z.object({ id: z.string() });

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw badRequest(`Invalid input: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/** The request URL made absolute, for a collection's links.self. */
function selfUrl(origin: string, request: FastifyRequest): string {
  return origin + request.url;
}

export const resourceRoutes: FastifyPluginAsync<RouteDeps> = async (app, { identity, urls }) => {
  const dir = identity.directory;

  app.get('/v3/projects', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_projects');
    const q = parse(listQuery, request.query);
    const base = urls.identityBase(request);
    const projects = dir.listProjects({ name: q.name, domainId: q.domain_id }).map((p) => renderProject(p, base));
    return renderCollection('projects', projects, selfUrl(urls.origin(request), request));
  });

  app.get('/v3/projects/:id', async (request) => {
    const caller = callerToken(identity, request);
    const { id } = parse(idParams, request.params);
    const project = dir.getProject(id);
    if (!project) throw notFound('project', id);
    if (!isAdmin(caller) && caller.project?.id !== id) throw forbidden('identity:get_project');
    return { project: renderProject(project, urls.identityBase(request)) };
  });

  app.get('/v3/users', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_users');
    const q = parse(listQuery, request.query);
    const base = urls.identityBase(request);
    const users = dir.listUsers({ name: q.name, domainId: q.domain_id }).map((u) => renderUser(u, base));
    return renderCollection('users', users, selfUrl(urls.origin(request), request));
  });

  app.get('/v3/users/:id', async (request) => {
    const caller = callerToken(identity, request);
    const { id } = parse(idParams, request.params);
    const user = dir.getUser(id);
    if (!user) throw notFound('user', id);
    if (!isAdmin(caller) && caller.user.id !== id) throw forbidden('identity:get_user');
    return { user: renderUser(user, urls.identityBase(request)) };
  });

  app.get('/v3/users/:id/projects', async (request) => {
    const caller = callerToken(identity, request);
    const { id } = parse(idParams, request.params);
    if (!isAdmin(caller) && caller.user.id !== id) throw forbidden('identity:list_user_projects');
    if (!dir.getUser(id)) throw notFound('user', id);
    const base = urls.identityBase(request);
    const projects = dir.projectsOfUser(id).map((p) => renderProject(p, base));
    return renderCollection('projects', projects, selfUrl(urls.origin(request), request));
  });

  app.get('/v3/domains', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_domains');
    const q = parse(listQuery, request.query);
    const base = urls.identityBase(request);
    const domains = dir.listDomains({ name: q.name }).map((d) => renderDomain(d, base));
    return renderCollection('domains', domains, selfUrl(urls.origin(request), request));
  });

  app.get('/v3/domains/:id', async (request) => {
    const caller = callerToken(identity, request);
    const { id } = parse(idParams, request.params);
    const domain = dir.findDomain({ id });
    if (!domain) throw notFound('domain', id);
    const own = caller.user.domain.id === id || caller.project?.domain.id === id;
    if (!isAdmin(caller) && !own) throw forbidden('identity:get_domain');
    return { domain: renderDomain(domain, urls.identityBase(request)) };
  });

  app.get('/v3/roles', async (request) => {
    if (!isAdmin(callerToken(identity, request))) throw forbidden('identity:list_roles');
    const q = parse(listQuery, request.query);
    const base = urls.identityBase(request);
    const roles = ROLE_NAMES.filter((r) => q.name === undefined || r === q.name).map((r) => renderRole(r, base));
    return renderCollection('roles', roles, selfUrl(urls.origin(request), request));
  });

  app.get('/v3/roles/:id', async (request) => {
    const caller = callerToken(identity, request);
    const { id } = parse(idParams, request.params);
    const role = ROLE_NAMES.find((r) => roleId(r) === id);
    if (!role) throw notFound('role', id);
    if (!isAdmin(caller)) throw forbidden('identity:get_role');
    return { role: renderRole(role, urls.identityBase(request)) };
  });
};
