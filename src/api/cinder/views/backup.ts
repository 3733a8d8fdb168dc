// Backup bodies as Cinder's backups views build them: the summary (index,
// create, update, import), the detail (show, list detail) with the v3 additions
// by microversion, the restore summary, and Bulwark's progress resource.
import { atLeast } from '../../microversion.js';
import type { BackupRow } from '../../../store/schema.js';
import { cinderTime, links, parseJson, type ViewContext } from './common.js';

const COLLECTION = 'backups';

export function backupSummaryView(v: ViewContext, row: BackupRow): Record<string, unknown> {
  return { id: row.id, name: row.name, links: links(v, COLLECTION, row.id) };
}

/**
 * Cinder's detail: 3.43 adds metadata, 3.64 encryption_key_id (always null:
 * encrypted volumes are not supported). The project and user attributes (3.18,
 * 3.56) need the backup_project_attribute policy, admin only, and are shown by
 * show and list detail alone.
 */
export function backupView(v: ViewContext, row: BackupRow, dependents: number): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    status: row.status,
    size: row.size,
    object_count: row.object_count,
    availability_zone: row.availability_zone,
    container: row.container,
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    name: row.name,
    description: row.description,
    fail_reason: row.fail_reason,
    volume_id: row.volume_id,
    links: links(v, COLLECTION, row.id),
    is_incremental: row.is_incremental === 1,
    has_dependent_backups: dependents > 0,
    snapshot_id: row.snapshot_id,
    data_timestamp: cinderTime(row.data_timestamp),
  };
  if (atLeast(v.version, '3.43')) body['metadata'] = parseJson<Record<string, string>>(row.metadata, {});
  if (atLeast(v.version, '3.64')) body['encryption_key_id'] = null;
  if (v.isAdmin && atLeast(v.version, '3.18')) body['os-backup-project-attr:project_id'] = row.project_id;
  if (v.isAdmin && atLeast(v.version, '3.56')) body['user_id'] = row.user_id;
  return body;
}

export function restoreView(r: { backupId: string; volumeId: string; volumeName: string | null }): Record<string, unknown> {
  return { backup_id: r.backupId, volume_id: r.volumeId, volume_name: r.volumeName };
}

/** GET /v3/{project_id}/bulwark-progress/backups/{id}: how far the role has got. */
export function backupProgressView(row: BackupRow): Record<string, unknown> {
  return {
    backup_id: row.id,
    status: row.status,
    bytes_done: Number(row.bytes_done),
    bytes_total: Number(row.bytes_total),
    bytes_read: Number(row.bytes_read),
    tracking: row.tracking,
    host: row.host,
  };
}
