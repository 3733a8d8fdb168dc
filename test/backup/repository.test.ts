// Backup repository: round trip, dedup, incrementals, keys, import with an empty state.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BackupExistsError,
  IncompleteBackupError,
  Repository,
  RepositoryExistsError,
  secretFromKeyFile,
  WrongKeyError,
} from '../../src/backup/repository/index.js';
import { LocalDirStore } from '../../src/backup/store/local-dir.js';
import { backupImage, FAST, makeImage, MiB, newRepo, PASS, restore, sparseImage64, storeUsage, tempDir } from './helpers.js';

describe('backup repository: round trip and dedup', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: Repository;
  const img = sparseImage64();

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    ({ repo } = await newRepo(dir));
  });
  after(async () => {
    await repo.close();
    await cleanup();
  });

  it('restores a sparse 64 MiB image byte for byte', async () => {
    const m = await backupImage(repo, img, { backupId: 'full-1', groupId: 'rp-1', snapshotId: 'snap-1' });
    assert.equal(m.stats.slots, 64);
    // 0-8 random, 20-36 text, 36-40 random (one with a hole), 50 small text, 63 random tail.
    assert.equal(m.stats.dataSlots, 8 + 16 + 4 + 1 + 1);
    assert.equal(m.stats.zeroSlots, 64 - 30);
    const out = await restore(repo, 'full-1');
    assert.ok(out.equals(img), 'restored bytes differ from the image');
    // Text compresses, random does not: stored bytes sit between the two.
    assert.ok(m.stats.bytesStored < m.stats.bytesNew, `stored ${m.stats.bytesStored} of ${m.stats.bytesNew}`);
  });

  it('never stores zero chunks, even when handed to writeChunk', async () => {
    const before = await storeUsage(join(dir, 'repo', 'packs'));
    const zeros = Buffer.alloc(4 * MiB);
    const m = await backupImage(repo, zeros, { backupId: 'zeros', zerosAsData: true }, 'vol-z');
    assert.equal(m.stats.dataSlots, 0);
    assert.equal(m.stats.zeroSlots, 4);
    assert.equal((await storeUsage(join(dir, 'repo', 'packs'))).chunks, before.chunks);
    const out = await restore(repo, 'zeros');
    assert.ok(out.equals(zeros));
  });

  it('the same data backed up again adds no chunks', async () => {
    const before = await storeUsage(join(dir, 'repo', 'packs'));
    const m = await backupImage(repo, img, { backupId: 'full-2' }, 'vol-2'); // another volume, same bytes
    const grown = (await storeUsage(join(dir, 'repo', 'packs'))).bytes - before.bytes;
    assert.equal(m.stats.newChunks, 0);
    assert.equal(m.stats.dedupedSlots, m.stats.dataSlots);
    assert.equal(grown, 0);
    assert.ok((await restore(repo, 'full-2')).equals(img));
  });

  it('dedups without the index too (a fresh process, index objects gone)', async () => {
    const store = new LocalDirStore(join(dir, 'repo'));
    for await (const k of store.list('index/')) await store.delete(k);
    const other = await Repository.open(store, PASS, FAST);
    try {
      const m = await backupImage(other, img, { backupId: 'full-3' }, 'vol-3');
      assert.equal(m.stats.newChunks, 0);
    } finally {
      await other.close();
    }
  });

  it('manifests are self-describing: listed and restored from the repository and the key alone', async () => {
    const fresh = await Repository.open(new LocalDirStore(join(dir, 'repo')), PASS, FAST);
    try {
      const list = await fresh.listBackups();
      const full = list.find((b) => b.backupId === 'full-1');
      assert.ok(full);
      assert.equal(full.volumeId, 'vol-1');
      assert.equal(full.volumeSize, 64 * MiB);
      assert.equal(full.groupId, 'rp-1');
      assert.equal(full.snapshotId, 'snap-1');
      assert.equal(full.parentId, null);
      assert.ok(Date.parse(full.createdAt) <= Date.parse(full.completedAt));
      assert.deepEqual(list.map((b) => b.backupId).sort(), ['full-1', 'full-2', 'full-3', 'zeros']);
      assert.ok((await restore(fresh, 'full-1')).equals(img));
    } finally {
      await fresh.close();
    }
  });

  it('refuses an existing backup id, misaligned extents and an incomplete backup', async () => {
    await assert.rejects(repo.writer({ backupId: 'full-1', volumeId: 'v', volumeSize: MiB }), BackupExistsError);
    const w = await repo.writer({ backupId: 'partial', volumeId: 'v', volumeSize: 3 * MiB });
    await assert.rejects(w.writeChunk(4096, Buffer.alloc(MiB)), RangeError);
    await assert.rejects(w.writeChunk(0, Buffer.alloc(100)), RangeError);
    assert.throws(() => w.markZero(0, MiB / 2), RangeError);
    assert.throws(() => w.reuseFromParent(0, MiB), /no parent/);
    await w.writeChunk(0, randomBytes(MiB));
    await assert.rejects(w.writeChunk(0, randomBytes(MiB)), /already written/);
    await assert.rejects(w.commit(), (err: unknown) => err instanceof IncompleteBackupError && err.firstMissingOffset === MiB && err.missingChunks === 2);
    await w.abort();
    assert.equal(await repo.store.has('manifests/partial'), false);
    assert.equal(await repo.store.has('locks/partial'), false);
  });

  it('handles a volume whose size is not a multiple of the chunk size', async () => {
    const odd = makeImage(3 * MiB + 12345, [[0, 3 * MiB + 12345, 'random']]);
    await backupImage(repo, odd, { backupId: 'odd' }, 'vol-odd');
    assert.ok((await restore(repo, 'odd')).equals(odd));
  });
});

