// Which columns each list command shows: the main ones openstackclient
// shows, plus a few more under --long. Pure, unit-tested.
import { asRecordOrNull, type Resource } from './client.js';
import type { Column } from './format.js';

export const col = (header: string, key: string): Column => ({ header, value: (r) => r[key] });

/** "Attached to <server> on <device>", one line per attachment, as openstackclient prints it. */
export function attachedTo(r: Resource): string {
  const atts = Array.isArray(r['attachments']) ? (r['attachments'] as unknown[]) : [];
  return atts
    .map(asRecordOrNull)
    .filter((a): a is Resource => a !== null)
    .map((a) => {
      // A volume attached without an instance (attachment API, bare host) shows the host.
      const who = a['server_id'] ?? a['host_name'] ?? a['attachment_id'];
      const device = a['device'];
      return `Attached to ${String(who)}${typeof device === 'string' && device !== '' ? ` on ${device}` : ''}`;
    })
    .join('\n');
}

export function volumeColumns(o: { long?: boolean; allProjects?: boolean }): Column[] {
  const cols: Column[] = [col('ID', 'id'), col('Name', 'name'), col('Status', 'status'), col('Size', 'size')];
  if (o.long) cols.push(col('Type', 'volume_type'), col('Bootable', 'bootable'));
  cols.push({ header: 'Attached to', value: attachedTo });
  if (o.long) cols.push(col('Properties', 'metadata'));
  if (o.allProjects) cols.push(col('Project', 'os-vol-tenant-attr:tenant_id'));
  return cols;
}

export function snapshotColumns(o: { long?: boolean; allProjects?: boolean }): Column[] {
  const cols: Column[] = [col('ID', 'id'), col('Name', 'name'), col('Status', 'status'), col('Size', 'size'), col('Volume', 'volume_id')];
  if (o.long) cols.push(col('Description', 'description'), col('Created At', 'created_at'), col('Properties', 'metadata'));
  if (o.allProjects) cols.push(col('Project', 'os-extended-snapshot-attributes:project_id'));
  return cols;
}

export function typeColumns(o: { long?: boolean }): Column[] {
  const cols: Column[] = [col('ID', 'id'), col('Name', 'name'), col('Is Public', 'is_public')];
  if (o.long) cols.push(col('Description', 'description'), col('Properties', 'extra_specs'));
  return cols;
}

export function groupTypeColumns(o: { long?: boolean }): Column[] {
  const cols: Column[] = [col('ID', 'id'), col('Name', 'name'), col('Is Public', 'is_public')];
  if (o.long) cols.push(col('Description', 'description'), col('Properties', 'group_specs'));
  return cols;
}

export function groupColumns(o: { long?: boolean }): Column[] {
  const cols: Column[] = [col('ID', 'id'), col('Name', 'name'), col('Status', 'status')];
  if (o.long) cols.push(col('Group Type', 'group_type'), col('Volume Types', 'volume_types'), col('Availability Zone', 'availability_zone'));
  return cols;
}

export function groupSnapshotColumns(): Column[] {
  return [col('ID', 'id'), col('Name', 'name'), col('Status', 'status'), col('Group', 'group_id')];
}

export function attachmentColumns(): Column[] {
  return [col('ID', 'id'), col('Volume ID', 'volume_id'), col('Server ID', 'instance'), col('Status', 'status')];
}

export function serviceColumns(o: { long?: boolean }): Column[] {
  const cols: Column[] = [col('Binary', 'binary'), col('Host', 'host'), col('Zone', 'zone'), col('Status', 'status'), col('State', 'state'), col('Updated At', 'updated_at')];
  if (o.long) cols.push(col('Disabled Reason', 'disabled_reason'));
  return cols;
}

export function availabilityZoneColumns(): Column[] {
  return [
    col('Zone Name', 'zoneName'),
    { header: 'Zone Status', value: (r) => (asRecordOrNull(r['zoneState'])?.['available'] === true ? 'available' : 'not available') },
  ];
}

/**
 * quota_set with ?usage=true maps each resource to {limit, in_use, reserved};
 * without usage the values are bare numbers. The `id` entry is the project.
 */
export function quotaRows(quotaSet: Resource): string[][] {
  const rows: string[][] = [];
  for (const key of Object.keys(quotaSet).sort()) {
    if (key === 'id') continue;
    const v = quotaSet[key];
    const detail = asRecordOrNull(v);
    if (detail) rows.push([key, String(detail['in_use'] ?? ''), String(detail['reserved'] ?? ''), String(detail['limit'] ?? '')]);
    else if (typeof v === 'number') rows.push([key, '', '', String(v)]);
  }
  return rows;
}

export const QUOTA_HEADERS = ['Resource', 'In Use', 'Reserved', 'Limit'] as const;

/** The absolute limits (Cinder keeps no rate limits), sorted by name. */
export function limitRows(limits: Resource): [string, unknown][] {
  const absolute = asRecordOrNull(limits['absolute']) ?? {};
  return Object.keys(absolute)
    .sort()
    .map((k) => [k, absolute[k]]);
}
