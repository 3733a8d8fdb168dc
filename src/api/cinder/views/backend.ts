// os-hosts, scheduler-stats pools and backend capabilities, per tempest's
// hosts.py, scheduler_stats.py and capabilities.py schemas.
import type { HostEntry, PoolEntry } from '../../../services/backends.js';
import { lastUpdate } from '../../../services/backends.js';
import type { Capabilities } from '../../../services/registry.js';
import { cinderTime } from './common.js';

export function hostView(h: HostEntry): Record<string, unknown> {
  return {
    host_name: h.row.host,
    // Cinder reports the service's topic, which is its binary name.
    service: h.row.binary,
    zone: h.row.availability_zone,
    'service-status': h.up ? 'available' : 'unavailable',
    'service-state': h.row.disabled === 1 ? 'disabled' : 'enabled',
    'last-update': cinderTime(lastUpdate(h.row)),
  };
}

export function poolView(p: PoolEntry, detail: boolean): Record<string, unknown> {
  if (!detail) return { name: p.name };
  const ts = p.capabilities['timestamp'];
  return { name: p.name, capabilities: { ...p.capabilities, timestamp: typeof ts === 'string' ? cinderTime(ts) : ts } };
}

/** What a Cinder driver's _init_standard_capabilities reports. */
const STANDARD_PROPERTIES = {
  thin_provisioning: { title: 'Thin Provisioning', description: 'Sets thin provisioning.', type: 'boolean' },
  compression: { title: 'Compression', description: 'Enables compression.', type: 'boolean' },
  qos: { title: 'QoS', description: 'Enables QoS.', type: 'boolean' },
  replication_enabled: { title: 'Replication', description: 'Enables replication.', type: 'boolean' },
};

/** GET /capabilities/{host}: Cinder's capabilities view over the backend's report. */
export function capabilitiesView(serviceHost: string, caps: Capabilities): Record<string, unknown> {
  const protocol = caps['storage_protocol'];
  return {
    namespace: `OS::Storage::Capabilities::${serviceHost}`,
    vendor_name: caps['vendor_name'] ?? null,
    volume_backend_name: caps['volume_backend_name'] ?? null,
    pool_name: caps['pool_name'] ?? null,
    driver_version: caps['driver_version'] ?? null,
    // Internally a list of variants in Cinder; the first is the canonical name.
    storage_protocol: Array.isArray(protocol) ? (protocol[0] ?? null) : (protocol ?? null),
    display_name: caps['display_name'] ?? null,
    description: caps['description'] ?? null,
    visibility: caps['visibility'] ?? null,
    replication_targets: Array.isArray(caps['replication_targets']) ? caps['replication_targets'] : [],
    properties: caps['properties'] ?? STANDARD_PROPERTIES,
  };
}
