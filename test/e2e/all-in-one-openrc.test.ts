// `bulwark all-in-one --data-dir DIR` as its own process writes DIR/openrc (admin)
// and DIR/openrc-member; sourcing either is enough for `openstack volume list`.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';

const run = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);

describe('all-in-one writes working openrc files', { skip: !existsSync('/usr/bin/openstack') && 'python3-openstackclient is not installed' }, () => {
  let dir: string;
  let child: ChildProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-openrc-'));
    child = spawn(process.execPath, [BIN, 'all-in-one', '--data-dir', dir, '--port', String(await freePort()), '--host-name', 'aio-host'], { stdio: 'ignore' });
    for (let i = 0; i < 300 && !existsSync(join(dir, 'openrc-member')); i++) await new Promise((r) => setTimeout(r, 50));
  });
  after(async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it('admin and member can list volumes after sourcing their file', async () => {
    const sh = (file: string, cmd: string) => run('bash', ['-c', `source ${join(dir, file)} && ${cmd}`], { env: { PATH: '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' }, timeout: 60_000 });
    const created = JSON.parse((await sh('openrc-member', 'openstack volume create --size 1 mine -f json')).stdout) as { id: string };
    const mine = JSON.parse((await sh('openrc-member', 'openstack volume list -f json')).stdout) as { ID: string }[];
    assert.deepEqual(mine.map((v) => v.ID), [created.id]);
    const adminOwn = JSON.parse((await sh('openrc', 'openstack volume list -f json')).stdout) as unknown[];
    assert.equal(adminOwn.length, 0, "the admin's own project is empty");
    const adminAll = JSON.parse((await sh('openrc', 'openstack volume list --all-projects -f json')).stdout) as { ID: string }[];
    assert.ok(adminAll.some((v) => v.ID === created.id), 'the admin sees every project with --all-projects');
  });
});
