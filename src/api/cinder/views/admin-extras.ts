// Bodies of QoS specs, volume type encryption and user messages, per tempest's
// qos.py, encryption_types.py and messages.py schemas (Cinder's
// views/qos_specs.py, the encryption controller's row dump and
// v3/views/messages.py).
import type { QosSpecs } from '../../../services/qos-specs.js';
import type { MessageRow, VolumeTypeEncryptionRow } from '../../../store/schema.js';
import { cinderTime, links, type ViewContext } from './common.js';

/** One QoS specs as list items carry it. */
export function qosSpecsItemView(q: QosSpecs): Record<string, unknown> {
  return { id: q.id, name: q.name, consumer: q.consumer, specs: q.specs };
}

/** POST /qos-specs and GET /qos-specs/{id}. */
export function qosSpecsDetailView(v: ViewContext, q: QosSpecs): Record<string, unknown> {
  return { qos_specs: qosSpecsItemView(q), links: links(v, 'qos-specs', q.id) };
}

/** GET /types/{id}/encryption: the stored row, as Cinder dumps its model (never soft-deleted here). */
export function encryptionView(row: VolumeTypeEncryptionRow): Record<string, unknown> {
  return {
    volume_type_id: row.volume_type_id,
    encryption_id: row.encryption_id,
    provider: row.provider,
    control_location: row.control_location,
    cipher: row.cipher,
    key_size: row.key_size,
    deleted: false,
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    deleted_at: null,
  };
}

export function messageView(v: ViewContext, row: MessageRow): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    event_id: row.event_id,
    user_message: row.user_message,
    message_level: row.message_level,
    created_at: cinderTime(row.created_at),
    guaranteed_until: cinderTime(row.expires_at),
    request_id: row.request_id,
    links: links(v, 'messages', row.id),
  };
  // Cinder leaves the resource fields out when they are empty.
  if (row.resource_type) body['resource_type'] = row.resource_type;
  if (row.resource_uuid) body['resource_uuid'] = row.resource_uuid;
  return body;
}
