// kill -9 of the volume role and of qemu-storage-daemon in the middle of
// creates, snapshots, deletes and writes. Afterwards every resource is settled
// (available, error or gone), acknowledged data is intact and no file is orphaned.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { QmpConnection } from '../../src/drivers/qmp/connection.js';
import { commitInto } from '../../src/drivers/qsd/images.js';
import { openStore, type Store } from '../../src/store/db.js';
import { ApiSession } from '../harness/aio.js';
import { makeCluster, type Cluster, type RoleProcess } from '../harness/processes.js';
import { attachLocal, createSnapshot, createVolume } from './helpers.js';

const SETTLED = ['available', 'error', 'deleted'];
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settle(s: ApiSession, kind: 'volumes' | 'snapshots', ids: string[]): Promise<Map<string, string>> {
  const key = kind === 'volumes' ? 'volume' : 'snapshot';
  const out = new Map<string, string>();
  for (const id of ids) {
    const obj = await s.waitFor(`/${kind}/${id}`, key, [...SETTLED, 'error_deleting'], 60_000);
    out.set(id, obj['status'] === undefined ? 'deleted' : String(obj['status']));
  }
  return out;
}

/** Every file in the pool belongs to a layer row, and every layer row is needed. */
async function assertNoOrphans(store: Store, poolDir: string): Promise<void> {
  const layers = await store.db.selectFrom('layers').selectAll().execute();
  const files = readdirSync(join(poolDir, 'layers')).map((f) => join(poolDir, 'layers', f)).sort();
  assert.deepEqual(files, layers.map((l) => l.path).sort(), 'pool files and layer rows match');
  for (const l of layers) assert.equal(l.state, 'ready', `layer ${l.id} settled`);
  const tops = new Set((await store.db.selectFrom('volumes').select('active_layer_id').execute()).map((v) => v.active_layer_id));
  const snaps = new Set((await store.db.selectFrom('snapshots').select('layer_id').execute()).map((s) => s.layer_id));
  const parents = new Set(layers.map((l) => l.backing_layer_id));
  for (const l of layers) assert.ok(tops.has(l.id) || snaps.has(l.id) || parents.has(l.id), `layer ${l.id} is needed`);
}

