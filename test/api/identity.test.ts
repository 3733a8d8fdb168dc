import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { defaultCatalogServices, projectId, renderCatalog, roleId, userId } from '../../src/api/identity/index.js';
import { buildApp, issue, passwordBody, tokenFor } from './identity-helpers.js';

const DEFAULT = { name: 'Default' };
type TokenDoc = {
  token: {
    methods: string[];
    user: { id: string; name: string; domain: { id: string; name: string }; password_expires_at: null };
    project?: { id: string; name: string; domain: { id: string; name: string } };
    roles?: { id: string; name: string }[];
    catalog?: { type: string; name: string; endpoints: { interface: string; url: string; region: string }[] }[];
    expires_at: string;
    issued_at: string;
    audit_ids: string[];
    is_domain?: boolean;
  };
};

describe('keystone discovery', () => {
  it('GET / is 300 with versions.values, GET /v3 is the v3 version', async () => {
    const { app } = await buildApp();
    const root = await app.inject({ method: 'GET', url: '/', headers: { host: 'k.example:5000' } });
    assert.equal(root.statusCode, 300);
    const values = root.json().versions.values;
    assert.equal(values.length, 1);
    assert.equal(values[0].id, 'v3.14');
    assert.equal(values[0].status, 'stable');
    assert.deepEqual(values[0].links, [{ rel: 'self', href: 'http://k.example:5000/v3/' }]);
    const v3 = await app.inject({ method: 'GET', url: '/v3' });
    assert.equal(v3.statusCode, 200);
    assert.equal(v3.json().version.media_types, undefined);
    assert.equal(v3.json().version['media-types'][0].type, 'application/vnd.openstack.identity-v3+json');
  });

  it('honours the identity prefix and the public URL', async () => {
    const { app } = await buildApp({ identityPrefix: '/identity', publicUrl: 'https://cloud.example/' });
    const v3 = await app.inject({ method: 'GET', url: '/identity/v3/' });
    assert.equal(v3.json().version.links[0].href, 'https://cloud.example/identity/v3/');
    const token = await tokenFor(app, 'demo', 'demo-pw', 'demo').catch(() => null);
    assert.equal(token, null, 'routes must not answer outside the prefix');
    const res = await issue(app, passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw', { name: 'demo', domain: DEFAULT }), '/identity/v3/auth/tokens');
    assert.equal(res.statusCode, 201);
    const ids = (res.json() as TokenDoc).token.catalog!.find((s) => s.type === 'identity')!;
    assert.equal(ids.endpoints[0]!.url, 'https://cloud.example/identity/v3');
  });

  it('serves Glance discovery: 300 at the root, 200 at /versions', async () => {
    const { app } = await buildApp();
    const root = await app.inject({ method: 'GET', url: '/image/', headers: { host: 'h:1' } });
    assert.equal(root.statusCode, 300);
    assert.equal(root.json().versions[0].id, 'v2.18');
    assert.equal(root.json().versions[0].status, 'CURRENT');
    assert.equal(root.json().versions[0].links[0].href, 'http://h:1/image/v2/');
    const versions = await app.inject({ method: 'GET', url: '/image/versions' });
    assert.equal(versions.statusCode, 200);
    assert.equal(versions.json().versions.at(-1).id, 'v2.0');
  });
});

describe('POST /v3/auth/tokens', () => {
  it('issues a project-scoped token shaped like keystone', async () => {
    const { app, clock } = await buildApp();
    const res = await issue(app, passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw', { name: 'demo', domain: DEFAULT }));
    assert.equal(res.statusCode, 201);
    const token = String(res.headers['x-subject-token']);
    assert.match(token, /^[A-Za-z0-9_-]{100,200}$/);
    const t = (res.json() as TokenDoc).token;
    assert.deepEqual(t.methods, ['password']);
    assert.deepEqual(t.user, { id: userId('Default', 'demo'), name: 'demo', domain: { id: 'default', name: 'Default' }, password_expires_at: null });
    assert.deepEqual(t.project, { id: projectId('Default', 'demo'), name: 'demo', domain: { id: 'default', name: 'Default' } });
    // Implied roles are expanded, as keystone does with admin -> member -> reader.
    assert.deepEqual(t.roles, [{ id: roleId('member'), name: 'member' }, { id: roleId('reader'), name: 'reader' }]);
    assert.equal(t.is_domain, false);
    assert.equal(t.issued_at, '2030-01-01T00:00:00.000000Z');
    assert.equal(t.expires_at, new Date(clock.now + 60_000).toISOString().replace('Z', '000Z'));
    assert.equal(t.audit_ids.length, 1);
    assert.match(t.audit_ids[0]!, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(t.catalog!.map((s) => s.type), ['identity', 'volumev3', 'block-storage', 'image']);
  });

  it('rejects a wrong password, an unknown user and a missing role with 401 in keystone shape', async () => {
    const { app } = await buildApp();
    const cases = [
      passwordBody({ name: 'demo', domain: DEFAULT }, 'wrong', { name: 'demo', domain: DEFAULT }),
      passwordBody({ name: 'ghost', domain: DEFAULT }, 'demo-pw', { name: 'demo', domain: DEFAULT }),
      passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw', { name: 'admin', domain: DEFAULT }),
      passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw', { name: 'nope', domain: DEFAULT }),
      passwordBody({ name: 'demo', domain: { name: 'Corp' } }, 'demo-pw'),
    ];
    for (const body of cases) {
      const res = await issue(app, body);
      assert.equal(res.statusCode, 401, JSON.stringify(body));
      assert.deepEqual(res.json(), {
        error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' },
      });
      assert.equal(res.headers['x-subject-token'], undefined);
      assert.match(String(res.headers['www-authenticate']), /^Keystone uri="http:\/\/.+"$/);
    }
  });

  it('answers malformed requests with 400', async () => {
    const { app } = await buildApp();
    const noDomain = await issue(app, passwordBody({ name: 'demo' }, 'demo-pw'));
    assert.equal(noDomain.statusCode, 400);
    assert.equal(noDomain.json().error.title, 'Bad Request');
    const garbage = await app.inject({ method: 'POST', url: '/v3/auth/tokens', headers: { 'content-type': 'application/json' }, payload: '{' });
    assert.equal(garbage.statusCode, 400);
    assert.equal(garbage.json().error.code, 400);
  });

  it('scopes by project id and authenticates by user id', async () => {
    const { app } = await buildApp();
    const res = await issue(app, passwordBody({ id: userId('Default', 'admin') }, 'admin-pw', { id: projectId('Default', 'admin') }));
    assert.equal(res.statusCode, 201);
    const t = (res.json() as TokenDoc).token;
    assert.equal(t.project!.name, 'admin');
    assert.deepEqual(t.roles!.map((r) => r.name), ['admin', 'member', 'reader']);
  });

  it('scopes by name with domain given by id or name, across domains', async () => {
    const { app } = await buildApp();
    const byDomainId = await issue(app, passwordBody({ name: 'carol', domain: { id: 'default' } }, 'carol-pw', { name: 'demo', domain: { id: 'default' } }));
    assert.equal(byDomainId.statusCode, 401, 'carol lives in Corp, not Default');
    const corp = passwordBody({ name: 'carol', domain: { name: 'Corp' } }, 'carol-pw', { name: 'ops', domain: { name: 'Corp' } });
    const res = await issue(app, corp);
    assert.equal(res.statusCode, 201);
    const t = (res.json() as TokenDoc).token;
    assert.equal(t.user.domain.name, 'Corp');
    assert.equal(t.project!.id, projectId('Corp', 'ops'));
    const cross = await issue(app, passwordBody({ name: 'carol', domain: { id: t.user.domain.id } }, 'carol-pw', { name: 'demo', domain: { id: 'default' } }));
    assert.equal(cross.statusCode, 201);
  });

  it('issues unscoped tokens without roles or catalog, and rescopes them with the token method', async () => {
    const { app } = await buildApp();
    const res = await issue(app, passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw'));
    assert.equal(res.statusCode, 201);
    const t = (res.json() as TokenDoc).token;
    assert.equal(t.project, undefined);
    assert.equal(t.roles, undefined);
    assert.equal(t.catalog, undefined);
    const unscoped = String(res.headers['x-subject-token']);
    const rescope = await issue(app, { auth: { identity: { methods: ['token'], token: { id: unscoped } }, scope: { project: { name: 'demo', domain: DEFAULT } } } });
    assert.equal(rescope.statusCode, 201);
    const r = (rescope.json() as TokenDoc).token;
    assert.deepEqual(r.methods, ['token']);
    assert.equal(r.project!.name, 'demo');
    assert.equal(r.expires_at, t.expires_at);
    assert.deepEqual(r.audit_ids.slice(1), t.audit_ids);
  });
});

describe('token validation', () => {
  it('GET and HEAD /v3/auth/tokens validate X-Subject-Token', async () => {
    const { app } = await buildApp();
    const demo = await tokenFor(app, 'demo', 'demo-pw', 'demo');
    const admin = await tokenFor(app, 'admin', 'admin-pw', 'admin');
    const self = await app.inject({ method: 'GET', url: '/v3/auth/tokens', headers: { 'x-auth-token': demo, 'x-subject-token': demo } });
    assert.equal(self.statusCode, 200);
    assert.equal(self.headers['x-subject-token'], demo);
    assert.equal((self.json() as TokenDoc).token.user.name, 'demo');
    const nocat = await app.inject({ method: 'GET', url: '/v3/auth/tokens?nocatalog', headers: { 'x-auth-token': admin, 'x-subject-token': demo } });
    assert.equal(nocat.statusCode, 200);
    assert.equal((nocat.json() as TokenDoc).token.catalog, undefined);
    const head = await app.inject({ method: 'HEAD', url: '/v3/auth/tokens', headers: { 'x-auth-token': admin, 'x-subject-token': demo } });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    const other = await app.inject({ method: 'GET', url: '/v3/auth/tokens', headers: { 'x-auth-token': demo, 'x-subject-token': admin } });
    assert.equal(other.statusCode, 403);
    const bogus = await app.inject({ method: 'GET', url: '/v3/auth/tokens', headers: { 'x-auth-token': admin, 'x-subject-token': 'AAAA' } });
    assert.equal(bogus.statusCode, 404);
    const anon = await app.inject({ method: 'GET', url: '/v3/auth/tokens', headers: { 'x-subject-token': demo } });
    assert.equal(anon.statusCode, 401);
    assert.equal(anon.json().error.title, 'Unauthorized');
  });

  it('rejects expired tokens', async () => {
    const { app, clock } = await buildApp();
    const demo = await tokenFor(app, 'demo', 'demo-pw', 'demo');
    const ok = await app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': demo } });
    assert.equal(ok.statusCode, 200);
    clock.now += 60_000;
    const expired = await app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': demo } });
    assert.equal(expired.statusCode, 401);
    const validate = await app.inject({ method: 'GET', url: '/v3/auth/tokens', headers: { 'x-auth-token': demo, 'x-subject-token': demo } });
    assert.equal(validate.statusCode, 401);
  });

  it('accepts tokens from another process with the same key, rejects other keys and tampering', async () => {
    const key = randomBytes(32);
    const a = await buildApp({ key });
    const b = await buildApp({ key });
    const c = await buildApp();
    const token = await tokenFor(a.app, 'demo', 'demo-pw', 'demo');
    const viaB = await b.app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': token } });
    assert.equal(viaB.statusCode, 200);
    const viaC = await c.app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': token } });
    assert.equal(viaC.statusCode, 401);
    const flipped = token.slice(0, 40) + (token[40] === 'A' ? 'B' : 'A') + token.slice(41);
    assert.equal(a.identity.validate(flipped), null);
    assert.equal(a.identity.validate(token.slice(0, -2)), null);
  });
});

describe('requireToken()', () => {
  it('answers like keystonemiddleware without a valid token', async () => {
    const { app } = await buildApp();
    for (const headers of [{}, { 'x-auth-token': 'garbage' }]) {
      const res = await app.inject({ method: 'GET', url: '/v3/x/ctx', headers });
      assert.equal(res.statusCode, 401);
      assert.deepEqual(res.json(), { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
      assert.equal(res.headers['www-authenticate'], 'Keystone uri="http://bulwark/identity"');
    }
    const unscoped = await issue(app, passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw'));
    const res = await app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': String(unscoped.headers['x-subject-token']) } });
    assert.equal(res.statusCode, 401, 'Cinder needs a project-scoped token');
  });

  it('puts the caller in request.ctx', async () => {
    const { app } = await buildApp();
    const ctxOf = async (user: string, pw: string, project: string) =>
      (await app.inject({ method: 'GET', url: '/v3/x/ctx', headers: { 'x-auth-token': await tokenFor(app, user, pw, project) } })).json();
    assert.deepEqual(await ctxOf('admin', 'admin-pw', 'demo'), {
      userId: userId('Default', 'admin'),
      userName: 'admin',
      projectId: projectId('Default', 'demo'),
      projectName: 'demo',
      roles: ['admin', 'member', 'reader'],
      isAdmin: true,
      isReader: false,
    });
    assert.deepEqual((await ctxOf('demo', 'demo-pw', 'demo')).isReader, false);
    const viewer = await ctxOf('viewer', 'viewer-pw', 'demo');
    assert.deepEqual([viewer.roles, viewer.isAdmin, viewer.isReader], [['reader'], false, true]);
  });
});

describe('catalog', () => {
  it('substitutes the project id in every template style', () => {
    const services = [
      {
        type: 'volumev3',
        name: 'cinderv3',
        endpoints: [
          { interface: 'public' as const, url: 'http://a/v3/%(project_id)s', region: 'RegionOne' },
          { interface: 'internal' as const, url: 'http://a/v3/$(tenant_id)s', region: 'RegionOne' },
          { interface: 'admin' as const, url: '/v3/{project_id}', region: 'RegionOne' },
        ],
      },
      { type: 'identity', name: 'keystone', endpoints: [{ interface: 'public' as const, url: 'http://a/v3', region: 'RegionOne' }] },
    ];
    const [vol, ident] = renderCatalog(services, 'p1', 'http://origin:8776/');
    assert.deepEqual(vol!.endpoints.map((e) => e.url), ['http://a/v3/p1', 'http://a/v3/p1', 'http://origin:8776/v3/p1']);
    assert.equal(vol!.endpoints[0]!.region_id, 'RegionOne');
    assert.match(vol!.id, /^[0-9a-f]{32}$/);
    assert.equal(ident!.endpoints[0]!.url, 'http://a/v3');
    const unscoped = renderCatalog(services, null, 'http://o');
    assert.equal(unscoped[0]!.endpoints.length, 0);
  });

  it('puts the token project in volumev3 and block-storage endpoints', async () => {
    const { app } = await buildApp();
    const res = await app.inject({
      method: 'POST',
      url: '/v3/auth/tokens',
      headers: { host: 'bulwark.test:8776' },
      payload: passwordBody({ name: 'demo', domain: DEFAULT }, 'demo-pw', { name: 'demo', domain: DEFAULT }) as Record<string, unknown>,
    });
    const pid = projectId('Default', 'demo');
    const catalog = (res.json() as TokenDoc).token.catalog!;
    for (const type of ['volumev3', 'block-storage']) {
      const svc = catalog.find((s) => s.type === type)!;
      assert.deepEqual(svc.endpoints.map((e) => e.interface).sort(), ['admin', 'internal', 'public']);
      for (const ep of svc.endpoints) assert.equal(ep.url, `http://bulwark.test:8776/v3/${pid}`);
    }
    assert.equal(catalog.find((s) => s.type === 'image')!.endpoints[0]!.url, 'http://bulwark.test:8776/image');
    assert.equal(defaultCatalogServices({ imagePrefix: null }).length, 3);
    const devstack = defaultCatalogServices({ baseUrl: 'http://h/', identityPrefix: '/identity', volumePrefix: '/volume' });
    assert.deepEqual(devstack.map((s) => s.endpoints[0]!.url), ['http://h/identity/v3', 'http://h/volume/v3/%(project_id)s', 'http://h/volume/v3/%(project_id)s', 'http://h/image']);
  });
});
