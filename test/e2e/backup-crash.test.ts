// kill -9 of the backup role (a separate process) in the middle of a backup and
// of a restore. Afterwards each operation has ended resumed-and-done or
// failed-and-cleaned, the repository verifies clean, and the next backup works.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { ApiSession } from '../harness/aio.js';
import { makeCluster, type Cluster, type RoleProcess } from '../harness/processes.js';
import { volumeHash } from './backup-helpers.js';
import { attachLocal, detachLocal } from './helpers.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe('kill -9 of the backup role', () => {
  let cluster: Cluster;
  let backupRole: RoleProcess;
  let s: ApiSession;
  let admin: ApiSession;
  let vol: string;
  let hash: string;

  before(async () => {
    cluster = await makeCluster();
    await cluster.start('api');
    await cluster.start('scheduler');
    await cluster.start('volume');
    backupRole = await cluster.start('backup');
    s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
    admin = await ApiSession.login(cluster.url, 'admin', 'admin-pw', 'admin');
    const r = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, name: 'crashy' } });
    vol = r.body.volume.id;
    await s.waitFor(`/volumes/${vol}`, 'volume', ['available']);
    const t = await attachLocal(s, vol);
    const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
    for (let i = 0; i < 96; i++) await c.write(i * 2 * MiB, randomBytes(MiB));
    await c.flush();
    await c.close();
    await detachLocal(s, vol);
    hash = await volumeHash(s, vol);
  });
  after(async () => cluster?.stopAll());

  async function restartBackupRole(afterMs: number): Promise<void> {
    await sleep(afterMs);
    await cluster.kill9(backupRole);
    backupRole = await cluster.start('backup');
  }

  async function verifyClean(): Promise<void> {
    const v = await admin.call<{ verify: { damaged: unknown[]; checked: number } }>('POST', '/bulwark-repository/verify', {});
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.deepEqual(v.body.verify.damaged, [], 'the repository verifies clean');
  }

  it('during a backup: the backup resumes (or fails cleanly) and the next one works', async () => {
    const r = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: { volume_id: vol, name: 'interrupted' } });
    assert.equal(r.status, 202);
    await restartBackupRole(150);
    const b = await s.waitFor(`/backups/${r.body.backup.id}`, 'backup', ['available', 'error'], 120_000);
    const vstatus = (await s.call<{ volume: { status: string } }>('GET', `/volumes/${vol}`)).body.volume.status;
    assert.equal(vstatus, 'available', 'the source volume is released either way');
    if (b['status'] === 'available') {
      const rr = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${r.body.backup.id}/restore`, { restore: {} });
      await s.waitFor(`/volumes/${rr.body.restore.volume_id}`, 'volume', ['available'], 120_000);
      await s.waitFor(`/backups/${r.body.backup.id}`, 'backup', ['available'], 120_000);
      assert.equal(await volumeHash(s, rr.body.restore.volume_id), hash, 'the resumed backup restores byte-identical');
    }
    await verifyClean();
    const next = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: { volume_id: vol, name: 'after-crash' } });
    await s.waitFor(`/backups/${next.body.backup.id}`, 'backup', ['available'], 120_000);
  });

  it('during a restore: it ends restored or error_restoring, the backup is available again', async () => {
    const list = await s.call<{ backups: { id: string; name: string }[] }>('GET', '/backups');
    const good = list.body.backups.find((x) => x.name === 'after-crash')!;
    const rr = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${good.id}/restore`, { restore: {} });
    assert.equal(rr.status, 202);
    const target = rr.body.restore.volume_id;
    await s.waitFor(`/volumes/${target}`, 'volume', ['restoring-backup', 'available'], 60_000);
    await restartBackupRole(100);
    const v = await s.waitFor(`/volumes/${target}`, 'volume', ['available', 'error_restoring'], 120_000);
    await s.waitFor(`/backups/${good.id}`, 'backup', ['available'], 120_000);
    if (v['status'] === 'available') assert.equal(await volumeHash(s, target), hash, 'a resumed restore is byte-identical');
    await verifyClean();
  });
});
