// Command-line arguments → Cinder v3 requests, as pure functions so the
// mapping (paths, bodies, microversions) is unit-tested without a server.
import { CliError, type ApiRequest } from './client.js';

const enc = encodeURIComponent;

/** `--property k=v` values; the value may itself contain '='. */
export function parseProperties(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`--property wants KEY=VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Commander parser for sizes in GiB. */
export function parseSize(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new CliError(`size must be a whole number of GiB >= 1, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** Keys are only sent when given, so the server's defaults apply otherwise. */
function defined(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

// ---- volumes ----

export interface VolumeCreateArgs {
  size?: number;
  name?: string;
  description?: string;
  type?: string;
  snapshot?: string;
  source?: string;
  group?: string;
  availabilityZone?: string;
  property?: string[];
}

export function volumeCreate(a: VolumeCreateArgs): ApiRequest {
  if (a.snapshot !== undefined && a.source !== undefined) throw new CliError('give at most one of --snapshot and --source');
  // Cinder takes the size of the snapshot or source volume when none is given.
  if (a.size === undefined && a.snapshot === undefined && a.source === undefined) throw new CliError('--size is required unless --snapshot or --source is given');
  const props = parseProperties(a.property ?? []);
  const volume = defined({
    size: a.size,
    name: a.name,
    description: a.description,
    volume_type: a.type,
    snapshot_id: a.snapshot,
    source_volid: a.source,
    group_id: a.group,
    availability_zone: a.availabilityZone,
    metadata: Object.keys(props).length > 0 ? props : undefined,
  });
  return { method: 'POST', path: '/volumes', body: { volume }, ...(a.group !== undefined ? { min: '3.13', what: 'volume create --group' } : {}) };
}

/** Cinder's delete flags are query parameters; `force` arrived in 3.23. */
export function volumeDelete(id: string, a: { cascade?: boolean; force?: boolean }): ApiRequest {
  const query: Record<string, string> = {};
  if (a.cascade) query['cascade'] = 'true';
  if (a.force) query['force'] = 'true';
  return { method: 'DELETE', path: `/volumes/${enc(id)}`, query, ...(a.force ? { min: '3.23', what: 'volume delete --force' } : {}) };
}

export function volumeExtend(id: string, size: number): ApiRequest {
  return { method: 'POST', path: `/volumes/${enc(id)}/action`, body: { 'os-extend': { new_size: size } } };
}

export function volumeRevert(id: string, snapshotId: string): ApiRequest {
  return { method: 'POST', path: `/volumes/${enc(id)}/action`, body: { revert: { snapshot_id: snapshotId } }, min: '3.40', what: 'volume revert' };
}

/**
 * `volume set` may need two calls: PUT for name/description, and a metadata
 * POST that merges the properties (PUT /volumes would replace all of them).
 */
export function volumeSet(id: string, a: { name?: string; description?: string; property?: string[] }): ApiRequest[] {
  const reqs: ApiRequest[] = [];
  const volume = defined({ name: a.name, description: a.description });
  if (Object.keys(volume).length > 0) reqs.push({ method: 'PUT', path: `/volumes/${enc(id)}`, body: { volume } });
  const props = parseProperties(a.property ?? []);
  if (Object.keys(props).length > 0) reqs.push({ method: 'POST', path: `/volumes/${enc(id)}/metadata`, body: { metadata: props } });
  if (reqs.length === 0) throw new CliError('nothing to set: give --name, --description or --property');
  return reqs;
}

// ---- snapshots ----

export function snapshotCreate(a: { volume: string; name?: string; description?: string; force?: boolean }): ApiRequest {
  const snapshot = defined({ volume_id: a.volume, name: a.name, description: a.description, force: a.force ? true : undefined });
  return { method: 'POST', path: '/snapshots', body: { snapshot } };
}

// ---- volume types ----

export function typeCreate(a: { name: string; description?: string; private?: boolean; property?: string[] }): ApiRequest {
  const specs = parseProperties(a.property ?? []);
  const volumeType = defined({
    name: a.name,
    description: a.description,
    extra_specs: Object.keys(specs).length > 0 ? specs : undefined,
    'os-volume-type-access:is_public': !a.private,
  });
  return { method: 'POST', path: '/types', body: { volume_type: volumeType } };
}

// ---- groups (3.11 types, 3.13 groups, 3.14 group snapshots) ----

export function groupTypeCreate(a: { name: string; description?: string; private?: boolean; property?: string[] }): ApiRequest {
  const specs = parseProperties(a.property ?? []);
  const groupType = defined({
    name: a.name,
    description: a.description,
    is_public: !a.private,
    group_specs: Object.keys(specs).length > 0 ? specs : undefined,
  });
  return { method: 'POST', path: '/group_types', body: { group_type: groupType }, min: '3.11', what: 'group types' };
}

export function groupCreate(a: { groupType: string; volumeType: string[]; name?: string; description?: string; availabilityZone?: string }): ApiRequest {
  if (a.volumeType.length === 0) throw new CliError('give at least one --volume-type');
  const group = defined({
    group_type: a.groupType,
    volume_types: [...a.volumeType],
    name: a.name,
    description: a.description,
    availability_zone: a.availabilityZone,
  });
  return { method: 'POST', path: '/groups', body: { group }, min: '3.13', what: 'groups' };
}

/** Groups are deleted through an action, not DELETE, in Cinder. */
export function groupDelete(id: string, a: { deleteVolumes?: boolean }): ApiRequest {
  return { method: 'POST', path: `/groups/${enc(id)}/action`, body: { delete: { 'delete-volumes': a.deleteVolumes === true } }, min: '3.13', what: 'groups' };
}

export function groupCreateFromSrc(a: { groupSnapshot?: string; sourceGroup?: string; name?: string; description?: string }): ApiRequest {
  if ((a.groupSnapshot === undefined) === (a.sourceGroup === undefined)) throw new CliError('give exactly one of --group-snapshot and --source-group');
  const src = defined({ name: a.name, description: a.description, group_snapshot_id: a.groupSnapshot, source_group_id: a.sourceGroup });
  return { method: 'POST', path: '/groups/action', body: { 'create-from-src': src }, min: '3.14', what: 'group create-from-src' };
}

export function groupSnapshotCreate(a: { group: string; name?: string; description?: string }): ApiRequest {
  const gs = defined({ group_id: a.group, name: a.name, description: a.description });
  return { method: 'POST', path: '/group_snapshots', body: { group_snapshot: gs }, min: '3.14', what: 'group snapshots' };
}

// ---- attachments (3.27; complete 3.44) ----

export function attachmentCreate(a: { volume: string; instance?: string; connectorHost?: string; mode?: string }): ApiRequest {
  if (a.mode !== undefined && a.mode !== 'rw' && a.mode !== 'ro') throw new CliError('--mode is rw or ro');
  const attachment = defined({
    volume_uuid: a.volume,
    instance_uuid: a.instance,
    // With a connector the volume is exported at once and the answer carries connection_info.
    connector: a.connectorHost !== undefined ? { host: a.connectorHost } : undefined,
    mode: a.mode,
  });
  return { method: 'POST', path: '/attachments', body: { attachment }, ...(a.mode !== undefined ? { min: '3.54', what: 'attachment create --mode' } : { min: '3.27', what: 'attachments' }) };
}

export function attachmentComplete(id: string): ApiRequest {
  return { method: 'POST', path: `/attachments/${enc(id)}/action`, body: { 'os-complete': null }, min: '3.44', what: 'attachment complete' };
}

// ---- plain paths ----

/** GET/DELETE on one item of a collection, with the microversion the collection needs. */
export function item(method: 'GET' | 'DELETE', collection: Collection, id: string, query?: Record<string, string>): ApiRequest {
  const min = COLLECTION_MIN[collection];
  return { method, path: `/${collection}/${enc(id)}`, ...(query ? { query } : {}), ...(min ? { min, what: collection.replace(/_/g, ' ') } : {}) };
}

export function list(collection: Collection, a: { allProjects?: boolean; detail?: boolean; query?: Record<string, string> } = {}): ApiRequest {
  const min = COLLECTION_MIN[collection];
  const query = { ...(a.allProjects ? { all_tenants: '1' } : {}), ...a.query };
  return {
    method: 'GET',
    path: `/${collection}${a.detail ? '/detail' : ''}`,
    ...(Object.keys(query).length > 0 ? { query } : {}),
    ...(min ? { min, what: collection.replace(/_/g, ' ') } : {}),
  };
}

/**
 * Cinder lists only public types unless asked: is_public=None means all
 * (admins), false the private ones.
 */
export function typeListQuery(a: { all?: boolean; private?: boolean }): Record<string, string> {
  if (a.all) return { is_public: 'None' };
  if (a.private) return { is_public: 'false' };
  return {};
}

export type Collection = 'volumes' | 'snapshots' | 'types' | 'group_types' | 'groups' | 'group_snapshots' | 'attachments';

/** What an OpenStack ID looks like (names are resolved, IDs used as given). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const COLLECTION_MIN: Readonly<Record<Collection, string | undefined>> = {
  volumes: undefined,
  snapshots: undefined,
  types: undefined,
  group_types: '3.11',
  groups: '3.13',
  group_snapshots: '3.14',
  attachments: '3.27',
};

/** The key a listing answer keeps its items under (GET /types answers "volume_types"). */
export function listKey(collection: Collection): string {
  return collection === 'types' ? 'volume_types' : collection;
}

export function serviceList(a: { host?: string; service?: string }): ApiRequest {
  const query: Record<string, string> = {};
  if (a.host !== undefined) query['host'] = a.host;
  if (a.service !== undefined) query['binary'] = a.service;
  return { method: 'GET', path: '/os-services', query };
}

export function quotaShow(projectId: string): ApiRequest {
  return { method: 'GET', path: `/os-quota-sets/${enc(projectId)}`, query: { usage: 'true' } };
}
