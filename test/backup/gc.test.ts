// Garbage collection: never a chunk a finished or in-progress backup needs;
// chunks of a crashed backup only once its lock has expired.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ChunkVanishedError, Repository } from '../../src/backup/repository/index.js';
import { backupImage, FAST, makeImage, MiB, newRepo, PASS, restore, storedChunks, storeUsage, tempDir } from './helpers.js';

async function chunkIds(repo: Repository): Promise<Set<string>> {
  return new Set((await storedChunks(repo)).keys());
}

function idsOf(m: { table: { dataSlots(): Iterable<number>; idAt(i: number): string } }): Set<string> {
  return new Set([...m.table.dataSlots()].map((i) => m.table.idAt(i)));
}

function runCrashWriter(root: string, backupId: string, imagePath: string, slots: number[]): Promise<{ code: number | null; signal: string | null; out: string }> {
  const script = fileURLToPath(new URL('./fixtures/crash-writer.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, root, backupId, imagePath, slots.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

describe('backup repository: garbage collection', () => {
  it('after deleting one of two backups, keeps every chunk the other needs', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      const img1 = makeImage(8 * MiB, [[0, 8 * MiB, 'random']]);
      const img2 = Buffer.from(img1);
      makeImage(3 * MiB, [[0, 3 * MiB, 'text']], 7).copy(img2, 2 * MiB); // slots 2-4 differ
      const m1 = await backupImage(repo, img1, { backupId: 'one' });
      const m2 = await backupImage(repo, img2, { backupId: 'two' });
      const only1 = [...idsOf(m1)].filter((id) => !idsOf(m2).has(id));
      assert.equal(only1.length, 3);

      await repo.deleteBackup('one');
      const report = await repo.gc();
      // 'one' stored 8 chunks in one pack; 3 of them (37.5 %) are now unneeded: the pack is repacked.
      assert.equal(report.chunksDeleted, 3);
      assert.equal(report.chunksKept, 8);
      assert.equal(report.packsRepacked, 1);
      assert.equal(report.packsDeleted, 0);
      const left = await chunkIds(repo);
      for (const id of only1) assert.ok(!left.has(id), `chunk ${id} only the deleted backup used is still there`);
      for (const id of idsOf(m2)) assert.ok(left.has(id), `chunk ${id} of the remaining backup was deleted`);
      assert.ok((await restore(repo, 'two')).equals(img2));
      assert.deepEqual((await repo.verify()).damaged, []);

      // The consolidated index is the only one left, and a new backup still dedups against it.
      const index: string[] = [];
      for await (const k of repo.store.list('index/')) index.push(k);
      assert.deepEqual(index, [`index/gc.${report.runId}`]);
      const m3 = await backupImage(repo, img2, { backupId: 'three' }, 'vol-3');
      assert.equal(m3.stats.newChunks, 0);
      // A second gc finds nothing more.
      assert.equal((await repo.gc()).chunksDeleted, 0);
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('an interrupted writer leaves no backup; gc removes its chunks only after its lock expires', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      const img = makeImage(6 * MiB, [[0, 6 * MiB, 'random']]);
      const finished = await backupImage(repo, img.subarray(0, 3 * MiB), { backupId: 'finished' });
      const imagePath = join(dir, 'img');
      await writeFile(imagePath, img);
      // Slots 0-2 are the finished backup's chunks again; 3-5 are new.
      const child = await runCrashWriter(join(dir, 'repo'), 'crashed', imagePath, [0, 1, 2, 3, 4, 5]);
      assert.equal(child.signal, 'SIGKILL');
      assert.equal(child.out, 'stored\n');

      assert.equal(await repo.store.has('manifests/crashed'), false);
      assert.equal(await repo.store.has('index/crashed'), false);
      assert.deepEqual((await repo.listBackups()).map((b) => b.backupId), ['finished']);
      assert.equal(await repo.store.has('locks/crashed'), true);
      const all = await chunkIds(repo);
      assert.equal(all.size, 6);

      // The lock is young: its chunks are live.
      const young = await repo.gc();
      assert.deepEqual(young.liveLocks, ['crashed']);
      assert.equal(young.chunksDeleted, 0);
      assert.equal(young.chunksKeptByLocks, 3);
      assert.equal((await chunkIds(repo)).size, 6);

      // Once older than the expiry the lock protects nothing; the finished backup's chunks stay.
      await new Promise((r) => setTimeout(r, 300));
      const expired = await repo.gc({ lockExpiryMs: 200 });
      assert.deepEqual(expired.expiredLocks, ['crashed']);
      assert.equal(expired.chunksDeleted, 3);
      assert.equal(expired.packsDeleted, 1, "the crashed writer's pack, whole");
      assert.deepEqual(await chunkIds(repo), idsOf(finished));
      assert.ok((await restore(repo, 'finished')).equals(img.subarray(0, 3 * MiB)));
      const locks: string[] = [];
      for await (const k of repo.store.list('locks/')) locks.push(k);
      assert.deepEqual(locks, []);
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('a gc during a backup keeps the chunks the backup has stored', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      const img = makeImage(4 * MiB, [[0, 4 * MiB, 'text']]);
      const w = await repo.writer({ backupId: 'running', volumeId: 'v', volumeSize: img.length });
      await w.writeChunk(0, img.subarray(0, MiB));
      await w.writeChunk(MiB, img.subarray(MiB, 2 * MiB));
      await w.flush();
      const report = await repo.gc();
      assert.equal(report.chunksDeleted, 0);
      assert.equal(report.chunksKeptByLocks, 2);
      await w.writeChunk(2 * MiB, img.subarray(2 * MiB, 3 * MiB));
      await w.writeChunk(3 * MiB, img.subarray(3 * MiB));
      await w.commit();
      assert.ok((await restore(repo, 'running')).equals(img));
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('a backup that relied on a chunk a concurrent gc removed refuses to commit', async () => {
    const { dir, cleanup } = await tempDir();
    // References are published only on flush/commit here (renewal far away), to open the window.
    const { repo } = await newRepo(dir, { lockRenewMs: 3_600_000 });
    try {
      const img = makeImage(2 * MiB, [[0, 2 * MiB, 'random']]);
      await backupImage(repo, img, { backupId: 'old' });
      await repo.deleteBackup('old');
      const w = await repo.writer({ backupId: 'new', volumeId: 'vol-1', volumeSize: img.length });
      await w.writeChunk(0, img.subarray(0, MiB)); // dedup'd against the deleted backup's chunk (index)
      await w.writeChunk(MiB, img.subarray(MiB));
      const report = await repo.gc(); // sees no manifest and no published reference: deletes both
      assert.equal(report.chunksDeleted, 2);
      await assert.rejects(w.commit(), (err: unknown) => err instanceof ChunkVanishedError && err.chunkIds.length === 2);
      await w.abort();
      assert.equal(await repo.store.has('manifests/new'), false);
      // Taken again, the backup stores its chunks and restores.
      await backupImage(repo, img, { backupId: 'new' });
      assert.ok((await restore(repo, 'new')).equals(img));
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('a dry run deletes nothing', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      await backupImage(repo, makeImage(2 * MiB, [[0, 2 * MiB, 'random']]), { backupId: 'x' });
      await repo.deleteBackup('x');
      const before = await storeUsage(join(dir, 'repo', 'packs'));
      const report = await repo.gc({ dryRun: true });
      assert.equal(report.chunksPresent - report.chunksKept, 2);
      assert.equal(report.chunksDeleted, 0);
      assert.deepEqual(await storeUsage(join(dir, 'repo', 'packs')), before);
      const other = await Repository.open(repo.store, PASS, FAST);
      assert.equal((await other.gc()).chunksDeleted, 2);
      await other.close();
    } finally {
      await repo.close();
      await cleanup();
    }
  });
});
