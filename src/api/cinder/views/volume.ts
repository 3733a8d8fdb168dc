import { atLeast } from '../../microversion.js';
import type { AttachmentRow, VolumeRow } from '../../../store/schema.js';
import { cinderTime, links, parseJson, type ViewContext } from './common.js';

export interface VolumeViewExtras {
  readonly typeName: string | null;
  readonly attachments: readonly AttachmentRow[];
  /** Create and update answers carry no extension attributes (os-vol-*), as Cinder's. */
  readonly bare?: boolean;
}

function attachmentsView(rows: readonly AttachmentRow[]) {
  return rows
    .filter((a) => a.status === 'attached')
    .map((a) => ({
      server_id: a.instance_uuid,
      attachment_id: a.id,
      attached_at: cinderTime(a.attach_time),
      host_name: a.attached_host,
      volume_id: a.volume_id,
      device: a.mountpoint,
      id: a.volume_id,
    }));
}

/** Exactly the fields of tempest's volume schema for the negotiated version. */
export function volumeView(v: ViewContext, row: VolumeRow, extras: VolumeViewExtras): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status,
    size: row.size,
    availability_zone: row.availability_zone,
    created_at: cinderTime(row.created_at),
    updated_at: cinderTime(row.updated_at),
    attachments: attachmentsView(extras.attachments),
    links: links(v, 'volumes', row.id),
    encrypted: false,
    replication_status: null,
    snapshot_id: row.snapshot_id,
    source_volid: row.source_volid,
    user_id: row.user_id,
    metadata: parseJson<Record<string, string>>(row.metadata, {}),
    multiattach: row.multiattach === 1,
    consistencygroup_id: null,
    bootable: row.bootable === 1 ? 'true' : 'false',
    volume_type: extras.typeName,
    migration_status: row.migration_status,
  };
  if (!extras.bare) body['os-vol-tenant-attr:tenant_id'] = row.project_id;
  // Cinder's volume_image_metadata: present only for volumes that have image metadata.
  if (!extras.bare && row.image_metadata) body['volume_image_metadata'] = parseJson<Record<string, string>>(row.image_metadata, {});
  if (v.isAdmin && !extras.bare) {
    body['os-vol-host-attr:host'] = row.host;
    body['os-vol-mig-status-attr:migstat'] = row.migration_status;
    body['os-vol-mig-status-attr:name_id'] = null;
  }
  if (atLeast(v.version, '3.13')) body['group_id'] = row.group_id;
  if (atLeast(v.version, '3.21') && v.isAdmin) body['provider_id'] = null;
  if (atLeast(v.version, '3.48')) {
    body['service_uuid'] = null;
    body['shared_targets'] = false;
  }
  if (atLeast(v.version, '3.61') && v.isAdmin) body['cluster_name'] = null;
  if (atLeast(v.version, '3.63')) body['volume_type_id'] = row.volume_type_id;
  if (atLeast(v.version, '3.64')) body['encryption_key_id'] = null;
  return body;
}

export function volumeSummaryView(v: ViewContext, row: VolumeRow): Record<string, unknown> {
  return { id: row.id, name: row.name, links: links(v, 'volumes', row.id) };
}
