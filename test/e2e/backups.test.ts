// Backups through the Cinder API against real QSD: a full backup and three
// incrementals with random writes between them; every point restored into a new
// volume and compared byte for byte with the volume as it was then. An
// incremental of an unchanged volume reads nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { deploy, type ApiSession, type Deployment } from '../harness/aio.js';
import { volumeHash } from './backup-helpers.js';
import { attachLocal, createVolume, detachLocal } from './helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;


async function backup(s: ApiSession, volumeId: string, incremental: boolean): Promise<{ id: string; progress: Record<string, unknown> }> {
  const r = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: { volume_id: volumeId, incremental, name: incremental ? 'incr' : 'full' } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.backup.id;
  await s.waitFor(`/backups/${id}`, 'backup', ['available'], 120_000);
  const p = await s.call<{ progress: Record<string, unknown> }>('GET', `/bulwark-progress/backups/${id}`);
  return { id, progress: p.body.progress };
}

async function restoreToNew(s: ApiSession, backupId: string): Promise<string> {
  const r = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${backupId}/restore`, { restore: {} });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await s.waitFor(`/backups/${backupId}`, 'backup', ['available'], 120_000);
  await s.waitFor(`/volumes/${r.body.restore.volume_id}`, 'volume', ['available'], 120_000);
  return r.body.restore.volume_id;
}

describe('incremental backups end to end', () => {
  let d: Deployment;
  before(async () => {
    d = await deploy();
  });
  after(async () => d?.stop());

  it('full + three incrementals restore byte-identical; unchanged incremental reads nothing', async () => {
    const s = d.member;
    const vol = await createVolume(s, { size: 1, name: 'protected' });
    const writeRandom = async (blocks: number, seed: number) => {
      const t = await attachLocal(s, vol);
      const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
      for (let i = 0; i < blocks; i++) {
        const off = ((seed * 7919 + i * 104729) % 1024) * MiB;
        await c.write(off, randomBytes(MiB));
      }
      await c.flush();
      await c.close();
      await detachLocal(s, vol);
    };
    const db = d.roles.store.db;
    /** The volume's layers, top first, once the backup's temporary snapshot is gone. */
    const settledChain = async (): Promise<string[]> => {
      for (const deadline = Date.now() + 60_000; ; ) {
        const layers = await db.selectFrom('layers').select(['id', 'backing_layer_id']).execute();
        const top = await db.selectFrom('volumes').select('active_layer_id').where('id', '=', vol).executeTakeFirstOrThrow();
        const chain: string[] = [];
        for (let at: string | null = top.active_layer_id; at; at = layers.find((l) => l.id === at)?.backing_layer_id ?? null) chain.push(at);
        const temp = await db.selectFrom('snapshots').select('id').where('volume_id', '=', vol).execute();
        if (temp.length === 0 && chain.length <= 2) return chain;
        if (Date.now() > deadline) assert.fail(`the volume's chain did not settle: ${chain.join(' <- ')}, ${temp.length} snapshot(s)`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const firstLayer = (await db.selectFrom('volumes').select('active_layer_id').where('id', '=', vol).executeTakeFirstOrThrow()).active_layer_id;
    const points: { backup: string; hash: string }[] = [];
    await writeRandom(40, 1);
    const full = await backup(s, vol, false);
    points.push({ backup: full.id, hash: await volumeHash(s, vol) });
    assert.equal(full.progress['tracking'], 'allocation-depth');
    assert.ok(Number(full.progress['bytes_read']) <= 41 * MiB, `a full backup reads only allocated data (${String(full.progress['bytes_read'])} bytes)`);
    for (let round = 2; round <= 4; round++) {
      await writeRandom(8, round);
      const inc = await backup(s, vol, true);
      assert.equal(inc.progress['tracking'], 'allocation-depth');
      assert.ok(Number(inc.progress['bytes_read']) <= 9 * MiB, `incremental ${round} reads about what changed (${String(inc.progress['bytes_read'])})`);
      points.push({ backup: inc.id, hash: await volumeHash(s, vol) });
      // The temporary snapshot's layer (the few MiB that changed) was committed down into the
      // volume's first layer, which now carries the backup's pin; the volume was not streamed up.
      const chain = await settledChain();
      assert.equal(chain.length, 2, chain.join(' <- '));
      assert.equal(chain[1], firstLayer, 'the bottom layer is still the volume\'s first');
      const pin = await db.selectFrom('layer_pins').select('layer_id').where('owner_id', '=', inc.id).executeTakeFirstOrThrow();
      assert.equal(pin.layer_id, firstLayer, 'the newest backup pins the bottom layer');
    }
    const unchanged = await backup(s, vol, true);
    assert.equal(Number(unchanged.progress['bytes_read']), 0, 'an incremental of an unchanged volume reads zero bytes');

    for (const p of points) {
      const restored = await restoreToNew(s, p.backup);
      assert.equal(await volumeHash(s, restored), p.hash, `backup ${p.backup} restores the volume as it was`);
      // The volume role made room in the layer file before the restore wrote (a hole past the
      // image's end, ext4 then runs the O_DIRECT writes in parallel): qcow2 must still check clean.
      const layer = await d.roles.store.db.selectFrom('layers').innerJoin('volumes', 'volumes.active_layer_id', 'layers.id').select('layers.path').where('volumes.id', '=', restored).executeTakeFirstOrThrow();
      const check = spawnSync('qemu-img', ['check', '-U', '-f', 'qcow2', '--output=json', layer.path], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const report = JSON.parse(check.stdout) as { leaks?: number; corruptions?: number };
      assert.ok(!report.leaks && !report.corruptions, check.stdout);
    }
    const vols = await s.call<{ volumes: unknown[] }>('GET', '/volumes');
    assert.equal(vols.body.volumes.length, 1 + points.length);
    assert.ok(GiB > 0);
  });
});
