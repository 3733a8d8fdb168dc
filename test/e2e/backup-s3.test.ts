// Backups to another site's object storage: the backup repository on real
// OpenStack Swift (s3api), started by the harness on loopback. A full and an
// incremental backup restore byte-identical from it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { deploy, type Deployment } from '../harness/aio.js';
import { startSwift, swiftUnavailableReason, type SwiftS3 } from '../harness/swift.js';
import { volumeHash } from './backup-helpers.js';
import { attachLocal, createVolume, detachLocal } from './helpers.js';

const MiB = 1024 * 1024;
const unavailable = swiftUnavailableReason();


describe('backups to S3 object storage (Swift s3api)', { skip: unavailable ? `Swift is not installed: ${unavailable}` : false }, () => {
  let swift: SwiftS3;
  let d: Deployment;
  let secrets: string;
  before(async () => {
    swift = await startSwift();
    secrets = mkdtempSync(join(tmpdir(), 'bulwark-s3creds-'));
    const credentialsFile = join(secrets, 's3.json');
    writeFileSync(credentialsFile, JSON.stringify({ accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey }), { mode: 0o600 });
    d = await deploy({
      overrides: {
        backup: {
          repository: `s3://bulwark-backups/site-b?endpoint=${encodeURIComponent(swift.endpoint)}&region=${swift.region}`,
          s3CredentialsFile: credentialsFile,
          keyFile: join(secrets, 'backup.key'),
        },
      },
    });
  });
  after(async () => {
    await d?.stop();
    await swift?.stop();
    rmSync(secrets, { recursive: true, force: true });
  });

  it('full and incremental backups restore byte-identical from Swift', async () => {
    const s = d.member;
    const vol = await createVolume(s, { size: 1 });
    const write = async (n: number, seed: number) => {
      const t = await attachLocal(s, vol);
      const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
      for (let i = 0; i < n; i++) await c.write(((seed * 131 + i * 37) % 1024) * MiB, randomBytes(MiB));
      await c.flush();
      await c.close();
      await detachLocal(s, vol);
    };
    const points: { id: string; hash: string }[] = [];
    for (const [n, incremental] of [[24, false], [6, true]] as const) {
      await write(n, points.length + 1);
      const r = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: { volume_id: vol, incremental } });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      await s.waitFor(`/backups/${r.body.backup.id}`, 'backup', ['available'], 120_000);
      points.push({ id: r.body.backup.id, hash: await volumeHash(s, vol) });
    }
    for (const p of points) {
      const rr = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${p.id}/restore`, { restore: {} });
      await s.waitFor(`/backups/${p.id}`, 'backup', ['available'], 120_000);
      await s.waitFor(`/volumes/${rr.body.restore.volume_id}`, 'volume', ['available'], 120_000);
      assert.equal(await volumeHash(s, rr.body.restore.volume_id), p.hash);
    }
  });
});
