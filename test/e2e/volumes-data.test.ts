// Data written through a real NBD client reads back byte for byte from the
// volume, its snapshots and its clones, after further writes to the origin.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deploy, type Deployment } from '../harness/aio.js';
import { readMatches, writePattern } from '../harness/nbd.js';
import { dialects, databaseUrlFor, stopSharedPostgres } from '../harness/stores.js';
import { attachLocal, createSnapshot, createVolume, deleteAndWait, detachLocal } from './helpers.js';

const MiB = 1024 * 1024;
after(stopSharedPostgres);

for (const dialect of dialects) {
  describe(`volume data path on ${dialect}`, () => {
    let d: Deployment;
    before(async () => {
      const { url } = await databaseUrlFor(dialect, 'e2e_data');
      d = await deploy({ databaseUrl: url });
    });
    after(async () => d?.stop());

    it('snapshots and clones keep their point in time; deletes in any order keep everything else', async () => {
      const s = d.member;
      const vol = await createVolume(s, { size: 1, name: 'origin' });
      const t = await attachLocal(s, vol);
      await writePattern(t, 0, 4 * MiB, 0xa1);
      await writePattern(t, 512 * MiB, MiB, 0xa2);
      const snap1 = await createSnapshot(s, vol, true);
      await writePattern(t, 0, 4 * MiB, 0xb1);
      const snap2 = await createSnapshot(s, vol, true);
      await writePattern(t, 0, MiB, 0xc1);

      const fromSnap1 = await createVolume(s, { snapshot_id: snap1, name: 'from-snap1' });
      const cloneNow = await createVolume(s, { source_volid: vol, name: 'clone' });
      await writePattern(t, 0, MiB, 0xd1); // after the clone: must not show in it

      const t1 = await attachLocal(s, fromSnap1);
      const tc = await attachLocal(s, cloneNow);
      assert.ok(await readMatches(t1, 0, 4 * MiB, 0xa1), 'volume from snap1 shows the first write');
      assert.ok(await readMatches(t1, 512 * MiB, MiB, 0xa2));
      assert.ok(await readMatches(tc, 0, MiB, 0xc1), 'clone shows the origin as it was when cloned');
      assert.ok(await readMatches(tc, MiB, 3 * MiB, 0xb1));
      assert.ok(await readMatches(t, 0, MiB, 0xd1), 'origin has its latest write');

      // Delete the older snapshot first, then the newer: nothing else changes.
      await deleteAndWait(s, `/snapshots/${snap1}`, 'snapshot');
      assert.ok(await readMatches(t1, 0, 4 * MiB, 0xa1), 'a volume made from a deleted snapshot keeps its data');
      assert.ok(await readMatches(t, 0, MiB, 0xd1));
      assert.ok(await readMatches(t, MiB, 3 * MiB, 0xb1));
      const fromSnap2 = await createVolume(s, { snapshot_id: snap2 });
      const t2 = await attachLocal(s, fromSnap2);
      assert.ok(await readMatches(t2, 0, 4 * MiB, 0xb1), 'snap2 unchanged by deleting snap1');
      assert.ok(await readMatches(t2, 512 * MiB, MiB, 0xa2));
      await deleteAndWait(s, `/snapshots/${snap2}`, 'snapshot');
      assert.ok(await readMatches(t2, 0, 4 * MiB, 0xb1));
      assert.ok(await readMatches(t, 0, MiB, 0xd1));
      assert.ok(await readMatches(t, 512 * MiB, MiB, 0xa2));

      for (const [id, target] of [[vol, t], [fromSnap1, t1], [cloneNow, tc], [fromSnap2, t2]] as const) {
        void target;
        await detachLocal(s, id);
      }
      for (const id of [vol, fromSnap1, cloneNow, fromSnap2]) await deleteAndWait(s, `/volumes/${id}`, 'volume');
      const pool = d.config.volume.pools[0]!.path;
      assert.deepEqual(readdirSync(join(pool, 'layers')), [], 'every layer file is gone once nothing needs it');
    });

    it('a new volume never shows a deleted volume\'s data', async () => {
      const s = d.member;
      const a = await createVolume(s, { size: 1 });
      const ta = await attachLocal(s, a);
      await writePattern(ta, 0, 8 * MiB, 0x5a);
      await detachLocal(s, a);
      await deleteAndWait(s, `/volumes/${a}`, 'volume');
      const b = await createVolume(s, { size: 1 });
      const tb = await attachLocal(s, b);
      assert.ok(await readMatches(tb, 0, 8 * MiB, 0x00), 'fresh volume reads zeros');
      await detachLocal(s, b);
      await deleteAndWait(s, `/volumes/${b}`, 'volume');
    });

    it('extend grows the device and keeps data; revert returns to the latest snapshot', async () => {
      const s = d.member;
      const v = await createVolume(s, { size: 1 });
      let t = await attachLocal(s, v);
      await writePattern(t, 0, MiB, 0x11);
      await detachLocal(s, v);
      const res = await s.call('POST', `/volumes/${v}/action`, { 'os-extend': { new_size: 2 } });
      assert.equal(res.status, 202);
      const vol = await s.waitFor(`/volumes/${v}`, 'volume', ['available']);
      assert.equal(vol['size'], 2);
      t = await attachLocal(s, v);
      assert.ok(await readMatches(t, 0, MiB, 0x11));
      await writePattern(t, 1536 * MiB, MiB, 0x22);
      assert.ok(await readMatches(t, 1536 * MiB, MiB, 0x22), 'the new space is writable');
      await detachLocal(s, v);
      const snap = await createSnapshot(s, v);
      t = await attachLocal(s, v);
      await writePattern(t, 0, MiB, 0x33);
      await detachLocal(s, v);
      const rv = await s.call('POST', `/volumes/${v}/action`, { revert: { snapshot_id: snap } });
      assert.equal(rv.status, 202, JSON.stringify(rv.body));
      await s.waitFor(`/volumes/${v}`, 'volume', ['available']);
      t = await attachLocal(s, v);
      assert.ok(await readMatches(t, 0, MiB, 0x11), 'reverted to the snapshot');
      await detachLocal(s, v);
      await deleteAndWait(s, `/snapshots/${snap}`, 'snapshot');
      await deleteAndWait(s, `/volumes/${v}`, 'volume');
    });
  });
}
