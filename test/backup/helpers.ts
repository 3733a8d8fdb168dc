// Shared by the backup repository tests: volume images with random, text-like
// and zero extents, a backup loop shaped like the backup role's, and restore.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository, type BackupManifest, type RepositoryInitOptions, type RepositorySecret } from '../../src/backup/repository/index.js';
import { LocalDirStore } from '../../src/backup/store/local-dir.js';
import { PACK_PREFIX, readPackEntries } from '../../src/backup/repository/pack.js';

export const MiB = 1024 * 1024;
export const KiB = 1024;
export const PASS: RepositorySecret = { passphrase: 'correct horse battery staple' };
/** Cheap scrypt: the tests open repositories many times. */
export const FAST: RepositoryInitOptions = { scrypt: { N: 1024, r: 8, p: 1 }, gcSettleMs: 0, gcPollMs: 20 };

export async function tempDir(prefix = 'bulwark-backup-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function newRepo(dir: string, opts: RepositoryInitOptions = {}): Promise<{ repo: Repository; store: LocalDirStore }> {
  const store = new LocalDirStore(join(dir, 'repo'));
  const repo = await Repository.init(store, PASS, { ...FAST, ...opts });
  return { repo, store };
}

/** Text-like bytes (words, numbers, newlines from a 4096-word vocabulary): zstd makes ~2:1 of it. */
export function textLike(n: number, seed: number): Buffer {
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const vocab: string[] = [];
  for (let w = 0; w < 4096; w++) {
    let s = '';
    const len = 2 + (rnd() % 9);
    for (let i = 0; i < len; i++) s += String.fromCharCode(97 + (rnd() % 26));
    vocab.push(s);
  }
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  while (at < n) {
    const r = rnd();
    const word = (r & 3) === 0 ? String(rnd() % 1_000_000) : vocab[Math.floor(((rnd() % 65536) / 65536) ** 2 * 4096)]!;
    at += out.write(word + ((r >> 4) % 12 === 0 ? '\n' : ' '), at, 'latin1');
  }
  return out;
}

export type Fill = 'random' | 'text' | 'zero';

/** An image from [offset, length, fill] extents over a zero background. */
export function makeImage(size: number, extents: readonly (readonly [number, number, Fill])[], seed = 1): Buffer {
  const img = Buffer.alloc(size);
  let n = seed;
  for (const [offset, length, fill] of extents) {
    if (fill === 'random') randomBytes(length).copy(img, offset);
    else if (fill === 'text') textLike(length, n++).copy(img, offset);
    else img.fill(0, offset, offset + length);
  }
  return img;
}

/** The 64 MiB sparse image of the round-trip tests: random, text and zero extents, some not chunk-aligned. */
export function sparseImage64(): Buffer {
  return makeImage(64 * MiB, [
    [0, 8 * MiB, 'random'],
    [20 * MiB, 16 * MiB, 'text'],
    [36 * MiB, 4 * MiB, 'random'],
    [36 * MiB + 256 * KiB, 512 * KiB, 'zero'], // a hole inside a chunk
    [50 * MiB + 3000, 4 * KiB, 'text'], // a small write in an otherwise empty chunk
    [63 * MiB + 100, 500, 'random'],
  ]);
}

function isZero(b: Uint8Array): boolean {
  for (const v of b) if (v !== 0) return false;
  return true;
}

export interface BackupPlan {
  readonly backupId: string;
  readonly parentId?: string;
  /** Slots whose bytes changed since the parent; the others are reused from it. */
  readonly changed?: ReadonlySet<number>;
  /** Hand zero slots to writeChunk instead of markZero (the worker must detect them). */
  readonly zerosAsData?: boolean;
  readonly groupId?: string;
  readonly snapshotId?: string;
}

/** Backs an image up the way the backup role will: zero extents marked, unchanged ones inherited. */
export async function backupImage(repo: Repository, img: Buffer, plan: BackupPlan, volumeId = 'vol-1'): Promise<BackupManifest> {
  const cs = repo.chunkSize;
  const w = await repo.writer({
    backupId: plan.backupId,
    volumeId,
    volumeSize: img.length,
    parentId: plan.parentId ?? null,
    groupId: plan.groupId ?? null,
    snapshotId: plan.snapshotId ?? null,
  });
  try {
    for (let off = 0, i = 0; off < img.length; off += cs, i++) {
      const len = Math.min(cs, img.length - off);
      if (plan.parentId && plan.changed && !plan.changed.has(i)) {
        w.reuseFromParent(off, len);
        continue;
      }
      const slot = img.subarray(off, off + len);
      if (!plan.zerosAsData && isZero(slot)) w.markZero(off, len);
      else await w.writeChunk(off, slot);
    }
    return await w.commit();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

export async function restore(repo: Repository, backupId: string): Promise<Buffer> {
  const m = await repo.readManifest(backupId);
  const out = Buffer.alloc(m.volumeSize);
  let expected = 0;
  for await (const e of repo.reader(backupId)) {
    if (e.offset !== expected) throw new Error(`extent at ${e.offset}, expected ${expected}`);
    if (e.data) out.set(e.data, e.offset);
    expected = e.offset + e.length;
  }
  if (expected !== m.volumeSize) throw new Error(`extents end at ${expected}, volume is ${m.volumeSize}`);
  return out;
}

/** Bytes of every object under dir (recursively), and how many chunk objects its packs hold. */
export async function storeUsage(dir: string): Promise<{ bytes: number; chunks: number }> {
  let bytes = 0;
  let chunks = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return; // no packs yet
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const b = await readFile(p);
        bytes += b.length;
        // A pack ends with its entry count and the magic "BWPACK\0\1".
        if (p.includes('/packs/') && !e.name.startsWith('.') && b.length >= 12) chunks += b.readUInt32LE(b.length - 12);
      }
    }
  };
  await walk(dir);
  return { bytes, chunks };
}

/** Every chunk id stored in the repository's packs, per pack trailer. */
export async function storedChunks(repo: Repository): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const k of repo.store.list(PACK_PREFIX)) {
    const pack = k.slice(PACK_PREFIX.length);
    for (const e of await readPackEntries(repo.store, pack)) out.set(e.id, pack);
  }
  return out;
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}
