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
  /** Cinder's volume_image_metadata as a JSON object, or null. */
  image_metadata: string | null;
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
  /** The associated QoS specs (migration 0003), if any. */
  qos_specs_id: string | null;
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

/** A target's job queue reserved for one holder's jobs until expires_at (epoch ms). */
export interface JobHoldTable {
  target: string;
  /** The resource id whose jobs stay claimable. */
  holder: string;
  expires_at: number;
  created_at: string;
}

/** A layer kept alive for a non-volume owner (a backup's change-tracking base). */
export interface LayerPinTable {
  layer_id: string;
  owner_kind: string;
  owner_id: string;
  volume_id: string;
  created_at: string;
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
  job_holds: JobHoldTable;
  layer_pins: LayerPinTable;
  transfers: TransferTable;
  qos_specs: QosSpecsTable;
  volume_type_encryption: VolumeTypeEncryptionTable;
  messages: MessageTable;
  backups: BackupTable;
  instances: InstanceTable;
  instance_volumes: InstanceVolumeTable;
  images: ImageTable;
  protection_plans: ProtectionPlanTable;
  plan_runs: PlanRunTable;
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

/** A volume offered to another project (Cinder's transfers). The auth key is
 *  never stored: only a random salt and scrypt(auth_key, salt), hex. */
export interface TransferTable {
  id: string;
  volume_id: string;
  /** The source project: the volume's owner when the transfer was created. */
  project_id: string;
  name: string | null;
  salt: string;
  crypt_hash: string;
  /** 3.55: 1 = the volume moves without its snapshots. */
  no_snapshots: number;
  created_at: string;
  expires_at: string | null;
}

export type TransferRow = Selectable<TransferTable>;

/** Cinder's QoS specs: a named set of key/values for a consumer. */
export interface QosSpecsTable {
  id: string;
  name: string;
  /** front-end | back-end | both */
  consumer: string;
  /** JSON object, key -> string or null. */
  specs: string;
  created_at: string;
  updated_at: string | null;
}

/** A volume type's encryption specs; stored and shown, never applied yet. */
export interface VolumeTypeEncryptionTable {
  volume_type_id: string;
  encryption_id: string;
  provider: string;
  /** front-end | back-end */
  control_location: string;
  cipher: string | null;
  key_size: number | null;
  created_at: string;
  updated_at: string | null;
}

/** A user message: the outcome of an asynchronous request that failed. */
export interface MessageTable {
  id: string;
  project_id: string;
  request_id: string;
  resource_type: string;
  resource_uuid: string | null;
  event_id: string;
  message_level: string;
  user_message: string;
  created_at: string;
  expires_at: string;
}

export type QosSpecsRow = Selectable<QosSpecsTable>;
export type VolumeTypeEncryptionRow = Selectable<VolumeTypeEncryptionTable>;
export type MessageRow = Selectable<MessageTable>;

/** A volume backup (Cinder's backups). The API inserts it and moves it into
 *  'creating', 'deleting' and 'restoring'; the backup role does the work and
 *  owns host, object_count, tracking and the byte counters. */
export interface BackupTable {
  id: string;
  project_id: string;
  user_id: string;
  volume_id: string;
  /** Set when the backup is taken from a snapshot of the volume. */
  snapshot_id: string | null;
  name: string | null;
  description: string | null;
  /** creating | available | deleting | error | error_deleting | restoring */
  status: string;
  fail_reason: string | null;
  /** GiB of the source volume. */
  size: number;
  object_count: number;
  container: string | null;
  availability_zone: string | null;
  /** 1 when parent_id is set. */
  is_incremental: number;
  parent_id: string | null;
  /** ISO time the backed-up data was current: the backup's created_at, or its snapshot's. */
  data_timestamp: string | null;
  /** The backup service that ran it, set by the role. */
  host: string | null;
  /** JSON object, key -> string (3.43). */
  metadata: string;
  /** The volume the running (or last) restore writes to. */
  restore_volume_id: string | null;
  /** A temporary snapshot the role made for a forced backup of an in-use volume. */
  temp_snapshot_id: string | null;
  /** 'allocation-depth' | 'full-read' (ADR 0007), set by the role. */
  tracking: string | null;
  bytes_read: number;
  bytes_total: number;
  bytes_done: number;
  /** Repository manifest id; null until the role has written or found it. */
  manifest_id: string | null;
  created_at: string;
  updated_at: string | null;
}

export type BackupRow = Selectable<BackupTable>;

// ---- compute, images, protection plans (migration 0006) ----

export interface InstanceTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  /** BUILD | ACTIVE | SHUTOFF | ERROR | DELETED */
  status: string;
  /** spawning | powering-on | powering-off | deleting | null */
  task_state: string | null;
  /** 0 NOSTATE, 1 RUNNING, 4 SHUTDOWN */
  power_state: number;
  host: string | null;
  vcpus: number;
  memory_mib: number;
  /** JSON InstanceBoot. */
  boot: string;
  metadata: string;
  /** thawed | freezing | frozen | thawing | error */
  quiesce_state: string;
  quiesce_deadline_at: number | null;
  quiesce_frozen_at: number | null;
  quiesce_detail: string | null;
  fault: string | null;
  created_at: string;
  updated_at: string | null;
  launched_at: string | null;
}

/** How the compute role boots an instance: QEMU direct kernel boot, the kernel
 *  and initramfs being images named by the boot volume's image metadata. */
export interface InstanceBoot {
  kernelImageId: string;
  ramdiskImageId: string;
  commandLine: string;
}

export interface InstanceVolumeTable {
  instance_id: string;
  volume_id: string;
  attachment_id: string;
  device: string;
  boot_index: number | null;
  delete_on_termination: number;
  created_at: string;
}

export interface ImageTable {
  id: string;
  owner: string;
  name: string | null;
  status: string;
  disk_format: string | null;
  container_format: string | null;
  visibility: string;
  protected: number;
  min_disk: number;
  min_ram: number;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  properties: string;
  tags: string;
  location: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface ProtectionPlanTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string | null;
  /** JSON PlanStage[]. */
  stages: string;
  require_quiesce: number;
  freeze_deadline_ms: number;
  schedule: string | null;
  next_run_at: number | null;
  keep_last: number | null;
  backup: number;
  created_at: string;
  updated_at: string | null;
}

export interface PlanStage {
  instances: { instance_id: string; volume_ids: string[] }[];
}

export interface PlanRunTable {
  id: string;
  plan_id: string;
  project_id: string;
  status: string;
  trigger: string;
  consistency: string | null;
  record: string;
  freeze_window_ms: number | null;
  snapshot_ids: string;
  backup_ids: string;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  created_at: string;
  updated_at: string | null;
}

export type InstanceRow = Selectable<InstanceTable>;
export type InstanceVolumeRow = Selectable<InstanceVolumeTable>;
export type ImageRow = Selectable<ImageTable>;
export type ProtectionPlanRow = Selectable<ProtectionPlanTable>;
export type PlanRunRow = Selectable<PlanRunTable>;
