// LocalDirStore: the ObjectStore contract on a directory, its on-disk layout,
// atomic puts, and the errors a full or forbidden disk gives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ObjectNotFoundError } from '../../src/backup/store/object-store.js';
import { writeNewFileDirect } from '../../src/util/direct-write.js';
import { LocalDirStore, LocalStoreError } from '../../src/backup/store/local-dir.js';
import { collect, MiB, tempDir } from './helpers.js';

const ID_A = 'ab'.repeat(32);
const ID_B = 'abcd'.repeat(16);
const ID_C = 'cd'.repeat(32);

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  }
  return out.sort();
}

describe('LocalDirStore', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: LocalDirStore;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    store = new LocalDirStore(join(dir, 'root'));
  });
  after(() => cleanup());

  it('puts, gets, overwrites, lists and deletes', async () => {
    const a = randomBytes(1000);
    await store.put('config', a);
    await store.put(`chunks/${ID_A}`, Buffer.from('A'));
    await store.put(`chunks/${ID_B}`, Buffer.from('B'));
    await store.put(`chunks/${ID_C}`, Buffer.from('C'));
    await store.put('manifests/b1', Buffer.from('m1'));
    await store.put('locks/b1.refs.000001', Buffer.from('r'));
    assert.deepEqual(Buffer.from(await store.get('config')), a);
    assert.equal(await store.has(`chunks/${ID_A}`), true);
    assert.equal(await store.has('manifests/none'), false);
    await assert.rejects(store.get('manifests/none'), (err: unknown) => err instanceof ObjectNotFoundError && err.key === 'manifests/none');

    await store.put('manifests/b1', Buffer.from('m1-new'));
    assert.equal(Buffer.from(await store.get('manifests/b1')).toString(), 'm1-new');

    assert.deepEqual((await collect(store.list('chunks/'))).sort(), [`chunks/${ID_A}`, `chunks/${ID_B}`, `chunks/${ID_C}`]);
    assert.deepEqual((await collect(store.list('chunks/ab'))).sort(), [`chunks/${ID_A}`, `chunks/${ID_B}`]);
    assert.deepEqual((await collect(store.list('chunks/abcd'))).sort(), [`chunks/${ID_B}`]);
    assert.deepEqual(await collect(store.list('locks/b1.')), ['locks/b1.refs.000001']);
    assert.deepEqual(await collect(store.list('nothing/')), []);
    assert.equal((await collect(store.list(''))).length, 6);

    await store.delete(`chunks/${ID_C}`);
    await store.delete(`chunks/${ID_C}`); // idempotent
    assert.equal(await store.has(`chunks/${ID_C}`), false);
  });

  it('fans chunk keys out on two characters and leaves no temp files', async () => {
    const files = await allFiles(join(dir, 'root'));
    assert.deepEqual(files, ['chunks/ab/' + ID_A, 'chunks/ab/' + ID_B, 'config', 'locks/b1.refs.000001', 'manifests/b1']);
    const mode = (await stat(join(dir, 'root', 'config'))).mode & 0o777;
    assert.equal(mode, 0o600);
  });

  it('rejects keys that could escape the root or clash with its layout', async () => {
    for (const key of ['../x', '/abs', 'a//b', 'a/../b', '.hidden', 'chunks/ab/cd', 'chunks/a', 'a/.tmp-1', '']) {
      await assert.rejects(store.put(key, Buffer.from('x')), /invalid/, key);
    }
  });

  it('puts concurrently to one key: the result is one whole object', async () => {
    const bodies = Array.from({ length: 8 }, () => randomBytes(256 * 1024));
    await Promise.all(bodies.map((b) => store.put('manifests/race', b)));
    const got = Buffer.from(await store.get('manifests/race'));
    assert.ok(bodies.some((b) => b.equals(got)));
    assert.ok(!(await allFiles(join(dir, 'root'))).some((f) => f.includes('.tmp-')));
  });

  it('writes large objects past the page cache (O_DIRECT), byte-exact at any length', async () => {
    const parts = [randomBytes(MiB + 7), randomBytes(13), randomBytes(2 * MiB - 3)];
    await store.put('packs/odd', parts);
    const exact = randomBytes(4 * MiB);
    await store.put('packs/aligned', exact);
    assert.ok(Buffer.from(await store.get('packs/odd')).equals(Buffer.concat(parts)));
    assert.equal((await stat(store.pathOf('packs/odd'))).size, 3 * MiB + 17, 'the block padding is truncated away');
    assert.ok(Buffer.from(await store.get('packs/aligned')).equals(exact));
    assert.ok(Buffer.from(await store.getRange('packs/odd', { offset: MiB, length: 20 })).equals(Buffer.concat(parts).subarray(MiB, MiB + 20)));
    assert.deepEqual((await readdir(join(dir, 'root', 'packs'))).filter((n) => n.startsWith('.')), []);
  });

  it('a direct write never replaces an existing file', async () => {
    const path = join(dir, 'exists.bin');
    await writeFile(path, 'keep');
    await assert.rejects(writeNewFileDirect(path, [randomBytes(2 * MiB)]), { code: 'EEXIST' });
    assert.equal((await stat(path)).size, 4);
  });

  it('recreates a directory removed behind its back', async () => {
    await store.put('index/x', Buffer.from('1'));
    await rm(join(dir, 'root', 'index'), { recursive: true });
    await store.put('index/y', Buffer.from('2'));
    assert.equal(Buffer.from(await store.get('index/y')).toString(), '2');
  });

  const isRoot = process.getuid?.() === 0;

  it('reports a full disk as ENOSPC and leaves no partial object', { skip: isRoot ? false : 'needs root to mount a small tmpfs' }, async (t) => {
    const mnt = join(dir, 'small');
    await mkdir(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    if (m.status !== 0) {
      t.skip(`mount refused: ${m.stderr.toString().trim()}`);
      return;
    }
    try {
      const small = new LocalDirStore(join(mnt, 'repo'));
      await small.put('config', Buffer.from('ok'));
      await assert.rejects(
        small.put(`chunks/${ID_A}`, randomBytes(2 * MiB)),
        (err: unknown) => err instanceof LocalStoreError && err.code === 'ENOSPC' && /no space left/.test(err.message) && err.message.includes(`chunks/${ID_A}`),
      );
      assert.equal(await small.has(`chunks/${ID_A}`), false);
      assert.ok(!(await allFiles(join(mnt, 'repo'))).some((f) => f.includes('.tmp-')));
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('reports a forbidden directory as EACCES', async () => {
    const locked = join(dir, 'locked');
    await mkdir(join(locked, 'manifests'), { recursive: true });
    await chmod(join(locked, 'manifests'), 0o500);
    await chmod(locked, 0o755);
    await chmod(dir, 0o755);
    // The child may not be able to read the checkout: give it its own copy of the module.
    const mod = join(dir, 'mod');
    await mkdir(mod, { mode: 0o755 });
    await writeFile(join(mod, 'package.json'), '{"type":"module"}\n', { mode: 0o644 });
    // The same layout below mod as below dist/src, so relative imports resolve.
    for (const f of ['backup/store/local-dir.js', 'backup/store/object-store.js', 'util/direct-write.js']) {
      await mkdir(dirname(join(mod, f)), { recursive: true, mode: 0o755 });
      await copyFile(fileURLToPath(new URL(`../../src/${f}`, import.meta.url)), join(mod, f));
      await chmod(join(mod, f), 0o644);
    }
    const check = `
      import { LocalDirStore } from ${JSON.stringify(pathToFileURL(join(mod, 'backup/store/local-dir.js')).href)};
      try { await new LocalDirStore(${JSON.stringify(locked)}).put('manifests/x', new Uint8Array(1)); console.log('stored'); }
      catch (e) { console.log(e.name, e.code, e.message); }`;
    // root ignores permissions: run the put as nobody.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', check], isRoot ? { uid: 65534, gid: 65534, cwd: mod, encoding: 'utf8' } : { encoding: 'utf8' });
    assert.match(r.stdout, /^LocalStoreError EACCES backup store .*: cannot store manifests\/x: permission denied/, r.stderr);
  });
});
