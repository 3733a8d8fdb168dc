// Row shapes of the state store. One schema for SQLite and PostgreSQL: booleans
// are 0/1 integers, JSON is text, times are ISO-8601 text (API-visible) or epoch
// milliseconds (leases and heartbeats, compared arithmetically).
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface VolumeTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: string;
  attach_status: string;
  migration_status: string | null;
  volume_type_id: string;
  availability_zone: string;
  host: string | null;
  bootable: number;
  multiattach: number;
  snapshot_id: string | null;
  source_volid: string | null;
  group_id: string | null;
  metadata: string;
  active_layer_id: string | null;
  error_reason: string | null;
  created_at: string;
  updated_at: string | null;
  launched_at: string | null;
}

export interface SnapshotTable {
  id: string;
  project_id: string;
  user_id: string;
  volume_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: string;
  progress: string;
  layer_id: string | null;
  group_snapshot_id: string | null;
  metadata: string;
  created_at: string;
  updated_at: string | null;
}

/** One qcow2 file. Layers form a forest through backing_layer_id; a volume points
 *  at its writable top layer, a snapshot at a frozen one. */
export interface LayerTable {
  id: string;
  host: string;
  path: string;
  backing_layer_id: string | null;
  size_bytes: number;
  /** creating | ready | deleting */
  state: string;
  /** While creating: the operation it belongs to, `volume:<id>` (a new volume's
   *  top), `snapshot:<id>` or `clone:<volumeId>` (an overlay that will become a
   *  volume's new top when the snapshot switch happens). Null once ready. */
  pending_for: string | null;
  created_at: string;
}

export interface VolumeTypeTable {
  id: string;
  name: string;
  description: string | null;
  is_public: number;
  extra_specs: string;
  created_at: string;
  updated_at: string | null;
}

export interface VolumeTypeAccessTable {
  volume_type_id: string;
  project_id: string;
}

export interface GroupTypeTable {
  id: string;
  name: string;
  description: string | null;
  is_public: number;
  group_specs: string;
  created_at: string;
  updated_at: string | null;
}

export interface GroupTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  status: string;
  group_type_id: string;
  volume_type_ids: string;
  availability_zone: string;
  host: string | null;
  group_snapshot_id: string | null;
  source_group_id: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface GroupSnapshotTable {
  id: string;
  project_id: string;
  user_id: string;
  group_id: string;
  group_type_id: string;
  name: string | null;
  description: string | null;
  status: string;
  created_at: string;
  updated_at: string | null;
}

export interface AttachmentTable {
  id: string;
  volume_id: string;
  project_id: string;
  instance_uuid: string | null;
  attached_host: string | null;
  mountpoint: string | null;
  attach_mode: string;
  status: string;
  connector: string | null;
  connection_info: string | null;
  export_id: string | null;
  attach_time: string | null;
  detach_time: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface ServiceTable {
  id: Generated<number>;
  binary: string;
  host: string;
  availability_zone: string;
  disabled: number;
  disabled_reason: string | null;
  frozen: number;
  /** Epoch ms of the last heartbeat. */
  heartbeat_at: number;
  capabilities: string;
  created_at: string;
  updated_at: string | null;
}

export interface QuotaTable {
  project_id: string;
  resource: string;
  hard_limit: number;
}

export interface QuotaClassTable {
  class_name: string;
  resource: string;
  hard_limit: number;
}

/** Durable work. A job is claimed by one owner under a lease; every write made on
 *  the job's behalf is conditional on (owner, fence), so a stale owner is refused. */
export interface JobTable {
  id: Generated<number>;
  kind: string;
  /** Service host that must run it (a volume pool), or null for any scheduler. */
  target: string | null;
  resource_id: string;
  payload: string;
  state: string;
  owner: string | null;
  fence: number;
  lease_expires_at: number;
  attempts: number;
  result: string | null;
  error: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface Database {
  volumes: VolumeTable;
  snapshots: SnapshotTable;
  layers: LayerTable;
  volume_types: VolumeTypeTable;
  volume_type_access: VolumeTypeAccessTable;
  group_types: GroupTypeTable;
  groups: GroupTable;
  group_snapshots: GroupSnapshotTable;
  attachments: AttachmentTable;
  services: ServiceTable;
  quotas: QuotaTable;
  quota_classes: QuotaClassTable;
  jobs: JobTable;
}

export type VolumeRow = Selectable<VolumeTable>;
export type NewVolume = Insertable<VolumeTable>;
export type VolumeUpdate = Updateable<VolumeTable>;
export type SnapshotRow = Selectable<SnapshotTable>;
export type LayerRow = Selectable<LayerTable>;
export type VolumeTypeRow = Selectable<VolumeTypeTable>;
export type GroupTypeRow = Selectable<GroupTypeTable>;
export type GroupRow = Selectable<GroupTable>;
export type GroupSnapshotRow = Selectable<GroupSnapshotTable>;
export type AttachmentRow = Selectable<AttachmentTable>;
export type ServiceRow = Selectable<ServiceTable>;
export type JobRow = Selectable<JobTable>;
