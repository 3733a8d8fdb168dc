// os-services bodies, per tempest's services.py (and v3_7 for `cluster`).
// The os-extended-services extension is always loaded in Cinder, so the
// detailed fields are always present.
import type { ServiceRow } from '../../../store/schema.js';
import { isServiceUp, toLiveService, VOLUME_BINARY } from '../../../services/registry.js';
import { atLeast } from '../../microversion.js';
import { cinderTime } from './common.js';
import type { ViewContext } from './common.js';

export function serviceView(v: ViewContext, row: ServiceRow, now: number, downAfterMs: number): Record<string, unknown> {
  const up = isServiceUp(row, now, downAfterMs);
  // Cinder reports the later of the last heartbeat and the last admin change.
  const modified = row.updated_at ? Date.parse(row.updated_at) : 0;
  const updated = new Date(Math.max(row.heartbeat_at, modified)).toISOString();
  const body: Record<string, unknown> = {
    binary: row.binary,
    host: row.host,
    zone: row.availability_zone,
    status: row.disabled === 1 ? 'disabled' : 'enabled',
    state: up ? 'up' : 'down',
    updated_at: cinderTime(updated),
    disabled_reason: row.disabled_reason,
  };
  if (row.binary === VOLUME_BINARY) {
    if (atLeast(v.version, '3.49')) {
      // The volume role may report its own backend_state; otherwise the heartbeat decides.
      const reported = toLiveService(row).capabilities['backend_state'];
      body['backend_state'] = typeof reported === 'string' ? reported : up ? 'up' : 'down';
    }
    body['replication_status'] = 'not-capable';
    body['active_backend_id'] = null;
    body['frozen'] = row.frozen === 1;
  }
  if (atLeast(v.version, '3.7')) body['cluster'] = null;
  return body;
}
