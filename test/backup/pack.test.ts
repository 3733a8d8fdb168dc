// Packs (ADR 0005, format 2): many chunk objects per store object, located
// through the index; an interrupted pack upload leaves nothing visible; gc
// deletes whole packs or repacks them; a reader survives a repack under it.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Repository } from '../../src/backup/repository/index.js';
import { encodePack, PACK_PREFIX, readPackEntries } from '../../src/backup/repository/pack.js';
import { LocalDirStore } from '../../src/backup/store/local-dir.js';
import type { ByteRange, ObjectStore } from '../../src/backup/store/object-store.js';
import { backupImage, FAST, makeImage, MiB, PASS, restore, storedChunks, tempDir } from './helpers.js';

/** A LocalDirStore whose pack puts fail once `failFrom` packs went through, the way a crash mid-upload would: the put never completes. */
class FailingPacks implements ObjectStore {
  readonly capabilities;
  readonly describe = 'failing-packs';
  packPuts = 0;
  constructor(
    private readonly inner: LocalDirStore,
    private readonly failFrom: number,
  ) {
    this.capabilities = inner.capabilities;
  }
  async put(key: string, data: Uint8Array | readonly Uint8Array[], opts?: { signal?: AbortSignal }): Promise<void> {
    if (key.startsWith(PACK_PREFIX) && ++this.packPuts > this.failFrom) {
      // An aborted put: the temp file is written partly, then removed; the key never appears.
      await this.inner.put(key, data, { signal: AbortSignal.abort(new Error('simulated crash during the pack upload')) });
      return;
    }
    await this.inner.put(key, data, opts);
  }
  get(key: string): Promise<Uint8Array> {
    return this.inner.get(key);
  }
  getRange(key: string, range: ByteRange, opts?: { into?: Uint8Array }): Promise<Uint8Array> {
    return this.inner.getRange(key, range, opts);
  }
  has(key: string): Promise<boolean> {
    return this.inner.has(key);
  }
  list(prefix: string): AsyncIterable<string> {
    return this.inner.list(prefix);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of store.list(prefix)) out.push(k);
  return out.sort();
}

