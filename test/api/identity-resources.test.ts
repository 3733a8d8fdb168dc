import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { loadOrCreateTokenKey, projectId, userId } from '../../src/api/identity/index.js';
import { uuidV5Hex } from '../../src/api/identity/ids.js';
import { buildApp, tokenFor } from './identity-helpers.js';

describe('ids', () => {
  it('are RFC 4122 v5 UUIDs in keystone hex form, stable and domain-scoped', () => {
    // RFC 4122 / Python uuid.uuid5(uuid.NAMESPACE_DNS, 'www.example.com').
    assert.equal(uuidV5Hex('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com'), '2ed6657de927568b95e12665a8aea6a2');
    assert.match(projectId('Default', 'admin'), /^[0-9a-f]{12}5[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    assert.equal(projectId('Default', 'admin'), projectId('Default', 'admin'));
    assert.notEqual(projectId('Default', 'admin'), projectId('Corp', 'admin'));
    assert.notEqual(projectId('Default', 'admin'), userId('Default', 'admin'));
  });
});

describe('token key file', () => {
  it('is created with 32 random bytes and mode 0600, then reused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bulwark-key-'));
    try {
      const path = join(dir, 'sub', 'token.key');
      const [a, b] = await Promise.all([loadOrCreateTokenKey(path), loadOrCreateTokenKey(path)]);
      assert.equal(a.length, 32);
      assert.deepEqual(a, b, 'concurrent creators agree on one key');
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual(await loadOrCreateTokenKey(path), a);
      const loose = join(dir, 'loose.key');
      await writeFile(loose, Buffer.alloc(32, 1), { mode: 0o644 });
      await assert.rejects(loadOrCreateTokenKey(loose), /chmod 600/);
      const short = join(dir, 'short.key');
      await writeFile(short, 'x', { mode: 0o600 });
      await assert.rejects(loadOrCreateTokenKey(short), /at least 32/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('identity resources', () => {
  it('GET /v3/auth/projects lists the projects the user has roles on', async () => {
    const { app } = await buildApp();
    const admin = await tokenFor(app, 'admin', 'admin-pw', 'admin');
    const res = await app.inject({ method: 'GET', url: '/v3/auth/projects', headers: { 'x-auth-token': admin, host: 'h:1' } });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual(body.projects.map((p: { name: string }) => p.name).sort(), ['admin', 'demo']);
    assert.deepEqual(body.links, { self: 'http://h:1/v3/auth/projects', previous: null, next: null });
    const p = body.projects.find((x: { name: string }) => x.name === 'admin');
    assert.deepEqual(p, {
      id: projectId('Default', 'admin'),
      name: 'admin',
      domain_id: 'default',
      description: '',
      enabled: true,
      is_domain: false,
      parent_id: 'default',
      tags: [],
      options: {},
      links: { self: `http://h:1/v3/projects/${projectId('Default', 'admin')}` },
    });
  });

  it('lets admins list and filter projects and users, and forbids members', async () => {
    const { app } = await buildApp();
    const admin = await tokenFor(app, 'admin', 'admin-pw', 'admin');
    const demo = await tokenFor(app, 'demo', 'demo-pw', 'demo');
    const get = (url: string, token: string) => app.inject({ method: 'GET', url, headers: { 'x-auth-token': token } });

    assert.equal((await get('/v3/projects', admin)).json().projects.length, 3);
    const byName = (await get('/v3/projects?name=ops', admin)).json().projects;
    assert.deepEqual(byName.map((p: { id: string }) => p.id), [projectId('Corp', 'ops')]);
    assert.equal((await get('/v3/projects?name=ops&domain_id=default', admin)).json().projects.length, 0);
    const forbidden = await get('/v3/projects', demo);
    assert.equal(forbidden.statusCode, 403);
    assert.equal(forbidden.json().error.title, 'Forbidden');

    assert.equal((await get(`/v3/projects/${projectId('Default', 'demo')}`, demo)).statusCode, 200);
    assert.equal((await get(`/v3/projects/${projectId('Default', 'admin')}`, demo)).statusCode, 403);
    const missing = await get('/v3/projects/demo', admin);
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), { error: { code: 404, message: 'Could not find project: demo.', title: 'Not Found' } });

    assert.equal((await get(`/v3/users/${userId('Default', 'demo')}`, demo)).json().user.name, 'demo');
    assert.equal((await get(`/v3/users/${userId('Default', 'admin')}`, demo)).statusCode, 403);
    assert.equal((await get('/v3/users?name=carol', admin)).json().users[0].domain_id, (await get('/v3/domains?name=Corp', admin)).json().domains[0].id);
    assert.equal((await get(`/v3/users/${userId('Default', 'demo')}/projects`, demo)).json().projects[0].name, 'demo');
    assert.equal((await get('/v3/domains/default', demo)).json().domain.name, 'Default');
    assert.equal((await get('/v3/domains', demo)).statusCode, 403);
    assert.deepEqual((await get('/v3/roles', admin)).json().roles.map((r: { name: string }) => r.name), ['admin', 'member', 'reader']);
    assert.equal((await get('/v3/projects', 'not-a-token')).statusCode, 401);
  });

  it('serves the catalog, services and endpoints', async () => {
    const { app } = await buildApp();
    const admin = await tokenFor(app, 'admin', 'admin-pw', 'admin');
    const demo = await tokenFor(app, 'demo', 'demo-pw', 'demo');
    const get = (url: string, token: string) => app.inject({ method: 'GET', url, headers: { 'x-auth-token': token, host: 'h:1' } });
    const catalog = (await get('/v3/auth/catalog', demo)).json().catalog;
    const vol = catalog.find((s: { type: string }) => s.type === 'volumev3');
    assert.equal(vol.endpoints[0].url, `http://h:1/v3/${projectId('Default', 'demo')}`);
    assert.deepEqual((await get('/v3/auth/domains', demo)).json().domains, []);
    const endpoints = (await get('/v3/endpoints', admin)).json().endpoints;
    assert.ok(endpoints.some((e: { url: string }) => e.url === 'http://h:1/v3/%(project_id)s'));
    const services = (await get('/v3/services', admin)).json().services;
    assert.deepEqual(services.map((s: { type: string }) => s.type), ['identity', 'volumev3', 'block-storage', 'image']);
    assert.equal((await get('/v3/endpoints', demo)).statusCode, 403);
  });
});
