// Debian's python3-openstackclient and python3-cinderclient drive volumes,
// snapshots, types, groups, group snapshots and attachments against Bulwark.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';

const run = promisify(execFile);
const OPENSTACK = '/usr/bin/openstack';
const CINDER = '/usr/bin/cinder';

describe('real OpenStack clients', { skip: !existsSync(OPENSTACK) && 'python3-openstackclient is not installed' }, () => {
  let d: Deployment;
  const env = (user: 'admin' | 'alice', version = '3.64'): NodeJS.ProcessEnv => ({
    PATH: '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    OS_AUTH_URL: `${d.url}/identity/v3`,
    OS_USERNAME: user,
    OS_PASSWORD: user === 'admin' ? 'admin-pw' : 'alice-pw',
    OS_PROJECT_NAME: user === 'admin' ? 'admin' : 'alpha',
    OS_USER_DOMAIN_NAME: 'Default',
    OS_PROJECT_DOMAIN_NAME: 'Default',
    OS_IDENTITY_API_VERSION: '3',
    OS_VOLUME_API_VERSION: version,
    OS_AUTH_TYPE: 'password',
    OS_INTERFACE: 'public',
  });
  const osc = async (user: 'admin' | 'alice', args: string[], version?: string): Promise<unknown> => {
    const { stdout } = await run(OPENSTACK, [...args, '-f', 'json'], { env: env(user, version), timeout: 60_000 });
    return stdout.trim() ? JSON.parse(stdout) : null;
  };
  const oscPlain = async (user: 'admin' | 'alice', args: string[], version?: string): Promise<string> =>
    (await run(OPENSTACK, args, { env: env(user, version), timeout: 60_000 })).stdout;
  const cinder = async (user: 'admin' | 'alice', args: string[], version = '3.64'): Promise<string> =>
    (await run(CINDER, ['--os-volume-api-version', version, ...args], { env: env(user, version), timeout: 60_000 })).stdout;
  const waitStatus = async (user: 'admin' | 'alice', what: string[], want: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 300; i++) {
      const o = (await osc(user, what)) as Record<string, unknown>;
      if (o['status'] === want) return o;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what.join(' ')} never became ${want}`);
  };

  before(async () => {
    d = await deploy();
  });
  after(async () => d?.stop());

  it('volume and snapshot commands', async () => {
    const v = (await osc('alice', ['volume', 'create', '--size', '1', 'osc-vol'])) as Record<string, unknown>;
    assert.equal(v['name'], 'osc-vol');
    await waitStatus('alice', ['volume', 'show', 'osc-vol'], 'available');
    const list = (await osc('alice', ['volume', 'list'])) as Record<string, unknown>[];
    assert.ok(list.some((x) => x['Name'] === 'osc-vol'));
    await oscPlain('alice', ['volume', 'set', '--name', 'osc-renamed', '--property', 'tier=gold', 'osc-vol']);
    const shown = (await osc('alice', ['volume', 'show', 'osc-renamed'])) as Record<string, unknown>;
    assert.match(JSON.stringify(shown['properties']), /gold/);
    await osc('alice', ['volume', 'snapshot', 'create', '--volume', 'osc-renamed', 'osc-snap']);
    await waitStatus('alice', ['volume', 'snapshot', 'show', 'osc-snap'], 'available');
    const snaps = (await osc('alice', ['volume', 'snapshot', 'list'])) as Record<string, unknown>[];
    assert.ok(snaps.some((x) => x['Name'] === 'osc-snap'));
    await osc('alice', ['volume', 'create', '--snapshot', 'osc-snap', 'osc-from-snap']);
    await waitStatus('alice', ['volume', 'show', 'osc-from-snap'], 'available');
    await oscPlain('alice', ['volume', 'set', '--size', '2', 'osc-from-snap']);
    const grown = await waitStatus('alice', ['volume', 'show', 'osc-from-snap'], 'available');
    assert.equal(grown['size'], 2);
    await oscPlain('alice', ['volume', 'delete', 'osc-from-snap']);
    await oscPlain('alice', ['volume', 'snapshot', 'delete', 'osc-snap']);
    for (let i = 0; i < 100; i++) {
      const left = (await osc('alice', ['volume', 'snapshot', 'list'])) as unknown[];
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await oscPlain('alice', ['volume', 'delete', 'osc-renamed']);
  });

  it('type, group type, group, group snapshot and attachment commands', async () => {
    const t = (await osc('admin', ['volume', 'type', 'create', '--property', 'bulwark:tier=fast', 'fast'])) as Record<string, unknown>;
    assert.equal(t['name'], 'fast');
    const types = (await osc('alice', ['volume', 'type', 'list'])) as Record<string, unknown>[];
    assert.ok(types.some((x) => x['Name'] === 'fast'));
    const gt = (await osc('admin', ['volume', 'group', 'type', 'create', 'osc-gt'], '3.11')) as Record<string, unknown>;
    assert.equal(gt['Name'], 'osc-gt');
    const g = (await osc('alice', ['volume', 'group', 'create', '--name', 'osc-group', 'osc-gt', 'fast'], '3.13')) as Record<string, unknown>;
    const groupId = String(g['ID'] ?? g['id']);
    // Debian's openstackclient cannot `volume group show` ("GroupManager has no
    // attribute show"); cinderclient can.
    assert.match(await cinder('alice', ['group-show', groupId]), /\|\s*status\s*\|\s*available\s*\|/);
    const created = await cinder('alice', ['create', '--group-id', groupId, '--volume-type', 'fast', '--name', 'cinder-member', '1']);
    assert.match(created, /cinder-member/);
    await waitStatus('alice', ['volume', 'show', 'cinder-member'], 'available');
    const gs = (await osc('alice', ['volume', 'group', 'snapshot', 'create', '--name', 'osc-gs', groupId], '3.14')) as Record<string, unknown>;
    const gsId = String(gs['ID'] ?? gs['id']);
    for (let i = 0; i < 100 && !/available/.test(await cinder('alice', ['group-snapshot-show', gsId])); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(await cinder('alice', ['group-snapshot-list']), /osc-gs\s*\|/);
    assert.match(await cinder('alice', ['group-snapshot-show', gsId]), /\|\s*status\s*\|\s*available\s*\|/);

    // openstackclient's attachment commands need a compute endpoint; cinderclient's do not.
    const vol = (await osc('alice', ['volume', 'show', 'cinder-member'])) as Record<string, unknown>;
    const att = await cinder('alice', ['attachment-create', '--connect', 'True', '--host', 'testhost', '--mode', 'rw', String(vol['id']), '9b6ea4c5-8b9e-4c2c-a0f3-5b1f3b1e8a11'], '3.54');
    assert.match(att, /driver_volume_type\s*\|\s*nbd/);
    const attId = /\|\s*id\s*\|\s*([0-9a-f-]{36})/.exec(att)?.[1];
    assert.ok(attId, att);
    assert.match(await cinder('alice', ['attachment-list'], '3.27'), new RegExp(attId));
    await cinder('alice', ['attachment-delete', attId], '3.27');
    assert.doesNotMatch(await cinder('alice', ['attachment-list'], '3.27'), new RegExp(attId));
    await oscPlain('alice', ['volume', 'group', 'snapshot', 'delete', gsId], '3.14');
    for (let i = 0; i < 100 && /osc-gs/.test(await cinder('alice', ['group-snapshot-list'])); i++) await new Promise((r) => setTimeout(r, 100));
    await oscPlain('alice', ['volume', 'group', 'delete', '--force', groupId], '3.13');
    for (let i = 0; i < 100 && /osc-group/.test(await cinder('alice', ['group-list'])); i++) await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(await cinder('alice', ['group-list']), /osc-group/);
    assert.doesNotMatch(await cinder('alice', ['list']), /cinder-member/, 'deleting the group with --force deleted its volume');
  });
});
