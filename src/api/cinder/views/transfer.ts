// Transfer bodies as Cinder's views/transfers.py builds them: the summary
// (index, accept), the detail (show, list detail) and the create body with
// the one-time auth key. 3.55 adds no_snapshots, 3.57 the history fields.
// Links always name os-volume-transfer, whichever path was asked, as Cinder's.
import { atLeast } from '../../microversion.js';
import type { TransferRow } from '../../../store/schema.js';
import { cinderTime, links, type ViewContext } from './common.js';

const COLLECTION = 'os-volume-transfer';

export function transferSummaryView(v: ViewContext, row: TransferRow): Record<string, unknown> {
  return { id: row.id, volume_id: row.volume_id, name: row.name, links: links(v, COLLECTION, row.id) };
}

export function transferView(v: ViewContext, row: TransferRow, authKey?: string): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    created_at: cinderTime(row.created_at),
    name: row.name,
    volume_id: row.volume_id,
    links: links(v, COLLECTION, row.id),
  };
  if (authKey !== undefined) body['auth_key'] = authKey;
  if (atLeast(v.version, '3.55')) body['no_snapshots'] = row.no_snapshots === 1;
  if (atLeast(v.version, '3.57')) {
    // An accepted offer is gone from the store, so what is shown is still open.
    body['destination_project_id'] = null;
    body['source_project_id'] = row.project_id;
    body['accepted'] = false;
  }
  return body;
}
