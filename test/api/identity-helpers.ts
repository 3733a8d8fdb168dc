// Shared fixtures for the identity tests: a small directory and an app built on it.
import { randomBytes } from 'node:crypto';

import Fastify, { type FastifyInstance } from 'fastify';

import { identitySchema } from '../../src/config/schema.js';
import { decorateRequestContext, requireToken } from '../../src/api/context.js';
import { IdentityService, defaultCatalogServices, identityPlugin } from '../../src/api/identity/index.js';

export const identityConfig = identitySchema.parse({
  projects: [{ name: 'admin' }, { name: 'demo' }, { name: 'ops', domain: 'Corp' }],
  users: [
    { name: 'admin', password: 'admin-pw', roles: [{ project: 'admin', role: 'admin' }, { project: 'demo', role: 'admin' }] },
    { name: 'demo', password: 'demo-pw', roles: [{ project: 'demo', role: 'member' }] },
    { name: 'viewer', password: 'viewer-pw', roles: [{ project: 'demo', role: 'reader' }] },
    { name: 'carol', password: 'carol-pw', domain: 'Corp', roles: [{ project: 'ops', role: 'member' }, { project: 'demo', projectDomain: 'Default', role: 'member' }] },
    { name: 'nobody', password: 'nobody-pw' },
  ],
  tokenTtlMs: 60_000,
});

export interface TestApp {
  app: FastifyInstance;
  identity: IdentityService;
  clock: { now: number };
}

export async function buildApp(opts: { key?: Buffer; identityPrefix?: string; publicUrl?: string } = {}): Promise<TestApp> {
  const clock = { now: Date.parse('2030-01-01T00:00:00Z') };
  const identity = new IdentityService({
    config: identityConfig,
    tokenKey: opts.key ?? randomBytes(32),
    catalog: defaultCatalogServices({ identityPrefix: opts.identityPrefix ?? '' }),
    now: () => clock.now,
  });
  const app = Fastify({ logger: false });
  decorateRequestContext(app);
  await app.register(identityPlugin, { identity, identityPrefix: opts.identityPrefix, publicUrl: opts.publicUrl });
  // Stand-in for a Cinder route, to exercise requireToken().
  app.get('/v3/:project_id/ctx', { preHandler: requireToken(identity, { wwwAuthenticateUri: 'http://bulwark/identity' }) }, async (request) => request.ctx);
  await app.ready();
  return { app, identity, clock };
}

type Ref = { id: string } | { name: string };

export function passwordBody(user: Ref & { domain?: Ref }, password: string, project?: Ref & { domain?: Ref }): unknown {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { ...user, password } } },
      ...(project ? { scope: { project } } : {}),
    },
  };
}

export async function issue(app: FastifyInstance, body: unknown, url = '/v3/auth/tokens') {
  return app.inject({ method: 'POST', url, payload: body as Record<string, unknown> });
}

/** A project-scoped token for a Default-domain user, asserting success. */
export async function tokenFor(app: FastifyInstance, user: string, password: string, project: string): Promise<string> {
  const res = await issue(app, passwordBody({ name: user, domain: { name: 'Default' } }, password, { name: project, domain: { name: 'Default' } }));
  if (res.statusCode !== 201) throw new Error(`token for ${user}: ${res.statusCode} ${res.body}`);
  return String(res.headers['x-subject-token']);
}
