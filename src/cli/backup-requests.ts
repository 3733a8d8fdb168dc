// `bulwark backup|repository` arguments → Cinder v3 requests (and Bulwark's
// repository extension), pure so the mapping is unit-tested without a server.
import { readFileSync } from 'node:fs';
import { asRecordOrNull, CliError, type ApiRequest } from './client.js';

const enc = encodeURIComponent;

export interface BackupCreateArgs {
  volume: string;
  name?: string;
  description?: string;
  incremental?: boolean;
  snapshot?: string;
  force?: boolean;
}

export function backupCreate(a: BackupCreateArgs): ApiRequest {
  const backup: Record<string, unknown> = { volume_id: a.volume };
  if (a.name !== undefined) backup['name'] = a.name;
  if (a.description !== undefined) backup['description'] = a.description;
  if (a.incremental) backup['incremental'] = true;
  if (a.snapshot !== undefined) backup['snapshot_id'] = a.snapshot;
  if (a.force) backup['force'] = true;
  return { method: 'POST', path: '/backups', body: { backup } };
}

export function backupList(a: { allProjects?: boolean; name?: string }): ApiRequest {
  const query: Record<string, string> = {};
  if (a.allProjects) query['all_tenants'] = '1';
  if (a.name !== undefined) query['name'] = a.name;
  return { method: 'GET', path: '/backups/detail', ...(Object.keys(query).length > 0 ? { query } : {}) };
}

export function backupItem(method: 'GET' | 'DELETE', id: string, a: { force?: boolean } = {}): ApiRequest {
  return { method, path: `/backups/${enc(id)}`, ...(a.force ? { query: { force: 'true' } } : {}) };
}

export function backupProgress(id: string): ApiRequest {
  return { method: 'GET', path: `/bulwark-progress/backups/${enc(id)}` };
}

/** Into an existing volume (--volume), or into a new one (--new, optionally --name). */
export function backupRestore(id: string, a: { volume?: string; new?: boolean; name?: string }): ApiRequest {
  if ((a.volume !== undefined) === (a.new === true)) throw new CliError('give either --volume VOLUME (restore over it) or --new (restore into a new volume)');
  if (a.volume !== undefined && a.name !== undefined) throw new CliError('--name names a new volume; it cannot be given with --volume');
  const restore: Record<string, unknown> = a.volume !== undefined ? { volume_id: a.volume } : a.name !== undefined ? { name: a.name } : {};
  return { method: 'POST', path: `/backups/${enc(id)}/restore`, body: { restore } };
}

export function backupExport(id: string): ApiRequest {
  return { method: 'GET', path: `/backups/${enc(id)}/export_record` };
}

export interface BackupRecordRef {
  readonly backup_service: string;
  readonly backup_url: string;
}

/**
 * A record as `bulwark backup export --json` prints it ({backup_service,
 * backup_url}), or the whole export_record answer ({"backup-record": {...}}).
 */
export function parseRecordText(text: string, source: string): BackupRecordRef {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${source} is not JSON; write it with \`bulwark backup export ID --json > FILE\``);
  }
  const top = asRecordOrNull(parsed);
  const rec = asRecordOrNull(top?.['backup-record']) ?? top;
  if (typeof rec?.['backup_service'] !== 'string' || typeof rec['backup_url'] !== 'string') {
    throw new CliError(`${source} has no backup_service and backup_url`);
  }
  return { backup_service: rec['backup_service'], backup_url: rec['backup_url'] };
}

export function backupImport(recordFile: string): ApiRequest {
  let text: string;
  try {
    text = readFileSync(recordFile, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${recordFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { method: 'POST', path: '/backups/import_record', body: { 'backup-record': parseRecordText(text, recordFile) } };
}

export function repositoryVerify(backupIds: readonly string[]): ApiRequest {
  return { method: 'POST', path: '/bulwark-repository/verify', body: { verify: backupIds.length > 0 ? { backup_ids: [...backupIds] } : {} } };
}

export function repositoryGc(a: { dryRun?: boolean }): ApiRequest {
  return { method: 'POST', path: '/bulwark-repository/gc', body: { gc: a.dryRun ? { dry_run: true } : {} } };
}
