// Manifests: one sealed JSON object per finished backup, `manifests/<backupId>`.
// Self-describing: with the repository key alone, a deployment that lost its
// state store can list backups, rebuild their volume and group records, and
// restore. A manifest resolves every slot to a chunk id itself (inherited
// extents are copied from the parent), so restoring reads one manifest and
// deleting a parent never breaks a child.
import { z } from 'zod';
import { ChunkTable } from './chunk-table.js';
import { openObject, sealObject } from './chunk-format.js';
import { AuthError } from './errors.js';

export const MANIFEST_PREFIX = 'manifests/';
const BACKUP_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function validateBackupId(id: string): void {
  // No dots: lock refs objects use "<id>.refs.<n>" and gc objects "gc.<run>".
  if (!BACKUP_ID.test(id)) throw new Error(`invalid backup id ${JSON.stringify(id)} (letters, digits, '_' and '-', at most 128)`);
}

export function manifestKey(backupId: string): string {
  return `${MANIFEST_PREFIX}${backupId}`;
}

const StatsSchema = z.object({
  slots: z.number().int(),
  dataSlots: z.number().int(),
  zeroSlots: z.number().int(),
  inheritedSlots: z.number().int(),
  writtenSlots: z.number().int(),
  dedupedSlots: z.number().int(),
  newChunks: z.number().int(),
  bytesWritten: z.number(),
  bytesNew: z.number(),
  bytesStored: z.number(),
  durationMs: z.number(),
});
export type BackupStats = z.infer<typeof StatsSchema>;

const SummarySchema = z.object({
  backupId: z.string().regex(BACKUP_ID),
  volumeId: z.string().min(1),
  volumeSize: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  parentId: z.string().nullable(),
  /** Ancestors, nearest first: the parent, its parent, ... */
  chain: z.array(z.string()),
  snapshotId: z.string().nullable(),
  /** The group snapshot / restore point this backup belongs to, if any. */
  groupId: z.string().nullable(),
  createdAt: z.string(),
  completedAt: z.string(),
  labels: z.record(z.string(), z.string()),
  stats: StatsSchema,
});
export type BackupSummary = z.infer<typeof SummarySchema>;

const ManifestSchema = SummarySchema.extend({
  format: z.literal('bulwark-backup-manifest'),
  version: z.literal(1),
  table: z.object({ encoding: z.literal('runs-v1'), data: z.string() }),
});

export interface BackupManifest extends BackupSummary {
  readonly table: ChunkTable;
}

export function summaryOf(m: BackupManifest): BackupSummary {
  const { table: _table, ...summary } = m;
  return summary;
}

export function sealManifest(encKey: Uint8Array, m: BackupManifest): Uint8Array {
  const json = {
    format: 'bulwark-backup-manifest',
    version: 1,
    ...summaryOf(m),
    table: { encoding: 'runs-v1', data: Buffer.from(m.table.encode()).toString('base64') },
  };
  return sealObject(encKey, 'manifest', m.backupId, Buffer.from(JSON.stringify(json)));
}

export function openManifest(encKey: Uint8Array, backupId: string, sealed: Uint8Array): BackupManifest {
  const key = manifestKey(backupId);
  const plain = openObject(encKey, 'manifest', backupId, key, sealed);
  // Past this point the bytes are authentic: a failure is a bug or a format we do not know.
  const parsed = ManifestSchema.safeParse(JSON.parse(Buffer.from(plain).toString('utf8')));
  if (!parsed.success) throw new AuthError(key, `authenticated but not a manifest this version reads (${parsed.error.issues[0]?.message ?? ''})`);
  const { format: _f, version: _v, table, ...summary } = parsed.data;
  if (summary.backupId !== backupId) throw new AuthError(key, 'manifest names another backup');
  return { ...summary, table: ChunkTable.decode(summary.volumeSize, summary.chunkSize, Buffer.from(table.data, 'base64')) };
}
