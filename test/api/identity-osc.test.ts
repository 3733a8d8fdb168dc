// End to end: Debian's openstackclient (keystoneauth discovery + password auth)
// against the identity plugin on a loopback port. Skipped where it is not installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import Fastify, { type FastifyInstance } from 'fastify';

import { IdentityService, defaultCatalogServices, identityPlugin, projectId, userId } from '../../src/api/identity/index.js';
import { identityConfig } from './identity-helpers.js';

const OPENSTACK = '/usr/bin/openstack';
const run = promisify(execFile);

describe('openstackclient', { skip: existsSync(OPENSTACK) ? false : `${OPENSTACK} not installed` }, () => {
  let app: FastifyInstance;
  let authUrl = '';
  let home = '';

  before(async () => {
    const identity = new IdentityService({ config: identityConfig, tokenKey: randomBytes(32), catalog: defaultCatalogServices() });
    app = Fastify({ logger: false });
    await app.register(identityPlugin, { identity });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    authUrl = `${address}/v3`;
    // An empty HOME keeps any clouds.yaml or cache of the developer out of the test.
    home = await mkdtemp(join(tmpdir(), 'bulwark-osc-'));
  });

  after(async () => {
    await app.close();
    await rm(home, { recursive: true, force: true });
  });

  /** Runs openstack with credentials in the environment only (never in argv). */
  async function openstack(args: string[], creds: Record<string, string>): Promise<string> {
    const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8' };
    Object.assign(env, { OS_AUTH_URL: authUrl, OS_IDENTITY_API_VERSION: '3', OS_AUTH_TYPE: 'password', OS_INTERFACE: 'public', OS_REGION_NAME: 'RegionOne' }, creds);
    const { stdout } = await run(OPENSTACK, args, { env, timeout: 60_000 });
    return stdout;
  }

  it('issues a token scoped by project and domain names', async () => {
    const out = await openstack(['token', 'issue', '-f', 'json'], {
      OS_USERNAME: 'demo',
      OS_PASSWORD: 'demo-pw',
      OS_USER_DOMAIN_NAME: 'Default',
      OS_PROJECT_NAME: 'demo',
      OS_PROJECT_DOMAIN_NAME: 'Default',
    });
    const token = JSON.parse(out) as { id: string; project_id: string; user_id: string; expires: string };
    assert.equal(token.project_id, projectId('Default', 'demo'));
    assert.equal(token.user_id, userId('Default', 'demo'));
    assert.match(token.id, /^[A-Za-z0-9_-]+$/);
  });

  it('issues a token scoped by ids, for a user outside the default domain', async () => {
    const out = await openstack(['token', 'issue', '-f', 'json'], {
      OS_USERNAME: 'carol',
      OS_PASSWORD: 'carol-pw',
      OS_USER_DOMAIN_NAME: 'Corp',
      OS_PROJECT_ID: projectId('Corp', 'ops'),
    });
    assert.equal(JSON.parse(out).project_id, projectId('Corp', 'ops'));
  });

  it('resolves a project by name (token peek, 404 by id, then ?name=)', async () => {
    const out = await openstack(['project', 'show', 'demo', '--domain', 'Default', '-f', 'json'], {
      OS_USERNAME: 'admin',
      OS_PASSWORD: 'admin-pw',
      OS_USER_DOMAIN_ID: 'default',
      OS_PROJECT_NAME: 'admin',
      OS_PROJECT_DOMAIN_ID: 'default',
    });
    assert.equal(JSON.parse(out).id, projectId('Default', 'demo'));
  });

  it('fails with a wrong password', async () => {
    await assert.rejects(
      openstack(['token', 'issue', '-f', 'json'], {
        OS_USERNAME: 'demo',
        OS_PASSWORD: 'wrong',
        OS_USER_DOMAIN_NAME: 'Default',
        OS_PROJECT_NAME: 'demo',
        OS_PROJECT_DOMAIN_NAME: 'Default',
      }),
      (err: Error & { stderr?: string }) => /HTTP 401/.test(err.stderr ?? ''),
    );
  });
});