describe('backup repository: incrementals', () => {
  it('restores the right bytes at every point of a chain, and grows by about the changed bytes', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      const images: Buffer[] = [sparseImage64()];
      await backupImage(repo, images[0]!, { backupId: 'b0' });
      // Three incrementals; each changes a few chunks (random data: it does not compress).
      const changes = [
        [3, 21, 45],
        [0, 45, 63],
        [10, 11, 12],
      ];
      for (let n = 0; n < changes.length; n++) {
        const img = Buffer.from(images[n]!);
        const changed = new Set(changes[n]!);
        for (const slot of changed) randomBytes(MiB).copy(img, slot * MiB);
        const before = await storeUsage(join(dir, 'repo'));
        const m = await backupImage(repo, img, { backupId: `b${n + 1}`, parentId: `b${n}`, changed });
        const grown = (await storeUsage(join(dir, 'repo'))).bytes - before.bytes;
        assert.equal(m.parentId, `b${n}`);
        assert.deepEqual(m.chain, Array.from({ length: n + 1 }, (_, k) => `b${n - k}`));
        assert.equal(m.stats.inheritedSlots, 64 - changed.size);
        assert.equal(m.stats.newChunks, changed.size);
        const changedBytes = changed.size * MiB;
        assert.ok(grown <= 1.2 * changedBytes, `repository grew ${grown} bytes for ${changedBytes} changed`);
        images.push(img);
      }
      for (let n = 0; n < images.length; n++) {
        assert.ok((await restore(repo, `b${n}`)).equals(images[n]!), `backup b${n} restores different bytes`);
      }
      // Deleting a parent leaves its children whole: each manifest resolves every slot itself.
      await repo.deleteBackup('b1');
      await repo.gc();
      assert.ok((await restore(repo, 'b2')).equals(images[2]!));
      assert.ok((await restore(repo, 'b3')).equals(images[3]!));
    } finally {
      await repo.close();
      await cleanup();
    }
  });

  it('refuses to inherit across a resize or from another volume', async () => {
    const { dir, cleanup } = await tempDir();
    const { repo } = await newRepo(dir);
    try {
      const img = makeImage(2 * MiB + 100, [[0, 2 * MiB + 100, 'random']]);
      await backupImage(repo, img, { backupId: 'p' });
      const w = await repo.writer({ backupId: 'c', volumeId: 'vol-1', volumeSize: 3 * MiB, parentId: 'p' });
      w.reuseFromParent(0, 2 * MiB); // whole chunks in both
      assert.throws(() => w.reuseFromParent(2 * MiB, MiB), /resized/); // the parent's tail chunk was shorter
      await w.abort();
      await assert.rejects(repo.writer({ backupId: 'x', volumeId: 'other', volumeSize: MiB, parentId: 'p' }), /of volume vol-1/);
    } finally {
      await repo.close();
      await cleanup();
    }
  });
});

