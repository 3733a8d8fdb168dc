// Shared steps of the backup end-to-end suites: data written through an NBD
// attach, whole-volume hashes, backups and restores through the Cinder API,
// and the chunk files of a local repository.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import type { ApiSession } from '../harness/aio.js';
import { attachLocal, detachLocal } from './helpers.js';

export const MiB = 1024 * 1024;

/** sha256 of the whole volume, read through a local attach. */
export async function volumeHash(s: ApiSession, id: string): Promise<string> {
  const t = await attachLocal(s, id);
  const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
  const h = createHash('sha256');
  try {
    for (let off = 0; off < c.size; off += 4 * MiB) h.update(await c.read(off, Math.min(4 * MiB, c.size - off)));
  } finally {
    await c.close();
    await detachLocal(s, id);
  }
  return h.digest('hex');
}

/** Writes each buffer at its offset and flushes. */
export async function writeAt(s: ApiSession, id: string, writes: readonly { offset: number; data: Buffer }[]): Promise<void> {
  const t = await attachLocal(s, id);
  const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
  try {
    for (const w of writes) await c.write(w.offset, w.data);
    await c.flush();
  } finally {
    await c.close();
    await detachLocal(s, id);
  }
}

export async function createBackup(s: ApiSession, body: Record<string, unknown>): Promise<string> {
  const r = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: body });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.backup.id;
  await s.waitFor(`/backups/${id}`, 'backup', ['available'], 120_000);
  return id;
}

/** Restores into a new volume and waits until both are available; the new volume's id. */
export async function restoreToNew(s: ApiSession, backupId: string): Promise<string> {
  const r = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${backupId}/restore`, { restore: {} });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await s.waitFor(`/backups/${backupId}`, 'backup', ['available'], 120_000);
  await s.waitFor(`/volumes/${r.body.restore.volume_id}`, 'volume', ['available'], 120_000);
  return r.body.restore.volume_id;
}

/** The file holding each chunk of a local repository, by chunk id: its pack
 *  (ROOT/packs/<pack>, listed by the pack's trailer), or, in the old layout, ROOT/chunks/xx/<id>. */
export function chunkFiles(repoRoot: string): Map<string, string> {
  const out = new Map<string, string>();
  let packs: string[] = [];
  try {
    packs = readdirSync(join(repoRoot, 'packs')).filter((f) => /^[0-9a-f]{32}$/.test(f));
  } catch {
    // no packs yet
  }
  for (const f of packs) {
    const path = join(repoRoot, 'packs', f);
    const b = readFileSync(path);
    // trailer: entries (id 32 | offset u32 | length u32) | count u32 | "BWPACK\0\1"
    const n = b.readUInt32LE(b.length - 12);
    const at = b.length - 12 - n * 40;
    for (let k = 0; k < n; k++) out.set(b.toString('hex', at + k * 40, at + k * 40 + 32), path);
  }
  const base = join(repoRoot, 'chunks');
  let dirs: string[];
  try {
    dirs = readdirSync(base);
  } catch {
    return out;
  }
  for (const d of dirs) {
    for (const f of readdirSync(join(base, d))) if (/^[0-9a-f]{64}$/.test(f)) out.set(f, join(base, d, f));
  }
  return out;
}

/** The ids in `after` that are not in `before`. */
export function newChunks(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): string[] {
  return [...after.keys()].filter((k) => !before.has(k)).sort();
}
