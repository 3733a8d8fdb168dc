// Group snapshot bodies as Cinder's v3 group snapshot view builds them.
import { atLeast } from '../../microversion.js';
import type { GroupSnapshotRow } from '../../../store/schema.js';
import { cinderTime, type ViewContext } from './common.js';

/** The create response; the list summary drops group_type_id, as Cinder's index does. */
export function groupSnapshotSummaryView(row: GroupSnapshotRow, opts: { withType: boolean }): Record<string, unknown> {
  const body: Record<string, unknown> = { id: row.id, name: row.name };
  if (opts.withType) body['group_type_id'] = row.group_type_id;
  return body;
}

export function groupSnapshotView(v: ViewContext, row: GroupSnapshotRow): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    group_id: row.group_id,
    group_type_id: row.group_type_id,
    status: row.status,
    created_at: cinderTime(row.created_at),
    name: row.name,
    description: row.description,
  };
  if (atLeast(v.version, '3.58') && v.isAdmin) body['project_id'] = row.project_id;
  return body;
}
