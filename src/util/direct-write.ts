// Durable writes of large objects (packs) with O_DIRECT. Through the page
// cache, writing a pack and then fsyncing it cost ~1.4 ms of kernel CPU per MiB
// on the reference machine (copy into the cache, then writeback from fsync in
// our own thread); with O_DIRECT the device reads our buffer and the same
// write costs ~0.15 ms/MiB. A backup writes each pack once and never reads it
// back soon, so the page cache bought nothing.
//
// O_DIRECT needs the buffer address, offset and length aligned to the logical
// block size. Node gives no aligned allocation, but a WebAssembly.Memory's
// buffer starts on a page boundary (64 KiB wasm pages), so that is where the
// bytes are assembled. The file is written padded to the next 4 KiB and then
// truncated to its size, and fsynced (O_DIRECT alone does not flush the
// device's cache nor the inode's size).
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const ALIGN = 4096;
const WASM_PAGE = 64 * 1024;
/**
 * Buffers are sized in steps of this, so every ordinary pack (8 MiB plus at
 * most one chunk) fits any free buffer: a new WebAssembly.Memory is a large
 * address-space reservation and fresh pages, so they are made once and reused.
 */
const STEP = 16 * 1024 * 1024;
const MAX_FREE = 4;
/** Larger objects take the buffered path (the copy would need a buffer this big). */
export const DIRECT_MAX = 256 * 1024 * 1024;

const free: Uint8Array[] = [];
let directBuffersMade = 0;

/** Aligned buffers made so far in this process (a gauge: they should be made once, then reused). */
export function alignedBuffersMade(): number {
  return directBuffersMade;
}

function take(size: number): Uint8Array {
  const k = free.findIndex((b) => b.length >= size);
  if (k >= 0) return free.splice(k, 1)[0]!;
  const pages = Math.ceil(Math.ceil(size / STEP) * STEP / WASM_PAGE);
  directBuffersMade++;
  return new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
}

function give(buf: Uint8Array): void {
  if (free.length < MAX_FREE) free.push(buf);
}

/** The filesystem refuses O_DIRECT (open or an aligned write fails with EINVAL): write through the cache instead. */
export class DirectUnsupported extends Error {
  override readonly name = 'DirectUnsupported';
}

/**
 * Creates `path` (which must not exist) holding `parts` back to back, durably.
 * Throws DirectUnsupported, with nothing left behind, when the filesystem
 * cannot do O_DIRECT; other errors propagate (the caller removes the file).
 */
export async function writeNewFileDirect(path: string, parts: readonly Uint8Array[], signal?: AbortSignal): Promise<void> {
  let size = 0;
  for (const p of parts) size += p.length;
  const padded = Math.ceil(size / ALIGN) * ALIGN;
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    await unlink(path).catch(() => undefined); // Linux may create the inode before refusing O_DIRECT
    throw new DirectUnsupported(`O_DIRECT refused for ${path}`, { cause: err });
  }
  const buf = take(padded);
  let refused = false;
  try {
    let at = 0;
    for (const p of parts) {
      buf.set(p, at);
      at += p.length;
    }
    buf.fill(0, size, padded);
    signal?.throwIfAborted();
    for (let done = 0; done < padded; ) {
      let n: number;
      try {
        n = (await fh.write(buf, done, padded - done, done)).bytesWritten;
      } catch (err) {
        refused = (err as NodeJS.ErrnoException).code === 'EINVAL' && done === 0;
        if (refused) throw new DirectUnsupported(`O_DIRECT write refused for ${path}`, { cause: err });
        throw err;
      }
      // A short direct write ends on a block boundary; one that does not cannot be resumed aligned.
      if (n <= 0 || n % ALIGN !== 0) throw new Error(`short O_DIRECT write to ${path} (${n} bytes at ${done})`);
      done += n;
    }
    if (padded !== size) await fh.truncate(size);
    await fh.sync();
  } finally {
    give(buf);
    await fh.close();
    if (refused) await unlink(path).catch(() => undefined);
  }
}

/** Whether files in `dir` take O_DIRECT (ext4, xfs: yes; some FUSE and network mounts: no). Writes and removes a probe file. */
export async function supportsDirectIo(dir: string): Promise<boolean> {
  const probe = join(dir, `.direct-probe-${randomBytes(6).toString('hex')}`);
  try {
    await writeNewFileDirect(probe, [new Uint8Array(ALIGN)]);
    return true;
  } catch (err) {
    if (err instanceof DirectUnsupported) return false;
    throw err;
  } finally {
    await unlink(probe).catch(() => undefined);
  }
}