describe('crash recovery (roles as separate processes)', () => {
  let cluster: Cluster;
  let volumeRole: RoleProcess;
  let s: ApiSession;
  let store: Store;
  let poolDir: string;

  before(async () => {
    cluster = await makeCluster();
    await cluster.start('api');
    await cluster.start('scheduler');
    volumeRole = await cluster.start('volume');
    s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
    store = await openStore(`sqlite://${join(cluster.dir, 'bulwark.db')}`);
    poolDir = join(cluster.dir, 'pools', 'default');
  });
  after(async () => {
    await store?.close();
    await cluster?.stopAll();
  });

  /** Round 0 kills the volume role, round 1 qemu-storage-daemon alone (the role
   *  restarts it), round 2 both at once (a fresh daemon; switches roll forward). */
  async function crash(round: number): Promise<void> {
    const qsdPid = Number(readFileSync(join(poolDir, 'run', 'qsd.pid'), 'utf8'));
    if (round % 3 !== 0) process.kill(qsdPid, 'SIGKILL');
    if (round % 3 !== 1) {
      await cluster.kill9(volumeRole);
      volumeRole = await cluster.start('volume');
    }
  }

  it('kill -9 of the volume role, of QSD, and of both, during creates, snapshots and deletes', async () => {
    for (let round = 0; round < 3; round++) {
      const vols: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, name: `r${round}-${i}` } });
        assert.equal(r.status, 202);
        vols.push(r.body.volume.id);
      }
      await sleep(20 + round * 40);
      await crash(round);
      const vstates = await settle(s, 'volumes', vols);
      const ok = vols.filter((v) => vstates.get(v) === 'available');
      assert.ok([...vstates.values()].every((st) => st === 'available' || st === 'error'), JSON.stringify([...vstates]));

      const snaps: string[] = [];
      for (const v of ok) {
        const r = await s.call<{ snapshot: { id: string } }>('POST', '/snapshots', { snapshot: { volume_id: v } });
        assert.equal(r.status, 202);
        snaps.push(r.body.snapshot.id);
      }
      await sleep(10 + round * 30);
      await crash(round);
      const sstates = await settle(s, 'snapshots', snaps);
      assert.ok([...sstates.values()].every((st) => st === 'available' || st === 'error'), JSON.stringify([...sstates]));

      for (const id of snaps) await s.call('DELETE', `/snapshots/${id}`);
      await sleep(15 * round);
      await crash(round);
      const gone = await settle(s, 'snapshots', snaps);
      assert.ok([...gone.values()].every((st) => st === 'deleted'), JSON.stringify([...gone]));
      for (const v of vols) await s.call('DELETE', `/volumes/${v}`);
      await sleep(10 + round * 20);
      await crash(round);
      const dstates = await settle(s, 'volumes', vols);
      assert.ok([...dstates.values()].every((st) => st === 'deleted'), JSON.stringify([...dstates]));
    }
    await assertNoOrphans(store, poolDir);
  });

  it('kill -9 of qemu-storage-daemon while writing and snapshotting keeps acknowledged data', async () => {
    const r = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, name: 'survivor' } });
    const vol = r.body.volume.id;
    await s.waitFor(`/volumes/${vol}`, 'volume', ['available']);
    const target = await attachLocal(s, vol);
    let nbd = await NbdClient.connectUnix(target.socketPath, target.exportName);
    const acked: number[] = [];
    const block = (n: number) => Buffer.alloc(65536, n % 251);
    for (let n = 0; n < 64; n++) {
      await nbd.write(n * 65536, block(n));
      await nbd.flush();
      acked.push(n);
    }
    const snap = await s.call<{ snapshot: { id: string } }>('POST', '/snapshots', { snapshot: { volume_id: vol, force: true } });
    const pid = Number(readFileSync(join(poolDir, 'run', 'qsd.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await nbd.close().catch(() => undefined);
    const snapState = await s.waitFor(`/snapshots/${snap.body.snapshot.id}`, 'snapshot', ['available', 'error'], 60_000);
    assert.ok(['available', 'error'].includes(String(snapState['status'])));
    // The role restarts QSD and re-exports: the same export name works again.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        nbd = await NbdClient.connectUnix(target.socketPath, target.exportName);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
    for (const n of acked) assert.ok((await nbd.read(n * 65536, 65536)).equals(block(n)), `acknowledged block ${n} survived`);
    await nbd.close();
    assert.equal(volumeRole.child.exitCode, null, 'the volume role survived its daemon');
  });

  it('a layer committed down by QSD just before the volume role died: the restarted role finishes the merge', async () => {
    const vol = await createVolume(s, { size: 1, name: 'merged' });
    const target = await attachLocal(s, vol);
    const nbd = await NbdClient.connectUnix(target.socketPath, target.exportName);
    const fill = (byte: number, length: number) => Buffer.alloc(length, byte);
    await nbd.write(0, fill(0x61, 2 * MiB));
    await nbd.flush();
    const a = await createSnapshot(s, vol, true);
    await nbd.write(4 * MiB, fill(0x62, MiB));
    await nbd.flush();
    const b = await createSnapshot(s, vol, true);
    await nbd.write(8 * MiB, fill(0x63, MiB / 2));
    await nbd.flush();
    await nbd.close();
    const layerOf = async (id: string) => (await store.db.selectFrom('snapshots').select('layer_id').where('id', '=', id).executeTakeFirstOrThrow()).layer_id!;
    const [la, lb] = [await layerOf(a), await layerOf(b)];

    // Deleting A leaves its layer unneeded under B's small one: the role would commit B's
    // layer down. The role is dead; QSD does the commit, as if the role died right after.
    await cluster.kill9(volumeRole);
    assert.equal((await s.call('DELETE', `/snapshots/${a}`)).status, 202);
    const qmp = await QmpConnection.connect(join(poolDir, 'run', 'qmp.sock'));
    try {
      await commitInto(qmp, { topLayerId: lb, baseLayerId: la, jobId: `commit-${lb}` });
    } finally {
      await qmp.close();
    }
    volumeRole = await cluster.start('volume');
    assert.equal((await settle(s, 'snapshots', [a])).get(a), 'deleted');
    for (const deadline = Date.now() + 30_000; (await store.db.selectFrom('layers').select('id').where('id', '=', lb).executeTakeFirst()) !== undefined; ) {
      if (Date.now() > deadline) assert.fail(`layer ${lb} was not retired`);
      await sleep(50);
    }
    assert.equal(await layerOf(b), la, "snapshot B now names the merged layer");

    const read = async (volumeId: string): Promise<Buffer[]> => {
      const t = await attachLocal(s, volumeId);
      const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
      try {
        return [await c.read(0, 2 * MiB), await c.read(4 * MiB, MiB), await c.read(8 * MiB, MiB / 2), await c.read(2 * MiB, 2 * MiB)];
      } finally {
        await c.close();
      }
    };
    const [p0, p1, p2, gap] = await read(vol);
    assert.ok(p0!.equals(fill(0x61, 2 * MiB)) && p1!.equals(fill(0x62, MiB)) && p2!.equals(fill(0x63, MiB / 2)) && gap!.equals(fill(0, 2 * MiB)), 'the volume reads as written');
    const [q0, q1, q2] = await read(await createVolume(s, { size: 1, snapshot_id: b }));
    assert.ok(q0!.equals(fill(0x61, 2 * MiB)) && q1!.equals(fill(0x62, MiB)) && q2!.equals(fill(0, MiB / 2)), 'snapshot B shows the volume as it was');
    await assertNoOrphans(store, poolDir);
  });
});
