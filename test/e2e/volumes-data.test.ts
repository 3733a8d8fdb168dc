// Data written through a real NBD client reads back byte for byte from the
// volume, its snapshots and its clones, after further writes to the origin.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
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

    it('deleting a snapshot under a small top copies nothing; its layer merges once it can be committed down or is the smaller', async () => {
      const s = d.member;
      const db = d.roles.store.db;
      /** Every job finished: the collector runs inside the delete jobs, after the rows are gone. */
      const settled = async (): Promise<void> => {
        for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 50))) {
          const open = await db.selectFrom('jobs').select('id').where('state', 'not in', ['done', 'failed']).execute();
          if (open.length === 0) return;
          if (Date.now() > deadline) assert.fail(`${open.length} job(s) still open`);
        }
      };
      /** The volume's layers, top first, with the bytes each file has allocated. */
      const chain = async (volumeId: string): Promise<{ id: string; allocated: number }[]> => {
        const layers = await db.selectFrom('layers').select(['id', 'path', 'backing_layer_id']).execute();
        const top = await db.selectFrom('volumes').select('active_layer_id').where('id', '=', volumeId).executeTakeFirstOrThrow();
        const out: { id: string; allocated: number }[] = [];
        for (let at = layers.find((l) => l.id === top.active_layer_id); at; at = layers.find((l) => l.id === at!.backing_layer_id)) out.push({ id: at.id, allocated: statSync(at.path).blocks * 512 });
        return out;
      };
      const vol = await createVolume(s, { size: 1, name: 'lazy-merge' });
      const t = await attachLocal(s, vol);
      await writePattern(t, 0, 32 * MiB, 0x31);
      const snap1 = await createSnapshot(s, vol, true);
      const base = (await db.selectFrom('snapshots').select('layer_id').where('id', '=', snap1).executeTakeFirstOrThrow()).layer_id;
      await writePattern(t, 64 * MiB, MiB, 0x32);
      const readsAll = async (why: string, extra: [number, number, number][] = []): Promise<void> => {
        for (const [offset, length, pattern] of [[0, 32 * MiB, 0x31], [64 * MiB, MiB, 0x32], [32 * MiB, 32 * MiB, 0], ...extra] as const)
          assert.ok(await readMatches(t, offset, length, pattern), `${why}: ${length} bytes at ${offset} read ${pattern}`);
      };

      await deleteAndWait(s, `/snapshots/${snap1}`, 'snapshot');
      await settled();
      const c1 = await chain(vol);
      assert.deepEqual(c1.map((l) => l.id).slice(1), [base], "the deleted snapshot's layer stays under the top");
      assert.ok(c1[0]!.allocated < 8 * MiB, `nothing was streamed up into the top (${c1[0]!.allocated} bytes allocated)`);
      await readsAll('after the snapshot was deleted');

      // A new snapshot makes the top a middle layer: deleting it commits that small layer down.
      const snap2 = await createSnapshot(s, vol, true);
      await writePattern(t, 96 * MiB, MiB, 0x33);
      await deleteAndWait(s, `/snapshots/${snap2}`, 'snapshot');
      await settled();
      const c2 = await chain(vol);
      assert.deepEqual(c2.map((l) => l.id).slice(1), [base], 'the chain is still two deep, on the same base');
      assert.ok(c2[0]!.allocated < 8 * MiB, `the 32 MiB base was not copied (${c2[0]!.allocated} bytes in the top)`);
      await readsAll('after the second snapshot was deleted', [[96 * MiB, MiB, 0x33]]);

      // Once the top holds more than the base, the next collection (any delete on this pool) streams the base up.
      await writePattern(t, 128 * MiB, 64 * MiB, 0x34);
      await deleteAndWait(s, `/volumes/${await createVolume(s, { size: 1 })}`, 'volume');
      await settled();
      const c3 = await chain(vol);
      assert.equal(c3.length, 1, 'the base was merged into the now larger top');
      assert.ok(!(await db.selectFrom('layers').select('id').where('id', '=', base!).executeTakeFirst()), 'and its row is gone');
      await readsAll('after the base was streamed up', [[96 * MiB, MiB, 0x33], [128 * MiB, 64 * MiB, 0x34]]);
      await detachLocal(s, vol);
      await deleteAndWait(s, `/volumes/${vol}`, 'volume');
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