describe('backup repository: keys', () => {
  it('refuses a wrong passphrase with WrongKeyError, and opens with every key slot', async () => {
    const { dir, cleanup } = await tempDir();
    const store = new LocalDirStore(join(dir, 'repo'));
    const repo = await Repository.init(store, PASS, FAST);
    try {
      await backupImage(repo, makeImage(MiB, [[0, MiB, 'text']]), { backupId: 'k1' });
      await assert.rejects(Repository.open(store, { passphrase: 'correct horse battery stapler' }, FAST), WrongKeyError);
      await assert.rejects(Repository.init(store, PASS, FAST), RepositoryExistsError);

      const keyPath = join(dir, 'repo.key');
      await writeFile(keyPath, randomBytes(64));
      const slot = await repo.addKey(await secretFromKeyFile(keyPath), { N: 1024 });
      await repo.addKey({ passphrase: 'second passphrase' }, { N: 1024 });
      assert.equal(repo.keySlots().length, 3);

      for (const secret of [PASS, await secretFromKeyFile(keyPath), { passphrase: 'second passphrase' }]) {
        const r = await Repository.open(store, secret, FAST);
        assert.equal(r.id, repo.id);
        assert.equal((await restore(r, 'k1')).length, MiB);
        await r.close();
      }
      // A key file's bytes typed as a passphrase do not open it; nor does another key file.
      await assert.rejects(Repository.open(store, { keyFile: randomBytes(64) }, FAST), WrongKeyError);

      await repo.removeKey(slot);
      await assert.rejects(Repository.open(store, await secretFromKeyFile(keyPath), FAST), WrongKeyError);

      // No key material in the clear: the config holds parameters and wrapped keys only.
      const config = JSON.parse(Buffer.from(await store.get('config')).toString('utf8')) as Record<string, unknown> & { keySlots: { wrapped: string }[] };
      assert.deepEqual(Object.keys(config).sort(), ['chunker', 'compression', 'createdAt', 'encryption', 'format', 'keySlots', 'mac', 'repositoryId', 'version']);
      for (const slot of config.keySlots) assert.equal(Buffer.from(slot.wrapped, 'base64').length, 32 + 16); // key + GCM tag
      assert.equal(new Set(config.keySlots.map((s) => s.wrapped)).size, config.keySlots.length);
    } finally {
      await repo.close();
      await cleanup();
    }
  });
});

describe('backup repository: chunk buffers', () => {
  let cleanup: () => Promise<void>;
  let repo: Repository;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir());
    ({ repo } = await newRepo(dir));
  });
  after(async () => {
    await repo.close();
    await cleanup();
  });

  it('keeps chunks in slab slots from read to pack and back, and frees every slot', async () => {
    const data = Buffer.concat([randomBytes(20 * MiB), Buffer.alloc(MiB), randomBytes(11 * MiB) /* one shorter tail chunk */, randomBytes(MiB / 2)]);
    const cs = repo.chunkSize;
    const idle = repo.idleChunkBuffers;
    const w = await repo.writer({ backupId: 'slab', volumeId: 'vol-slab', volumeSize: data.length });
    for (let off = 0; off < data.length; off += cs) {
      const len = Math.min(cs, data.length - off);
      const buf = w.chunkBuffer(len);
      assert.ok(buf.buffer instanceof SharedArrayBuffer, 'a slab slot');
      buf.set(data.subarray(off, off + len));
      await w.writeChunk(off, buf, { transfer: true });
    }
    await w.commit();
    assert.equal(repo.idleChunkBuffers, idle, 'every slot came back after the packs were stored');
    // Owned: the consumer frees each chunk itself, some only after later ones were read.
    const out = Buffer.alloc(data.length);
    const held: Uint8Array[] = [];
    for await (const e of repo.reader('slab', { owned: true })) {
      if (!e.data) continue;
      out.set(e.data, e.offset);
      held.push(e.data);
      if (held.length > 4) repo.recycle(held.shift()!);
    }
    for (const h of held) repo.recycle(h);
    assert.ok(out.equals(data), 'owned read: restored bytes differ');
    assert.equal(repo.idleChunkBuffers, idle);
    // Lent (the default), and a reader stopped half-way: the reader frees what it lent and fetched ahead.
    assert.ok((await restore(repo, 'slab')).equals(data), 'lent read: restored bytes differ');
    for await (const e of repo.reader('slab')) if (e.offset >= 10 * MiB) break;
    await new Promise((r) => setTimeout(r, 100)); // chunks fetched ahead are freed as they land
    assert.equal(repo.idleChunkBuffers, idle, 'no slot leaked');
  });
});

describe('backup repository: chunk id algorithms', () => {
  it('new repositories use BLAKE3 keyed ids; one made with HMAC-SHA256 ids still backs up, dedups, verifies and restores', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const img = sparseImage64();
      for (const [name, chunkId] of [['b3', undefined], ['hmac', 'hmac-sha256']] as const) {
        const { repo, store } = await newRepo(join(dir, name), chunkId ? { chunkId } : {});
        try {
          const config = JSON.parse(Buffer.from(await store.get('config')).toString('utf8')) as { encryption: { chunkId: string } };
          assert.equal(config.encryption.chunkId, chunkId ?? 'blake3-keyed');
          await backupImage(repo, img, { backupId: 'one' });
          const again = await backupImage(repo, img, { backupId: 'two' }, 'vol-2');
          assert.equal(again.stats.newChunks, 0, `${name}: the same bytes dedup`);
          assert.deepEqual((await repo.verify()).damaged, [], `${name}: verify recomputes every id`);
          assert.ok((await restore(repo, 'two')).equals(img));
        } finally {
          await repo.close();
        }
      }
    } finally {
      await cleanup();
    }
  });
});
