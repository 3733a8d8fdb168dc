// The ObjectStore port on a local directory (a disk, or an NFS/CIFS mount of a
// backup target). Keys are paths below the root; chunk keys fan out on their
// first two characters so no directory holds more than ~1/256 of the chunks.
//
// put is atomic and durable: the bytes go to a temp file in the destination
// directory, are fsynced, renamed over the key, and the directory is fsynced,
// so after a crash a key holds either its old object or the whole new one.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { DIRECT_MAX, DirectUnsupported, writeNewFileDirect } from '../../util/direct-write.js';
import { ObjectNotFoundError, type ByteRange, type ObjectStore, type ObjectStoreCapabilities } from './object-store.js';

/** A filesystem condition that retrying will not fix: no space, or no permission. */
export class LocalStoreError extends Error {
  override readonly name = 'LocalStoreError';
  constructor(
    readonly code: 'ENOSPC' | 'EACCES' | 'EROFS',
    readonly op: string,
    readonly key: string,
    readonly root: string,
    options: { cause: unknown },
  ) {
    const what =
      code === 'ENOSPC'
        ? 'no space left on the device (or quota exhausted)'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : 'permission denied';
    super(`backup store ${root}: cannot ${op} ${key}: ${what}`, options);
  }
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const CHUNK_PREFIX = 'chunks/';
const TEMP_PREFIX = '.tmp-';
/** Below this a put goes through the page cache: O_DIRECT gains nothing on small metadata objects. */
const DIRECT_MIN = 1024 * 1024;

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

export class LocalDirStore implements ObjectStore {
  readonly capabilities: ObjectStoreCapabilities = { atomicPut: true, conditionalPut: false, readInto: true };
  readonly describe: string;
  // Directories known to exist, so a put does not mkdir on every call.
  private readonly knownDirs = new Set<string>();
  private readonly handles = new Map<string, CachedHandle>();
  /** Large puts bypass the page cache until the filesystem refuses O_DIRECT once. */
  private direct = true;

  constructor(readonly root: string) {
    this.describe = `dir:${root}`;
  }

  /** The file a key lives in. Rejects keys that could escape the root or collide with temp files. */
  pathOf(key: string): string {
    const parts = key.split('/');
    if (parts.length === 0 || parts.some((p) => !SEGMENT.test(p))) throw new Error(`invalid object key ${JSON.stringify(key)}`);
    if (key.startsWith(CHUNK_PREFIX)) {
      // Only flat chunk keys: a nested one would be ambiguous with the fan-out directories.
      const name = parts[1]!;
      if (parts.length !== 2 || name.length < 3) throw new Error(`invalid chunk key ${JSON.stringify(key)}`);
      return join(this.root, 'chunks', name.slice(0, 2), name);
    }
    return join(this.root, ...parts);
  }

  private keyOf(path: string): string | undefined {
    const parts = relative(this.root, path).split(sep);
    if (parts.some((p) => p.startsWith('.'))) return undefined;
    if (parts[0] === 'chunks') {
      if (parts.length !== 3 || parts[2]!.slice(0, 2) !== parts[1]) return undefined;
      return `${CHUNK_PREFIX}${parts[2]}`;
    }
    return parts.join('/');
  }

  private fail(err: unknown, op: string, key: string): unknown {
    const code = errnoOf(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') return new LocalStoreError('ENOSPC', op, key, this.root, { cause: err });
    if (code === 'EACCES' || code === 'EPERM') return new LocalStoreError('EACCES', op, key, this.root, { cause: err });
    if (code === 'EROFS') return new LocalStoreError('EROFS', op, key, this.root, { cause: err });
    return err;
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[], opts?: { signal?: AbortSignal }): Promise<void> {
    const path = this.pathOf(key);
    this.dropHandle(path);
    const dir = dirname(path);
    const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      await this.ensureDir(dir);
      try {
        await this.writeTemp(tmp, data, opts?.signal);
      } catch (err) {
        // The directory was removed behind our cache: create it again, once.
        if (errnoOf(err) !== 'ENOENT') throw err;
        this.knownDirs.delete(dir);
        await this.ensureDir(dir);
        await this.writeTemp(tmp, data, opts?.signal);
      }
      await rename(tmp, path);
      this.dropHandle(path); // a read may have opened the old version meanwhile
      await fsyncDir(dir);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw this.fail(err, 'store', key);
    }
  }

