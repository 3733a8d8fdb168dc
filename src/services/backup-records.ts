// Backup export and import (Cinder's export_record/import_record): a backup's
// database record, base64 JSON, that lets another deployment (or this one
// after losing its database) take the backup back from the repository.
//
// The record carries Cinder's backup field names (id, size, display_name,
// container, parent_id, data_timestamp, ...) so it reads like Cinder's, and
// Bulwark's own part under driver_info: manifest_id names the manifest in the
// repository. It is the exported backup's id and stays put when an importer
// gives the record a new id (as tempest does), so the import still finds the
// data it describes.
import { z } from 'zod';
import { invalidInput } from '../api/errors.js';
import { uuidField } from '../api/validate.js';
import { nowIso } from '../store/db.js';
import type { BackupRow } from '../store/schema.js';
import { BACKUP_TARGET, getBackup, invalidBackup } from './backups.js';
import type { Caller, ServiceDeps } from './deps.js';
import { enforceQuota } from './quotas.js';

/** What export_record names as the backup service; tempest expects Cinder's driver namespace. */
export const BACKUP_SERVICE = 'cinder.backup.drivers.bulwark';
/** Services import_record accepts: ours, under its full and its short name. */
export const IMPORTABLE_SERVICES = [BACKUP_SERVICE, 'bulwark'] as const;
/** Cinder's volume_id of an imported backup whose record names none. */
export const IMPORT_VOLUME_ID = '00000000-0000-0000-0000-000000000000';
export const RECORD_FORMAT = 1;

export interface ExportedRecord {
  readonly backupService: string;
  readonly backupUrl: string;
}

/** Builds the record of an available backup; nothing is written. */
export async function exportBackupRecord(deps: ServiceDeps, caller: Caller, id: string, authorize: () => void): Promise<ExportedRecord> {
  const row = await getBackup(deps.store.db, caller, id);
  authorize();
  if (row.status !== 'available') throw invalidBackup(`Backup status must be available and not ${row.status}.`);
  const record = {
    id: row.id,
    user_id: row.user_id,
    project_id: row.project_id,
    volume_id: row.volume_id,
    snapshot_id: row.snapshot_id,
    host: row.host,
    availability_zone: row.availability_zone,
    container: row.container,
    parent_id: row.parent_id,
    status: row.status,
    fail_reason: row.fail_reason,
    size: row.size,
    display_name: row.name,
    display_description: row.description,
    object_count: row.object_count,
    data_timestamp: row.data_timestamp,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    encryption_key_id: null,
    service: BACKUP_SERVICE,
    driver_info: { format: RECORD_FORMAT, manifest_id: row.manifest_id ?? row.id, tracking: row.tracking, created_at: row.created_at },
  };
  return { backupService: BACKUP_SERVICE, backupUrl: Buffer.from(JSON.stringify(record), 'utf8').toString('base64') };
}

const optionalText = z.string().max(255).nullable().optional();
const recordSchema = z.looseObject({
  id: uuidField,
  size: z.number().int().min(0).max(2 ** 31),
  volume_id: z.string().nullable().optional(),
  snapshot_id: z.string().nullable().optional(),
  container: optionalText,
  parent_id: uuidField.nullable().optional(),
  display_name: optionalText,
  display_description: optionalText,
  object_count: z.number().int().min(0).nullable().optional(),
  data_timestamp: z.string().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  driver_info: z.record(z.string(), z.unknown()).optional(),
});
export type BackupRecord = z.infer<typeof recordSchema>;

/** Cinder's Backup.decode_record plus the two fields its import needs. */
export function decodeBackupRecord(backupUrl: string): BackupRecord {
  const text = backupUrl.replace(/\s+/g, '');
  if (text.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) throw invalidInput("Can't decode backup record.");
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
  } catch {
    throw invalidInput("Can't parse backup record.");
  }
  if (!decoded || typeof decoded !== 'object' || Array.isArray(decoded)) throw invalidInput("Can't parse backup record.");
  if (!('id' in decoded)) throw invalidInput('Provided backup record is missing an id');
  if (!('size' in decoded)) throw invalidInput('Provided backup record is missing size attribute');
  const res = recordSchema.safeParse(decoded);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw invalidInput(`Invalid backup record field ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return res.data;
}

/** Cinder prints naive UTC; a time without an offset is UTC, not local time. */
function isoOrNull(text: string | null | undefined): string | null {
  if (!text) return null;
  const t = new Date(/(Z|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

/**
 * Makes the backup row of an imported record in the caller's project, in
 * 'creating', filled from the record, and enqueues one import_backup job with
 * payload {record} (the decoded record). The role checks the manifest exists
 * in the repository and sets 'available', or 'error' with a fail_reason.
 */
export async function importBackupRecord(deps: ServiceDeps, caller: Caller, backupService: string, backupUrl: string): Promise<BackupRow> {
  if (!(IMPORTABLE_SERVICES as readonly string[]).includes(backupService)) {
    throw invalidBackup(`backup service ${backupService} is not served by this deployment; it serves ${BACKUP_SERVICE}.`);
  }
  const record = decodeBackupRecord(backupUrl);
  const id = record.id;
  const row = await deps.store.transaction(async (trx) => {
    // Any project's backup with that id blocks the import, as in Cinder.
    const existing = await trx.selectFrom('backups').select('id').where('id', '=', id).executeTakeFirst();
    if (existing) throw invalidBackup('Backup already exists in database.');
    await enforceQuota(trx, deps.config, caller.projectId, { backups: 1, backup_gigabytes: record.size });
    const parentId = record.parent_id ?? null;
    const driverInfo = (record as { driver_info?: Record<string, unknown> }).driver_info ?? {};
    const backup: BackupRow = {
      id,
      manifest_id: typeof driverInfo['manifest_id'] === 'string' ? driverInfo['manifest_id'] : id,
      project_id: caller.projectId,
      user_id: caller.userId,
      volume_id: record.volume_id && uuidField.safeParse(record.volume_id).success ? record.volume_id : IMPORT_VOLUME_ID,
      snapshot_id: record.snapshot_id && uuidField.safeParse(record.snapshot_id).success ? record.snapshot_id : null,
      name: record.display_name ?? null,
      description: record.display_description ?? null,
      status: 'creating',
      fail_reason: null,
      size: record.size,
      object_count: record.object_count ?? 0,
      container: record.container ?? null,
      availability_zone: deps.config.availabilityZone,
      is_incremental: parentId ? 1 : 0,
      parent_id: parentId,
      data_timestamp: isoOrNull(record.data_timestamp),
      host: null,
      metadata: JSON.stringify(record.metadata ?? {}),
      restore_volume_id: null,
      temp_snapshot_id: null,
      tracking: null,
      bytes_read: 0,
      bytes_total: 0,
      bytes_done: 0,
      created_at: nowIso(),
      updated_at: null,
    };
    await trx.insertInto('backups').values(backup).execute();
    await deps.jobs.enqueue(trx, { kind: 'import_backup', target: BACKUP_TARGET, resourceId: id, payload: { record } });
    return backup;
  });
  deps.kick?.();
  return row;
}
