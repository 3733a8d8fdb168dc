// Debian's python3-openstackclient drives backups against Bulwark: full,
// incremental and snapshot backups, list/show/set, restore into a new volume
// (compared byte for byte with the source) and delete in dependency order.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';
import { OPENSTACK, oscEnv } from '../harness/osc.js';
import { MiB, volumeHash, writeAt } from './backup-helpers.js';

const run = promisify(execFile);
type Row = Record<string, unknown>;

describe('openstackclient volume backup commands', { skip: !existsSync(OPENSTACK) && 'python3-openstackclient is not installed' }, () => {
  let d: Deployment | undefined;
  const env = (): NodeJS.ProcessEnv => oscEnv(d!.url);
  const plain = async (args: string[]): Promise<string> => (await run(OPENSTACK, args, { env: env(), timeout: 60_000 })).stdout;
  const osc = async <T = Row>(args: string[]): Promise<T> => {
    const out = (await plain([...args, '-f', 'json'])).trim();
    return (out ? JSON.parse(out) : null) as T;
  };
  /** Fails with stderr when the command succeeds; returns stderr otherwise. */
  const refused = async (args: string[]): Promise<string> => {
    try {
      await plain(args);
    } catch (err) {
      return String((err as { stderr?: unknown }).stderr ?? err);
    }
    throw new Error(`openstack ${args.join(' ')} succeeded`);
  };
  const waitStatus = async (what: string[], want: string, timeoutMs = 120_000): Promise<Row> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = await osc(what);
      if (o['status'] === want) return o;
      if (String(o['status']).startsWith('error')) throw new Error(`${what.join(' ')} went to ${String(o['status'])}`);
      if (Date.now() > deadline) throw new Error(`${what.join(' ')} still ${String(o['status'])}, never ${want}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const waitGone = async (name: string): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while ((await osc<Row[]>(['volume', 'backup', 'list'])).some((b) => b['Name'] === name)) {
      if (Date.now() > deadline) throw new Error(`backup ${name} was never deleted`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  /**
   * `volume backup restore`: Debian's osc 6.0 sends the request, then fails to
   * print the answer ("cannot unpack non-iterable VolumeBackupsRestore
   * object", its ShowOne returns the manager's object). Only that failure is
   * tolerated; the server-side result is checked by the caller.
   */
  const restoreWithOsc = async (args: string[]): Promise<void> => {
    try {
      await plain(['volume', 'backup', 'restore', ...args]);
    } catch (err) {
      assert.match(String((err as { stderr?: unknown }).stderr ?? err), /cannot unpack non-iterable VolumeBackupsRestore object/);
    }
  };

  before(async () => {
    d = await deploy();
  });
  after(async () => d?.stop());

  it('create (full, incremental, from a snapshot), list, show, set, restore, delete', async () => {
    await osc(['volume', 'create', '--size', '1', 'osc-bvol']);
    const vol = await waitStatus(['volume', 'show', 'osc-bvol'], 'available');
    const volId = String(vol['id']);
    await writeAt(d!.member, volId, [{ offset: 0, data: randomBytes(2 * MiB) }, { offset: 700 * MiB, data: randomBytes(MiB) }]);

    const b1 = await osc(['volume', 'backup', 'create', '--name', 'b1', 'osc-bvol']);
    assert.equal(b1['name'], 'b1');
    await waitStatus(['volume', 'backup', 'show', 'b1'], 'available');
    await writeAt(d!.member, volId, [{ offset: 5 * MiB, data: randomBytes(MiB) }]);
    const b2Hash = await volumeHash(d!.member, volId);
    await osc(['volume', 'backup', 'create', '--incremental', '--name', 'b2', 'osc-bvol']);
    const b2 = await waitStatus(['volume', 'backup', 'show', 'b2'], 'available');
    assert.equal(b2['is_incremental'], true);
    assert.equal(b2['volume_id'], volId);

    await writeAt(d!.member, volId, [{ offset: 20 * MiB, data: randomBytes(MiB) }]);
    const b3Hash = await volumeHash(d!.member, volId);
    await osc(['volume', 'snapshot', 'create', '--volume', 'osc-bvol', 'osc-bsnap']);
    const snap = await waitStatus(['volume', 'snapshot', 'show', 'osc-bsnap'], 'available');
    await osc(['volume', 'backup', 'create', '--snapshot', 'osc-bsnap', '--name', 'b3', 'osc-bvol']);
    const b3 = await waitStatus(['volume', 'backup', 'show', 'b3'], 'available');
    assert.equal(b3['snapshot_id'], snap['id']);
    assert.equal(b3['is_incremental'], false);
    await waitStatus(['volume', 'snapshot', 'show', 'osc-bsnap'], 'available');
    await waitStatus(['volume', 'show', 'osc-bvol'], 'available');

    const list = await osc<Row[]>(['volume', 'backup', 'list']);
    assert.deepEqual(list.map((b) => b['Name']).sort(), ['b1', 'b2', 'b3']);
    assert.ok(list.every((b) => b['Status'] === 'available' && b['Size'] === 1), JSON.stringify(list));
    const long = await osc<Row[]>(['volume', 'backup', 'list', '--long']);
    assert.ok(long.every((b) => b['Volume'] === volId || b['Volume'] === 'osc-bvol'), JSON.stringify(long));
    const b1Shown = await osc(['volume', 'backup', 'show', 'b1']);
    assert.equal(b1Shown['has_dependent_backups'], true);
    assert.equal(b1Shown['is_incremental'], false);

    await plain(['volume', 'backup', 'set', '--name', 'renamed', 'b1']);
    const renamed = await osc(['volume', 'backup', 'show', 'renamed']);
    assert.equal(renamed['id'], b1['id']);
    assert.ok(!(await osc<Row[]>(['volume', 'backup', 'list'])).some((b) => b['Name'] === 'b1'));

    // osc 6: the second argument names a new volume, or an existing one with --force.
    await restoreWithOsc(['b2', 'osc-restored']);
    await waitStatus(['volume', 'backup', 'show', 'b2'], 'available');
    const restored = await waitStatus(['volume', 'show', 'osc-restored'], 'available');
    assert.equal(restored['size'], 1);
    assert.equal(restored['description'], 'auto-created_from_restore_from_backup');
    assert.equal(await volumeHash(d!.member, String(restored['id'])), b2Hash, 'the new volume equals the source at b2');
    assert.match(await refused(['volume', 'backup', 'restore', 'b3', 'osc-restored']), /already exists.*--force/);
    await restoreWithOsc(['--force', 'b3', 'osc-restored']);
    await waitStatus(['volume', 'backup', 'show', 'b3'], 'available');
    await waitStatus(['volume', 'show', 'osc-restored'], 'available');
    assert.equal(await volumeHash(d!.member, String(restored['id'])), b3Hash, 'restored over the existing volume, it equals the snapshot of b3');

    // b1 (renamed) has a dependent: refused until b2 is gone.
    assert.match(await refused(['volume', 'backup', 'delete', 'renamed']), /Incremental backups exist for this backup/);
    assert.equal((await osc(['volume', 'backup', 'show', 'renamed']))['status'], 'available');
    await plain(['volume', 'backup', 'delete', 'b2']);
    await waitGone('b2');
    await plain(['volume', 'backup', 'delete', 'renamed', 'b3']);
    await waitGone('renamed');
    await waitGone('b3');
    assert.deepEqual(await osc<Row[]>(['volume', 'backup', 'list']), []);

    await plain(['volume', 'snapshot', 'delete', 'osc-bsnap']);
    await plain(['volume', 'delete', 'osc-restored']);
  });
});