  /** Creates `tmp` holding `data`, durably: large objects with O_DIRECT where the filesystem takes it. */
  private async writeTemp(tmp: string, data: Uint8Array | readonly Uint8Array[], signal: AbortSignal | undefined): Promise<void> {
    const parts = data instanceof Uint8Array ? [data] : data;
    const size = parts.reduce((n, p) => n + p.length, 0);
    if (this.direct && size >= DIRECT_MIN && size <= DIRECT_MAX) {
      try {
        return await writeNewFileDirect(tmp, parts, signal);
      } catch (err) {
        if (!(err instanceof DirectUnsupported)) throw err;
        this.direct = false; // this filesystem (tmpfs, some FUSE mounts) does not do O_DIRECT
      }
    }
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await writeParts(fh, parts, signal);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async get(key: string, opts?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const path = this.pathOf(key);
    try {
      return await readFile(path, opts?.signal ? { signal: opts.signal } : {});
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new ObjectNotFoundError(key);
      throw this.fail(err, 'read', key);
    }
  }

  async getRange(key: string, range: ByteRange, opts?: { into?: Uint8Array }): Promise<Uint8Array> {
    const path = this.pathOf(key);
    try {
      return await this.withHandle(path, async (fh) => {
        let offset: number;
        let length: number;
        if ('suffix' in range) {
          const size = (await fh.stat()).size;
          length = Math.min(range.suffix, size);
          offset = size - length;
        } else {
          offset = range.offset;
          length = range.length;
        }
        const into = opts?.into;
        const buf = into && into.length >= length ? Buffer.from(into.buffer, into.byteOffset, length) : Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break; // past the end: the caller sees a short read
          got += bytesRead;
        }
        return got === length ? buf : buf.subarray(0, got);
      });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new ObjectNotFoundError(key);
      throw this.fail(err, 'read', key);
    }
  }

  /**
   * Ranged reads share a few open file handles (a restore reads a pack a chunk
   * at a time: one pread instead of open, read and close). Objects are only
   * ever replaced by rename or deleted, never written in place, so a handle
   * reads one whole version of its object; put and delete of a key drop its handle.
   */
  private async withHandle<T>(path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    let h = this.handles.get(path);
    if (h) {
      clearTimeout(h.idle);
      this.handles.delete(path); // most recently used last
      this.handles.set(path, h);
    } else {
      const fresh: CachedHandle = { fh: open(path, 'r'), users: 0, dropped: false };
      fresh.fh.catch(() => {
        if (this.handles.get(path) === fresh) this.handles.delete(path);
      });
      this.handles.set(path, fresh);
      while (this.handles.size > MAX_HANDLES) this.dropHandle(this.handles.keys().next().value!);
      h = fresh;
    }
    h.users++;
    try {
      return await fn(await h.fh);
    } finally {
      h.users--;
      if (h.dropped && h.users === 0) closeQuietly(h.fh);
      // Closed once idle: an fd is never left for the garbage collector to close.
      else if (h.users === 0) {
        const held = h;
        held.idle = setTimeout(() => {
          if (this.handles.get(path) === held) this.dropHandle(path);
        }, HANDLE_IDLE_MS);
        held.idle.unref();
      }
    }
  }

  private dropHandle(path: string): void {
    const h = this.handles.get(path);
    if (!h) return;
    this.handles.delete(path);
    clearTimeout(h.idle);
    h.dropped = true;
    if (h.users === 0) closeQuietly(h.fh);
  }

  async has(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return false;
      throw this.fail(err, 'stat', key);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    // Walk only the directory the prefix names (its part up to the last '/').
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut < 0 ? '' : prefix.slice(0, cut);
    if (dirKey !== '' && dirKey.split('/').some((p) => !SEGMENT.test(p))) return;
    let start = dirKey === '' ? this.root : join(this.root, ...dirKey.split('/'));
    // A prefix of a chunk id narrows the walk to its fan-out directory.
    if (dirKey === 'chunks' && prefix.length >= CHUNK_PREFIX.length + 2) start = join(start, prefix.slice(CHUNK_PREFIX.length, CHUNK_PREFIX.length + 2));
    for await (const path of this.walk(start, prefix)) {
      const key = this.keyOf(path);
      if (key !== undefined && key.startsWith(prefix)) yield key;
    }
  }

  private async *walk(dir: string, prefix: string): AsyncIterable<string> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw this.fail(err, 'list', prefix);
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // temp files of puts in progress or interrupted
      const path = join(dir, e.name);
      if (e.isDirectory()) yield* this.walk(path, prefix);
      else if (e.isFile()) yield path;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      this.dropHandle(this.pathOf(key));
      await unlink(this.pathOf(key));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw this.fail(err, 'delete', key);
    }
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const first = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (first !== undefined) {
      // Make the new directory entries durable: fsync each created directory's parent.
      for (let d = dir; ; d = dirname(d)) {
        await fsyncDir(dirname(d));
        if (d === first || dirname(d) === d) break;
      }
    }
    this.knownDirs.add(dir);
  }
}

interface CachedHandle {
  readonly fh: Promise<FileHandle>;
  users: number;
  dropped: boolean;
  idle?: NodeJS.Timeout;
}

const MAX_HANDLES = 16;
const HANDLE_IDLE_MS = 500;

function closeQuietly(fh: Promise<FileHandle>): void {
  fh.then((h) => h.close()).catch(() => undefined);
}

/** writev in batches (the kernel takes at most IOV_MAX buffers a call), resuming after short writes. */
async function writeParts(fh: FileHandle, parts: readonly Uint8Array[], signal: AbortSignal | undefined): Promise<void> {
  const queue = parts.filter((p) => p.length > 0);
  let i = 0;
  while (i < queue.length) {
    signal?.throwIfAborted();
    const batch = queue.slice(i, i + 512);
    let written = (await fh.writev(batch)).bytesWritten;
    for (const b of batch) {
      if (written >= b.length) {
        written -= b.length;
        i++;
      } else {
        queue[i] = b.subarray(written); // short write: the rest of this part goes next
        break;
      }
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