describe('backup repository: packs', () => {
  it('encodes a pack whose trailer lists every chunk object at its offset', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new LocalDirStore(dir);
      const parts = [Buffer.from('first object'), Buffer.from('2nd'), Buffer.alloc(1000, 7)];
      const ids = ['a', 'b', 'c'].map((c) => c.repeat(64));
      let at = 0;
      const entries = parts.map((p, k) => {
        const e = { id: ids[k]!, offset: at, length: p.length };
        at += p.length;
        return e;
      });
      const id = 'f'.repeat(32);
      await store.put(`${PACK_PREFIX}${id}`, encodePack(parts, entries));
      assert.deepEqual(await readPackEntries(store, id), entries);
      for (const e of entries) {
        const got = await store.getRange(`${PACK_PREFIX}${id}`, { offset: e.offset, length: e.length });
        assert.ok(Buffer.from(got).equals(parts[entries.indexOf(e)]!));
      }
      // Written as parts (writev): the same bytes as the joined pack.
      await store.put(`${PACK_PREFIX}${'e'.repeat(32)}`, [...parts, encodePack([], entries).subarray(0)]);
      assert.deepEqual(await readPackEntries(store, 'e'.repeat(32)), entries);
    } finally {
      await cleanup();
    }
  });

  it('writes many chunks per pack, one put each, and reads them back through the index', async () => {
    const { dir, cleanup } = await tempDir();
    const store = new LocalDirStore(join(dir, 'repo'));
    const repo = await Repository.init(store, PASS, { ...FAST, packSize: 3 * MiB });
    try {
      const img = makeImage(10 * MiB, [
        [0, 6 * MiB, 'random'],
        [6 * MiB, 4 * MiB, 'text'],
      ]);
      const m = await backupImage(repo, img, { backupId: 'p' });
      assert.equal(m.stats.newChunks, 10);
      const packs = await keys(store, PACK_PREFIX);
      assert.ok(packs.length >= 3 && packs.length <= 5, `10 chunks in packs of ~3 MiB: ${packs.length} packs`);
      const where = await storedChunks(repo);
      assert.equal(where.size, 10);
      assert.equal(new Set(where.values()).size, packs.length);
      // No chunk objects of their own: chunks live only in packs.
      assert.deepEqual(await keys(store, 'chunks/'), []);
      assert.deepEqual(await keys(store, 'index/'), ['index/p']);
      assert.ok((await restore(repo, 'p')).equals(img));
      // Another process finds them through the index alone.
      const other = await Repository.open(store, PASS, FAST);
      assert.ok((await restore(other, 'p')).equals(img));
      await other.close();
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('an interrupted pack upload leaves nothing visible, and the backup taken again succeeds', async () => {
    const { dir, cleanup } = await tempDir();
    const local = new LocalDirStore(join(dir, 'repo'));
    await (await Repository.init(local, PASS, FAST)).close();
    const failing = new FailingPacks(local, 1);
    const repo = await Repository.open(failing, PASS, { ...FAST, packSize: 2 * MiB });
    const img = makeImage(8 * MiB, [[0, 8 * MiB, 'random']]);
    try {
      await assert.rejects(backupImage(repo, img, { backupId: 'cut' }), /simulated crash/);
      assert.ok(failing.packPuts >= 2);
      assert.deepEqual(await repo.listBackups(), []);
      assert.equal(await local.has('manifests/cut'), false);
      assert.deepEqual(await keys(local, 'index/'), []);
      assert.deepEqual(await keys(local, 'locks/'), [], 'abort released the lock');
      // Only the one pack that was stored whole; no temp file of the cut one is left or listed.
      assert.equal((await keys(local, PACK_PREFIX)).length, 1);
      assert.deepEqual((await readdir(join(dir, 'repo', 'packs'))).filter((f) => f.startsWith('.')), []);

      const again = await Repository.open(local, PASS, { ...FAST, packSize: 2 * MiB });
      try {
        const m = await backupImage(again, img, { backupId: 'cut' });
        // The chunks of the pack that made it are found through its trailer, authenticated, and reused.
        assert.equal(m.stats.dedupedSlots, 2);
        assert.ok((await restore(again, 'cut')).equals(img));
        // gc: the first pack is now indexed by the retried backup; nothing it needs goes.
        const report = await again.gc();
        assert.equal(report.chunksDeleted, 0);
        assert.ok((await restore(again, 'cut')).equals(img));
        assert.deepEqual((await again.verify()).damaged, []);
      } finally {
        await again.close();
      }
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('gc deletes whole packs, repacks mostly-dead ones, keeps mostly-live ones, and a reader survives the repack', async () => {
    const { dir, cleanup } = await tempDir();
    const store = new LocalDirStore(join(dir, 'repo'));
    const repo = await Repository.init(store, PASS, FAST);
    try {
      const a = makeImage(8 * MiB, [[0, 8 * MiB, 'random']]);
      const b = Buffer.from(a);
      makeImage(4 * MiB, [[0, 4 * MiB, 'random']], 9).copy(b, 0); // b keeps a's slots 4-7
      const c = Buffer.from(a);
      makeImage(MiB, [[0, MiB, 'random']], 11).copy(c, 0); // c keeps a's slots 1-7
      const d = makeImage(3 * MiB, [[0, 3 * MiB, 'random']], 13);
      await backupImage(repo, a, { backupId: 'a' });
      await backupImage(repo, b, { backupId: 'b' }, 'vol-b');
      await backupImage(repo, d, { backupId: 'd' }, 'vol-d');
      assert.equal((await keys(store, PACK_PREFIX)).length, 3);

      // Deleting a: half of its pack (slots 0-3) is unneeded -> repacked; d's pack untouched.
      await repo.deleteBackup('a');
      const reading = repo.reader('b');
      const first = await reading.next(); // the index is loaded: b's chunks are located in the old packs
      assert.equal(first.done, false);
      const r1 = await repo.gc();
      assert.equal(r1.packsRepacked, 1);
      assert.equal(r1.packsDeleted, 0);
      assert.equal(r1.chunksDeleted, 4);
      const out = Buffer.alloc(b.length);
      const e0 = first.value!;
      if (e0.data) out.set(e0.data, e0.offset);
      for await (const e of { [Symbol.asyncIterator]: () => reading }) if (e.data) out.set(e.data, e.offset);
      assert.ok(out.equals(b), 'the reader followed the chunks into their new pack');

      // c needs only slot 0 of its own: a pack 7/8 live is kept whole.
      await backupImage(repo, c, { backupId: 'c' }, 'vol-c');
      // Deleting d: its pack has nothing anyone needs -> deleted whole.
      await repo.deleteBackup('d');
      const r2 = await repo.gc();
      assert.equal(r2.packsDeleted, 1);
      assert.equal(r2.packsRepacked, 0);
      assert.equal(r2.chunksDeleted, 3);
      for (const id of ['b', 'c']) assert.ok((await restore(repo, id)).equals(id === 'b' ? b : c));
      const v = await repo.verify();
      assert.deepEqual(v.damaged, []);
      assert.deepEqual(v.backups, ['b', 'c']);
    } finally {
      await repo.close();
      await cleanup();
    }
  });
});
