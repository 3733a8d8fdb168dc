// Streams image data to a file while hashing it, so an upload of any size costs
// a fixed amount of memory. The file is written under a temporary name and only
// renamed into place by the caller once the data has been inspected.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HEADER_BYTES } from './inspect.js';

export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the image data is larger than the limit of ${limit} bytes`);
  }
}

export interface ReceivedData {
  readonly path: string;
  readonly size: number;
  readonly md5: string;
  readonly sha512: string;
}

/** Hashes and counts what passes through; fails once more than `limit` bytes came. */
export class HashingCounter extends Transform {
  readonly md5 = createHash('md5');
  readonly sha512 = createHash('sha512');
  size = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return cb(new TooLargeError(this.limit));
    this.md5.update(chunk);
    this.sha512.update(chunk);
    cb(null, chunk);
  }
}

export const partPath = (dir: string, imageId: string): string => join(dir, `.${imageId}.${randomBytes(6).toString('hex')}.part`);
export const finalPath = (dir: string, imageId: string): string => join(dir, imageId);

/** Writes `source` to a new temporary file in `dir`; on any failure the file is removed. */
export async function receiveToFile(source: Readable, dir: string, imageId: string, limit: number): Promise<ReceivedData> {
  const path = partPath(dir, imageId);
  const counter = new HashingCounter(limit);
  try {
    await pipeline(source, counter, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    await unlink(path).catch(() => undefined);
    throw err;
  }
  return { path, size: counter.size, md5: counter.md5.digest('hex'), sha512: counter.sha512.digest('hex') };
}

/** Hashes a file already on disk (an image written by a volume upload). */
export async function hashFile(path: string): Promise<{ size: number; md5: string; sha512: string }> {
  const counter = new HashingCounter(Number.MAX_SAFE_INTEGER);
  await pipeline(createReadStream(path), counter, async function* (src: AsyncIterable<Buffer>) {
    for await (const _ of src) void _;
  });
  return { size: counter.size, md5: counter.md5.digest('hex'), sha512: counter.sha512.digest('hex') };
}

export async function readHeader(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export { rename, unlink };
