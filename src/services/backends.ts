// Read-only admin views of the volume backends, from the services table the
// roles heartbeat into: os-hosts (Cinder's contrib/hosts.py), the scheduler's
// pools (scheduler_stats.py over host_manager.get_pools) and a backend's
// capabilities (capabilities.py; Cinder asks the volume service over RPC,
// Bulwark reads what it last reported).
import { notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import type { ServiceRow } from '../store/schema.js';
import { isServiceUp, toLiveService, VOLUME_BINARY, type Capabilities } from './registry.js';
import { hostMatches, listServiceRows } from './service-admin.js';

/** The later of the last heartbeat and the last admin change, as os-services reports it. */
export function lastUpdate(row: Pick<ServiceRow, 'heartbeat_at' | 'updated_at'>): string {
  const modified = row.updated_at ? Date.parse(row.updated_at) : 0;
  return new Date(Math.max(row.heartbeat_at, modified)).toISOString();
}

export interface HostEntry {
  readonly row: ServiceRow;
  readonly up: boolean;
}

/** os-hosts: every enabled service (of any binary), optionally in one zone. */
export async function listHosts(ex: Executor, opts: { zone?: string; downAfterMs: number; now?: number }): Promise<HostEntry[]> {
  const now = opts.now ?? Date.now();
  const rows = (await listServiceRows(ex, {})).filter((r) => r.disabled === 0 && (!opts.zone || r.availability_zone === opts.zone));
  return rows.map((row) => ({ row, up: isServiceUp(row, now, opts.downAfterMs) }));
}

export interface HostResource {
  readonly host: string;
  readonly project: string;
  readonly volume_count: string;
  readonly total_volume_gb: string;
  readonly snapshot_count: string;
  readonly total_snapshot_gb: string;
}

interface Usage {
  volumes: number;
  volumeGiB: number;
  snapshots: number;
  snapshotGiB: number;
}

/**
 * os-hosts/{host}: usage of an enabled cinder-volume service's volumes and
 * snapshots, in total and per project, every number a string as Cinder sends it.
 */
export async function showHost(ex: Executor, host: string): Promise<HostResource[]> {
  const services = await listServiceRows(ex, { host, binary: VOLUME_BINARY });
  const service = services.find((r) => r.disabled === 0);
  if (!service) throw notFound(`Host ${host} could not be found.`);
  const onHost = (volHost: string | null) => volHost !== null && hostMatches(service.host, volHost);
  const volumes = (await ex.selectFrom('volumes').select(['project_id', 'size', 'host']).where('host', 'is not', null).execute()).filter((v) => onHost(v.host));
  const snapshots = (
    await ex
      .selectFrom('snapshots')
      .innerJoin('volumes', 'volumes.id', 'snapshots.volume_id')
      .select(['snapshots.project_id', 'snapshots.size', 'volumes.host'])
      .where('volumes.host', 'is not', null)
      .execute()
  ).filter((s) => onHost(s.host));
  const total: Usage = { volumes: 0, volumeGiB: 0, snapshots: 0, snapshotGiB: 0 };
  const perProject = new Map<string, Usage>();
  const usageOf = (project: string) => {
    let u = perProject.get(project);
    if (!u) perProject.set(project, (u = { volumes: 0, volumeGiB: 0, snapshots: 0, snapshotGiB: 0 }));
    return u;
  };
  for (const v of volumes) {
    for (const u of [total, usageOf(v.project_id)]) {
      u.volumes += 1;
      u.volumeGiB += v.size;
    }
  }
  // Cinder lists the projects that have volumes there; their snapshots count towards them.
  for (const s of snapshots) {
    for (const u of perProject.has(s.project_id) ? [total, usageOf(s.project_id)] : [total]) {
      u.snapshots += 1;
      u.snapshotGiB += s.size;
    }
  }
  const resource = (project: string, u: Usage): HostResource => ({
    host,
    project,
    volume_count: String(u.volumes),
    total_volume_gb: String(u.volumeGiB),
    snapshot_count: String(u.snapshots),
    total_snapshot_gb: String(u.snapshotGiB),
  });
  return [resource('(total)', total), ...[...perProject.keys()].sort().map((p) => resource(p, perProject.get(p)!))];
}

export interface PoolEntry {
  /** host@backend#pool */
  readonly name: string;
  /** The pool's capabilities with the backend's identity filled in (Cinder's _append_backend_info). */
  readonly capabilities: Capabilities;
  /** What the scheduler matches extra specs against: backend overlaid with pool. */
  readonly schedulerView: Capabilities;
}

const BACKEND_INFO = ['volume_backend_name', 'storage_protocol', 'vendor_name', 'driver_version'] as const;

/** Pools of the live, enabled, unfrozen volume services: the ones the scheduler may place on. */
export async function listPools(ex: Executor, downAfterMs: number, now = Date.now()): Promise<PoolEntry[]> {
  const rows = await listServiceRows(ex, { binary: VOLUME_BINARY });
  const out: PoolEntry[] = [];
  for (const row of rows) {
    if (row.disabled === 1 || row.frozen === 1 || !isServiceUp(row, now, downAfterMs)) continue;
    const { pools, ...backend } = toLiveService(row).capabilities;
    if (!Array.isArray(pools)) continue;
    for (const pool of pools as Capabilities[]) {
      if (typeof pool['pool_name'] !== 'string') continue;
      const caps: Capabilities = { ...pool };
      for (const key of BACKEND_INFO) if (!caps[key]) caps[key] = backend[key] ?? null;
      if (!caps['timestamp']) caps['timestamp'] = backend['timestamp'] ?? lastUpdate(row);
      out.push({ name: `${row.host}#${pool['pool_name']}`, capabilities: caps, schedulerView: { ...backend, ...pool } });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The first cinder-volume service matching `host` (Cinder's host_or_cluster match) and what it reported. */
export async function backendCapabilities(ex: Executor, host: string): Promise<{ serviceHost: string; capabilities: Capabilities }> {
  const row = (await listServiceRows(ex, { host, binary: VOLUME_BINARY }))[0];
  if (!row) throw notFound(`Can't find service: ${host}`);
  return { serviceHost: row.host, capabilities: toLiveService(row).capabilities };
}
