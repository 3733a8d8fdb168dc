// verify: re-read and authenticate every chunk the selected backups need, and
// name every backup (selected or not) that a damaged chunk breaks.
import type { RepoContext } from './context.js';
import { AuthError, ChunkMissingError } from './errors.js';
import type { BackupManifest } from './manifest.js';
import { fetchChunk } from './reader.js';
import { forEachLimit } from './semaphore.js';

export interface DamagedChunk {
  readonly chunkId: string;
  readonly problem: 'missing' | 'corrupt';
  readonly detail: string;
  /** Every backup whose restore needs this chunk, sorted. */
  readonly backups: string[];
}

export interface VerifyReport {
  /** The backups whose chunks were checked. */
  readonly backups: string[];
  /** Distinct chunks read and authenticated (or found missing). */
  readonly checked: number;
  readonly damaged: DamagedChunk[];
  /** Manifests that are absent or fail authentication: those backups cannot be restored. */
  readonly unreadableManifests: { readonly backupId: string; readonly detail: string }[];
}

export async function verifyBackups(
  ctx: RepoContext,
  allIds: readonly string[],
  readManifest: (id: string) => Promise<BackupManifest>,
  only?: readonly string[],
): Promise<VerifyReport> {
  const users = new Map<string, string[]>();
  const manifests = new Map<string, BackupManifest>();
  const unreadable: { backupId: string; detail: string }[] = [];
  const wanted = [...new Set(only ?? allIds)];
  const wantedSet = new Set(wanted);
  const readable = new Set(allIds);
  for (const id of wanted) if (!readable.has(id)) unreadable.push({ backupId: id, detail: 'no such backup' });
  await forEachLimit(allIds, ctx.options.inFlight, async (id) => {
    try {
      manifests.set(id, await readManifest(id));
    } catch (err) {
      if (wantedSet.has(id)) unreadable.push({ backupId: id, detail: err instanceof Error ? err.message : String(err) });
    }
  });
  for (const [backupId, m] of manifests) {
    for (const i of m.table.dataSlots()) {
      const chunkId = m.table.idAt(i);
      const list = users.get(chunkId);
      if (!list) users.set(chunkId, [backupId]);
      else if (list[list.length - 1] !== backupId) list.push(backupId);
    }
  }
  const needed = new Set<string>();
  for (const id of wanted) {
    const m = manifests.get(id);
    if (m) for (const i of m.table.dataSlots()) needed.add(m.table.idAt(i));
  }
  const damaged: DamagedChunk[] = [];
  await forEachLimit(needed, ctx.options.inFlight, async (chunkId) => {
    try {
      ctx.codec.release(await fetchChunk(ctx, chunkId)); // authenticated: the bytes themselves are not needed
    } catch (err) {
      const backups = [...(users.get(chunkId) ?? [])].sort();
      if (err instanceof ChunkMissingError) damaged.push({ chunkId, problem: 'missing', detail: err.message, backups });
      else if (err instanceof AuthError) damaged.push({ chunkId, problem: 'corrupt', detail: err.detail, backups });
      else throw err; // the store failed: no verdict on this chunk
    }
  });
  damaged.sort((a, b) => a.chunkId.localeCompare(b.chunkId));
  return { backups: wanted.filter((id) => manifests.has(id)).sort(), checked: needed.size, damaged, unreadableManifests: unreadable };
}
