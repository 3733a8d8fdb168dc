// The token key file (identity.tokenKeyFile). Every API process that must accept
// the same tokens reads the same file; the first one to start creates it.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { MIN_TOKEN_KEY_BYTES } from './token-codec.js';

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

async function readKey(path: string): Promise<Buffer> {
  const st = await stat(path);
  // A key others can read lets them mint admin tokens; refuse rather than warn.
  if ((st.mode & 0o077) !== 0) throw new Error(`token key ${path} must not be group/world accessible (chmod 600)`);
  const key = await readFile(path);
  if (key.length < MIN_TOKEN_KEY_BYTES) throw new Error(`token key ${path} holds ${key.length} bytes; at least ${MIN_TOKEN_KEY_BYTES} are needed`);
  return key;
}

/** Reads the key at `path`, creating 32 random bytes (mode 0600) if the file does not exist. */
export async function loadOrCreateTokenKey(path: string): Promise<Buffer> {
  try {
    return await readKey(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Write a private temp file, then link() it into place: link fails with EEXIST
  // if another process won the race, and nobody ever sees a half-written key.
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, randomBytes(MIN_TOKEN_KEY_BYTES), { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
  } finally {
    await unlink(tmp);
  }
  return readKey(path);
}
