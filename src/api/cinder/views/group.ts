// Group bodies as Cinder's v3 group view builds them for the negotiated version.
import { atLeast } from '../../microversion.js';
import type { GroupRow } from '../../../store/schema.js';
import { cinderTime, parseJson, type ViewContext } from './common.js';

export function groupSummaryView(row: GroupRow): Record<string, unknown> {
  return { id: row.id, name: row.name };
}

/** `volumeIds` is given only when the caller asked for list_volume (3.25+). */
export function groupView(v: ViewContext, row: GroupRow, volumeIds?: readonly string[]): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    status: row.status,
    availability_zone: row.availability_zone,
    created_at: cinderTime(row.created_at),
    name: row.name,
    description: row.description,
    group_type: row.group_type_id,
    volume_types: parseJson<string[]>(row.volume_type_ids, []),
  };
  if (atLeast(v.version, '3.14')) {
    body['group_snapshot_id'] = row.group_snapshot_id;
    body['source_group_id'] = row.source_group_id;
  }
  if (atLeast(v.version, '3.25') && volumeIds) body['volumes'] = [...volumeIds];
  // Replication is never enabled on groups here; Cinder reports 'disabled' then.
  if (atLeast(v.version, '3.38')) body['replication_status'] = 'disabled';
  if (atLeast(v.version, '3.58') && v.isAdmin) body['project_id'] = row.project_id;
  return body;
}
