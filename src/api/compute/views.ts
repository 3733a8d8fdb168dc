// Nova v2.1 response shapes for servers, flavors and volume attachments.
import { createHash } from 'node:crypto';
import type { InstanceRow, InstanceVolumeRow } from '../../store/schema.js';
import { bootOf, FLAVORS, vmState, type Flavor } from '../../services/instances.js';

export interface ComputeViewContext {
  readonly baseUrl: string;
  readonly projectId: string;
  readonly isAdmin: boolean;
}

function links(ctx: ComputeViewContext, path: string) {
  return [
    { rel: 'self', href: `${ctx.baseUrl}/v2.1/${path}` },
    { rel: 'bookmark', href: `${ctx.baseUrl}/${path}` },
  ];
}

/** Nova's hostId: an opaque per-project hash of the host, so projects cannot map the cloud. */
function hostId(row: InstanceRow): string {
  return row.host ? createHash('sha224').update(`${row.project_id}${row.host}`).digest('hex') : '';
}

function isoSeconds(iso: string | null): string | null {
  return iso ? `${iso.slice(0, 19)}Z` : null;
}

export function serverSummary(ctx: ComputeViewContext, row: InstanceRow) {
  return { id: row.id, name: row.name, links: links(ctx, `servers/${row.id}`) };
}

export function serverDetail(ctx: ComputeViewContext, row: InstanceRow, vols: readonly InstanceVolumeRow[]) {
  const boot = bootOf(row);
  const fault = row.fault && row.status === 'ERROR' ? { fault: { code: 500, message: row.fault, created: isoSeconds(row.updated_at ?? row.created_at) } } : {};
  const view: Record<string, unknown> = {
    id: row.id,
    name: row.name,
    status: row.status,
    tenant_id: row.project_id,
    user_id: row.user_id,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    hostId: hostId(row),
    // Booted from a volume: Nova shows an empty image.
    image: '',
    flavor: { id: boot.flavorId, links: [{ rel: 'bookmark', href: `${ctx.baseUrl}/flavors/${boot.flavorId}` }] },
    created: isoSeconds(row.created_at),
    updated: isoSeconds(row.updated_at ?? row.created_at),
    addresses: {},
    accessIPv4: '',
    accessIPv6: '',
    links: links(ctx, `servers/${row.id}`),
    'OS-DCF:diskConfig': 'MANUAL',
    progress: row.status === 'BUILD' ? 0 : 100,
    'OS-EXT-AZ:availability_zone': 'nova',
    config_drive: '',
    key_name: null,
    'OS-SRV-USG:launched_at': row.launched_at ? row.launched_at.replace('Z', '') : null,
    'OS-SRV-USG:terminated_at': null,
    'OS-EXT-STS:task_state': row.task_state,
    'OS-EXT-STS:vm_state': vmState(row),
    'OS-EXT-STS:power_state': row.power_state,
    'os-extended-volumes:volumes_attached': vols.map((v) => ({ id: v.volume_id })),
    security_groups: [],
    ...fault,
  };
  if (ctx.isAdmin) {
    view['OS-EXT-SRV-ATTR:host'] = row.host;
    view['OS-EXT-SRV-ATTR:hypervisor_hostname'] = row.host;
    view['OS-EXT-SRV-ATTR:instance_name'] = `instance-${row.id.slice(0, 8)}`;
  }
  return view;
}

export function quiesceView(row: InstanceRow) {
  return {
    state: row.quiesce_state,
    deadline_at: row.quiesce_deadline_at ? new Date(row.quiesce_deadline_at).toISOString() : null,
    frozen_at: row.quiesce_frozen_at ? new Date(row.quiesce_frozen_at).toISOString() : null,
    detail: row.quiesce_detail,
  };
}

export function flavorView(ctx: ComputeViewContext, f: Flavor, detail: boolean) {
  const base = { id: f.id, name: f.name, links: links(ctx, `flavors/${f.id}`) };
  if (!detail) return base;
  return {
    ...base,
    vcpus: f.vcpus,
    ram: f.ram,
    disk: f.disk,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    'OS-FLV-DISABLED:disabled': false,
    swap: '',
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': true,
  };
}

export const allFlavors = FLAVORS;

export function volumeAttachmentView(v: InstanceVolumeRow) {
  return { id: v.volume_id, volumeId: v.volume_id, serverId: v.instance_id, device: v.device };
}
