// A backup service on another host than the volume's: it reads the snapshot
// and writes the restore over NBD on TCP with TLS-PSK through the pool's
// gateway, never opening a volume file; the restore is byte-identical and the
// backup records the remote service as its host.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { ApiSession } from '../harness/aio.js';
import { freePort } from '../harness/ports.js';
import { makeCluster, type Cluster } from '../harness/processes.js';
import { createBackup, restoreToNew, volumeHash } from './backup-helpers.js';
import { attachLocal, detachLocal } from './helpers.js';

const MiB = 1024 * 1024;

describe('a backup service on another host', () => {
  let cluster: Cluster;
  let s: ApiSession;

  before(async () => {
    cluster = await makeCluster({ extra: { volume: { nbdTcp: { host: '127.0.0.1', port: await freePort() } } } });
    await cluster.start('api');
    await cluster.start('scheduler');
    await cluster.start('volume');
    await cluster.start('backup', ['--host-name', 'backuphost']);
    s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
  });
  after(async () => cluster?.stopAll());

  it('backs up and restores over NBD+TLS, byte-identical, full and incremental', async () => {
    const r = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, name: 'far' } });
    const vol = r.body.volume.id;
    await s.waitFor(`/volumes/${vol}`, 'volume', ['available']);
    const write = async (at: number[]) => {
      const t = await attachLocal(s, vol);
      const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
      for (const i of at) await c.write(i * MiB, randomBytes(MiB));
      await c.flush();
      await c.close();
      await detachLocal(s, vol);
    };
    await write([0, 7, 100, 511]);
    const full = await createBackup(s, { volume_id: vol, name: 'full' });
    const fullRow = await s.call<{ backup: Record<string, unknown> }>('GET', `/backups/${full}`);
    // Cinder's view has no host; Bulwark's progress resource names the service that ran it.
    const progress = await s.call<Record<string, unknown>>('GET', `/bulwark-progress/backups/${full}`);
    assert.equal(JSON.stringify(progress.body).includes('"host":"backuphost"'), true, JSON.stringify(progress.body));
    assert.equal(fullRow.body.backup['status'], 'available');
    const hash1 = await volumeHash(s, vol);
    await write([7, 300]);
    const incr = await createBackup(s, { volume_id: vol, name: 'incr', incremental: true });
    const hash2 = await volumeHash(s, vol);
    assert.equal(await volumeHash(s, await restoreToNew(s, full)), hash1);
    assert.equal(await volumeHash(s, await restoreToNew(s, incr)), hash2);
  });
});
