// `bulwark backup|repository` against a live deployment (credentials only in
// the environment): create with a progress bar, list/show, restore into a new
// and over an existing volume, export/import, verify and gc.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';
import { MiB, volumeHash, writeAt } from './backup-helpers.js';

const run = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);
type Row = Record<string, unknown>;

describe('bulwark backup and repository commands', () => {
  let d: Deployment | undefined;
  let dir = '';
  const cli = async (user: 'alice' | 'admin', args: string[]): Promise<{ stdout: string; stderr: string }> => {
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      OS_AUTH_URL: `${d!.url}/identity/v3`,
      OS_USERNAME: user,
      OS_PASSWORD: `${user}-pw`,
      OS_PROJECT_NAME: user === 'admin' ? 'admin' : 'alpha',
      OS_VOLUME_API_VERSION: '3.64',
    };
    return run(process.execPath, [BIN, ...args], { env, timeout: 120_000 });
  };
  const json = async <T = Row>(user: 'alice' | 'admin', args: string[]): Promise<T> => JSON.parse((await cli(user, [...args, '--json'])).stdout) as T;
  const fails = async (user: 'alice' | 'admin', args: string[]): Promise<string> => {
    try {
      await cli(user, args);
    } catch (err) {
      assert.equal((err as { code?: number }).code, 1);
      return String((err as { stderr?: unknown }).stderr);
    }
    throw new Error(`bulwark ${args.join(' ')} succeeded`);
  };
  before(async () => {
    d = await deploy();
    dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-rec-'));
  });
  after(async () => {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('backs up, restores, exports, imports, verifies and collects garbage', async () => {
    const vol = await json('alice', ['volume', 'create', '--size', '1', '--name', 'cli-bvol', '--wait']);
    const volId = String(vol['id']);
    await writeAt(d!.member, volId, [{ offset: 0, data: randomBytes(8 * MiB) }]);

    const created = await cli('alice', ['backup', 'create', '--volume', 'cli-bvol', '--name', 'cb1', '--wait', '--json']);
    const cb1 = JSON.parse(created.stdout) as Row;
    assert.equal(cb1['status'], 'available');
    // stderr is a pipe here: plain lines, the last one a full bar.
    assert.match(created.stderr, new RegExp(`backup ${String(cb1['id'])}: \\[#{30}\\] 100% 8\\.0 MiB / 8\\.0 MiB available\\n$`));
    assert.doesNotMatch(created.stderr, /\r/);

    await writeAt(d!.member, volId, [{ offset: 100 * MiB, data: randomBytes(MiB) }]);
    const hash = await volumeHash(d!.member, volId);
    const cb2 = await json('alice', ['backup', 'create', '--volume', volId, '--name', 'cb2', '--incremental', '--wait']);
    assert.equal(cb2['is_incremental'], true);

    const listed = await json<Row[]>('alice', ['backup', 'list']);
    assert.deepEqual(listed.map((b) => b['name']).sort(), ['cb1', 'cb2']);
    assert.match((await cli('alice', ['backup', 'list', '--long'])).stdout, /\| cb2 +\| available \|/);
    assert.equal((await json('alice', ['backup', 'show', 'cb1']))['has_dependent_backups'], true);
    assert.match(await fails('alice', ['backup', 'delete', 'cb1']), /Incremental backups exist for this backup/);

    const r = await json('alice', ['backup', 'restore', 'cb2', '--new', '--name', 'cli-restored', '--wait']);
    const restoredId = String(r['volume_id']);
    assert.equal(r['volume_name'], 'cli-restored');
    assert.equal(await volumeHash(d!.member, restoredId), hash);
    await writeAt(d!.member, restoredId, [{ offset: 500 * MiB, data: randomBytes(MiB) }]);
    await cli('alice', ['backup', 'restore', 'cb2', '--volume', 'cli-restored', '--wait']);
    assert.equal(await volumeHash(d!.member, restoredId), hash, 'restoring over a volume replaces every byte, zeros included');

    // export/import: the same record under a new id shares the manifest.
    assert.match(await fails('alice', ['backup', 'export', 'cb2']), /Policy does not allow/);
    const rec = await json('admin', ['backup', 'export', String(cb2['id'])]);
    const decoded = JSON.parse(Buffer.from(String(rec['backup_url']), 'base64').toString('utf8')) as Row;
    const copyId = randomUUID();
    const file = join(dir, 'copy.json');
    writeFileSync(file, JSON.stringify({ ...rec, backup_url: Buffer.from(JSON.stringify({ ...decoded, id: copyId, parent_id: null })).toString('base64') }));
    const imported = await json('admin', ['backup', 'import', '--record-file', file, '--wait']);
    assert.equal(imported['id'], copyId);
    assert.equal(imported['status'], 'available');

    const v = await json<{ checked: number; backups: string[]; damaged: unknown[] }>('admin', ['repository', 'verify', '--backup', copyId]);
    assert.deepEqual(v.backups, [String(cb2['id']), copyId].sort(), 'both rows of the shared manifest');
    assert.deepEqual(v.damaged, []);
    assert.equal(v.checked, 9, 'the incremental needs the 8 chunks it inherits and the one it changed');
    assert.match((await cli('admin', ['repository', 'verify'])).stdout, /: 0 damaged, 0 unreadable manifests/);
    assert.match(await fails('alice', ['repository', 'verify']), /Policy does not allow/);

    await cli('admin', ['backup', 'delete', copyId, String(cb2['id']), '--wait']);
    await cli('alice', ['backup', 'delete', 'cb1', '--wait']);
    assert.deepEqual(await json<Row[]>('alice', ['backup', 'list']), []);
    const gc = await json('admin', ['repository', 'gc']);
    assert.equal(gc['manifests'], 0);
    // 8 chunks of the full backup and the one the incremental changed.
    assert.equal(gc['chunks_present'], 9, JSON.stringify(gc));
    assert.equal(gc['chunks_deleted'], 9);
    assert.equal(gc['chunks_kept'], 0);
  });
});
