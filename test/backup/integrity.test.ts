// Tampering and damage: every chunk and metadata object is authenticated on
// read, verify names the damaged chunks and every backup that needs them.
// Chunks live in packs (each backup here stores its new chunks in one pack):
// damage is done to a chunk's bytes inside its pack file.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AuthError, ChunkMissingError, Repository } from '../../src/backup/repository/index.js';
import { LocalDirStore } from '../../src/backup/store/local-dir.js';
import { PACK_PREFIX, readPackEntries } from '../../src/backup/repository/pack.js';
import { backupImage, FAST, makeImage, MiB, newRepo, PASS, restore, tempDir } from './helpers.js';

describe('backup repository: integrity', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: Repository;
  let store: LocalDirStore;
  // a: slots 0-3 (random, text, random, text); b shares slots 0 and 1 with a; c shares nothing.
  const imgA = makeImage(4 * MiB, [
    [0, MiB, 'random'],
    [MiB, MiB, 'text'],
    [2 * MiB, MiB, 'random'],
    [3 * MiB, MiB, 'text'],
  ]);
  const imgB = Buffer.concat([imgA.subarray(0, 2 * MiB), makeImage(2 * MiB, [[0, 2 * MiB, 'random']])]);
  const imgC = makeImage(2 * MiB, [[0, 2 * MiB, 'random']]);
  let ids: string[] = [];
  /** Pack file contents as first written, by path. */
  const saved = new Map<string, Buffer>();
  const where = new Map<string, { path: string; offset: number; length: number }>();

  const sealedOf = (id: string): Buffer => {
    const w = where.get(id)!;
    return saved.get(w.path)!.subarray(w.offset, w.offset + w.length);
  };
  /** Rewrites the pack holding `id` with its chunk object replaced by `bytes` (same length) or truncated inside it. */
  const damage = async (id: string, edit: (chunk: Buffer) => void): Promise<void> => {
    const w = where.get(id)!;
    const pack = Buffer.from(saved.get(w.path)!);
    edit(pack.subarray(w.offset, w.offset + w.length));
    await writeFile(w.path, pack);
  };

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    ({ repo, store } = await newRepo(dir));
    const a = await backupImage(repo, imgA, { backupId: 'a' });
    await backupImage(repo, imgB, { backupId: 'b' }, 'vol-b');
    await backupImage(repo, imgC, { backupId: 'c' }, 'vol-c');
    ids = [0, 1, 2, 3].map((i) => a.table.idAt(i));
    for await (const k of store.list(PACK_PREFIX)) {
      const path = store.pathOf(k);
      saved.set(path, await readFile(path));
      for (const e of await readPackEntries(store, k.slice(PACK_PREFIX.length))) where.set(e.id, { path, offset: e.offset, length: e.length });
    }
    assert.equal(saved.size, 3, 'one pack per backup');
  });
  // Each test damages something; start every test from the intact objects.
  beforeEach(async () => {
    for (const [path, bytes] of saved) await writeFile(path, bytes);
  });
  after(async () => {
    await repo.close();
    await cleanup();
  });

  it('an intact repository verifies clean and restores', async () => {
    const report = await repo.verify();
    assert.deepEqual(report.damaged, []);
    assert.deepEqual(report.backups, ['a', 'b', 'c']);
    assert.equal(report.checked, 4 + 2 + 2);
    assert.ok((await restore(repo, 'a')).equals(imgA));
  });

  it('a flipped byte in a chunk: read throws AuthError, verify names the chunk and every backup using it', async () => {
    const shared = ids[0]!;
    await damage(shared, (c) => {
      c[c.length >> 1]! ^= 0x01;
    });

    await assert.rejects(restore(repo, 'a'), (err: unknown) => err instanceof AuthError && err.objectKey === `chunks/${shared}`);
    await assert.rejects(restore(repo, 'b'), AuthError);
    assert.ok((await restore(repo, 'c')).equals(imgC));

    const report = await repo.verify();
    assert.equal(report.damaged.length, 1);
    assert.equal(report.damaged[0]!.chunkId, shared);
    assert.equal(report.damaged[0]!.problem, 'corrupt');
    assert.deepEqual(report.damaged[0]!.backups, ['a', 'b']);
    // Verifying only c does not read the damaged chunk; verifying only a still names b.
    assert.deepEqual((await repo.verify(['c'])).damaged, []);
    assert.deepEqual((await repo.verify(['a'])).damaged[0]!.backups, ['a', 'b']);
  });

  it('a flipped compression flag or a truncated chunk fails authentication', async () => {
    const id = ids[1]!; // text: stored compressed
    assert.equal(sealedOf(id)[1], 1);
    await damage(id, (c) => {
      c[1] = 0;
    });
    await assert.rejects(restore(repo, 'a'), AuthError);
    // The pack cut short inside the chunk: a short read is damage, not absence.
    const w = where.get(id)!;
    await writeFile(w.path, saved.get(w.path)!.subarray(0, w.offset + 100));
    await assert.rejects(restore(repo, 'a'), (err: unknown) => err instanceof AuthError && /truncated/.test(err.detail));
    assert.deepEqual(
      (await repo.verify(['a'])).damaged.map((d) => [d.chunkId, d.problem]).filter(([c]) => c === id),
      [[id, 'corrupt']],
    );
  });

  it("a chunk swapped for another chunk's object fails authentication (the id is the AAD)", async () => {
    // Slots 0 and 2 are both random 1 MiB chunks: their objects have the same length.
    const other = Buffer.from(sealedOf(ids[0]!));
    await damage(ids[2]!, (c) => other.copy(c));
    await assert.rejects(restore(repo, 'a'), (err: unknown) => err instanceof AuthError && err.objectKey === `chunks/${ids[2]}` && /tag mismatch/.test(err.detail));
    const report = await repo.verify(['a']);
    assert.deepEqual(
      report.damaged.map((d) => [d.chunkId, d.problem]),
      [[ids[2], 'corrupt']],
    );
  });

  it('a missing pack: its chunks are reported as missing, with the backups that need them', async () => {
    const packOfA = where.get(ids[3]!)!.path;
    const rel = packOfA.slice(join(dir, 'repo').length + 1);
    await store.delete(rel);
    try {
      await assert.rejects(restore(repo, 'a'), ChunkMissingError);
      const report = await repo.verify();
      assert.deepEqual(
        report.damaged.map((d) => [d.chunkId, d.problem, d.backups]),
        [...ids].sort().map((id) => [id, 'missing', id === ids[0] || id === ids[1] ? ['a', 'b'] : ['a']]),
      );
      assert.ok((await restore(repo, 'c')).equals(imgC));
    } finally {
      await writeFile(packOfA, saved.get(packOfA)!);
    }
  });

  it('manifests are authenticated and bound to their backup id', async () => {
    const original = Buffer.from(await store.get('manifests/c'));
    try {
      await store.put('manifests/c', await store.get('manifests/a')); // c now holds a's manifest
      await assert.rejects(repo.readManifest('c'), AuthError);
      const report = await repo.verify();
      assert.deepEqual(report.unreadableManifests.map((u) => u.backupId), ['c']);
      const flipped = Buffer.from(original);
      flipped[20]! ^= 0x80;
      await store.put('manifests/c', flipped);
      await assert.rejects(repo.readManifest('c'), AuthError);
      // gc refuses to run past a manifest it cannot read: it might reference anything.
      await assert.rejects(repo.gc(), /nothing deleted/);
      for (const path of saved.keys()) assert.ok(await store.has(path.slice(join(dir, 'repo').length + 1)));
    } finally {
      await store.put('manifests/c', original);
    }
    assert.ok((await restore(repo, 'c')).equals(imgC));
  });

  it('an edited config parameter is detected on open', async () => {
    const original = await store.get('config');
    try {
      const config = JSON.parse(Buffer.from(original).toString('utf8')) as { chunker: { size: number } };
      config.chunker.size = 2 * MiB;
      await store.put('config', Buffer.from(JSON.stringify(config)));
      await assert.rejects(Repository.open(store, PASS, FAST), (err: unknown) => err instanceof AuthError && err.objectKey === 'config');
    } finally {
      await store.put('config', original);
    }
  });

  it('a damaged index object is skipped, never trusted', async () => {
    const keys: string[] = [];
    for await (const k of store.list('index/')) keys.push(k);
    assert.ok(keys.length > 0);
    for (const k of keys) {
      const b = Buffer.from(await store.get(k));
      b[b.length - 1]! ^= 1;
      await store.put(k, b);
    }
    const fresh = await Repository.open(store, PASS, FAST);
    try {
      // Dedup still works, through the pack trailers (each chunk read back and authenticated first).
      const m = await backupImage(fresh, imgA, { backupId: 'a2' });
      assert.equal(m.stats.newChunks, 0);
      assert.ok((await restore(fresh, 'a2')).equals(imgA));
    } finally {
      await fresh.close();
    }
  });
});
