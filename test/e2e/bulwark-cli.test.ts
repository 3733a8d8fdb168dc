// The operator CLI (`node bin/bulwark.js ...`) against a live deployment, with
// credentials only in the environment, as `source DIR/openrc` gives them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';

const run = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);

describe('bulwark CLI', () => {
  let d: Deployment;
  const cli = async (args: string[]): Promise<string> => {
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      OS_AUTH_URL: `${d.url}/identity/v3`,
      OS_USERNAME: 'alice',
      OS_PASSWORD: 'alice-pw',
      OS_PROJECT_NAME: 'alpha',
      OS_USER_DOMAIN_NAME: 'Default',
      OS_PROJECT_DOMAIN_NAME: 'Default',
      OS_VOLUME_API_VERSION: '3.64',
    };
    return (await run(process.execPath, [BIN, ...args], { env, timeout: 60_000 })).stdout;
  };
  before(async () => {
    d = await deploy();
  });
  after(async () => d?.stop());

  it('creates, lists, snapshots and deletes with table and JSON output', async () => {
    const created = JSON.parse(await cli(['volume', 'create', '--size', '1', '--name', 'cli-vol', '--wait', '--json'])) as { id: string; status: string };
    assert.equal(created.status, 'available');
    const table = await cli(['volume', 'list']);
    assert.match(table, /cli-vol/);
    assert.match(table, /available/);
    const snap = JSON.parse(await cli(['snapshot', 'create', '--volume', 'cli-vol', '--name', 'cli-snap', '--wait', '--json'])) as { id: string; status: string };
    assert.equal(snap.status, 'available');
    const listed = JSON.parse(await cli(['snapshot', 'list', '--json'])) as { id: string }[];
    assert.ok(listed.some((s) => s.id === snap.id));
    await cli(['snapshot', 'delete', snap.id, '--wait']);
    await cli(['volume', 'delete', 'cli-vol', '--wait']);
    const after = JSON.parse(await cli(['volume', 'list', '--json'])) as unknown[];
    assert.equal(after.length, 0);
    await assert.rejects(cli(['volume', 'show', '00000000-0000-4000-8000-000000000000']), /could not be found|No volume/i);
  });
});
