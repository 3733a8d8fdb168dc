// Snapshot bodies exactly as Cinder's v3 snapshot views build them: the
// summary (index), the v3 detail (create, update) and the detail with the
// os-extended-snapshot-attributes extension (show, list detail).
import { atLeast } from '../../microversion.js';
import type { SnapshotRow } from '../../../store/schema.js';
import { cinderTime, parseJson, type ViewContext } from './common.js';

/** Tempest's common_snapshot_schema: the nine fields every snapshot body carries. */
export function snapshotSummaryView(row: SnapshotRow): Record<string, unknown> {
  return {
    id: row.id,
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    name: row.name,
    description: row.description,
    volume_id: row.volume_id,
    status: row.status,
    size: row.size,
    metadata: parseJson<Record<string, string>>(row.metadata, {}),
  };
}

/**
 * The v3 detail; `extended` adds the extension's progress and project_id,
 * which Cinder attaches to show and list-detail only (not to create/update).
 */
export function snapshotView(v: ViewContext, row: SnapshotRow, opts: { extended: boolean }): Record<string, unknown> {
  const body = snapshotSummaryView(row);
  if (atLeast(v.version, '3.14')) body['group_snapshot_id'] = row.group_snapshot_id;
  if (atLeast(v.version, '3.41')) body['user_id'] = row.user_id;
  if (opts.extended) {
    body['os-extended-snapshot-attributes:progress'] = row.progress;
    body['os-extended-snapshot-attributes:project_id'] = row.project_id;
  }
  return body;
}
