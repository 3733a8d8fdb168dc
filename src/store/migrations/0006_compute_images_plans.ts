// Instances (the compute role's VMs), images (the minimal Glance v2 service),
// and protection plans with their runs (ordered quiesce + group snapshot).
import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

type Db = Kysely<unknown>;

export function computeImagesPlansSchema(_store: Store): Migration {
  return {
    async up(db: Db) {
      await db.schema
        .createTable('instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        // Nova's vm_state-derived status: BUILD | ACTIVE | SHUTOFF | ERROR | DELETED
        .addColumn('status', 'text', (c) => c.notNull())
        // spawning | powering-on | powering-off | deleting | null
        .addColumn('task_state', 'text')
        // Nova power_state: 0 NOSTATE, 1 RUNNING, 4 SHUTDOWN
        .addColumn('power_state', 'integer', (c) => c.notNull().defaultTo(0))
        // The compute host that runs it (set by the scheduler at create).
        .addColumn('host', 'text')
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        // JSON: { kernelImageId, ramdiskImageId, commandLine }.
        .addColumn('boot', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
        // thawed | freezing | frozen | thawing | error
        .addColumn('quiesce_state', 'text', (c) => c.notNull().defaultTo('thawed'))
        // Epoch ms after which the watchdog thaws a frozen guest.
        .addColumn('quiesce_deadline_at', 'bigint')
        .addColumn('quiesce_frozen_at', 'bigint')
        .addColumn('quiesce_detail', 'text')
        .addColumn('fault', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .addColumn('launched_at', 'text')
        .execute();
      await db.schema.createIndex('instances_project').on('instances').column('project_id').execute();

      await db.schema
        .createTable('instance_volumes')
        .addColumn('instance_id', 'text', (c) => c.notNull())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('attachment_id', 'text', (c) => c.notNull())
        // /dev/vda, /dev/vdb, ... in attach order.
        .addColumn('device', 'text', (c) => c.notNull())
        .addColumn('boot_index', 'integer')
        .addColumn('delete_on_termination', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('instance_volumes_pk', ['instance_id', 'volume_id'])
        .execute();
      await db.schema.createIndex('instance_volumes_volume').on('instance_volumes').column('volume_id').execute();

      await db.schema
        .createTable('images')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        // queued | saving | active | killed | deleted | pending_delete
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('disk_format', 'text')
        .addColumn('container_format', 'text')
        .addColumn('visibility', 'text', (c) => c.notNull())
        .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('min_disk', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('min_ram', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('size', 'bigint')
        .addColumn('virtual_size', 'bigint')
        .addColumn('checksum', 'text')
        .addColumn('os_hash_algo', 'text')
        .addColumn('os_hash_value', 'text')
        // JSON object of extra properties (kernel_id, ramdisk_id, os_command_line, ...).
        .addColumn('properties', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
        // Absolute path of the stored image data, once uploaded.
        .addColumn('location', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      // Cinder's volume_glance_metadata, as one JSON object per volume.
      await db.schema.alterTable('volumes').addColumn('image_metadata', 'text').execute();

      await db.schema
        .createTable('protection_plans')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        // JSON: [{ "instances": [{ "instance_id": "...", "volume_ids": ["..."] }] }, ...]
        .addColumn('stages', 'text', (c) => c.notNull())
        .addColumn('require_quiesce', 'integer', (c) => c.notNull().defaultTo(1))
        // How long a guest may stay frozen before the watchdog thaws it.
        .addColumn('freeze_deadline_ms', 'integer', (c) => c.notNull())
        // Cron expression (5 fields, UTC) or null for on-demand only.
        .addColumn('schedule', 'text')
        .addColumn('next_run_at', 'bigint')
        .addColumn('keep_last', 'integer')
        // 1: each run also backs the snapshots up as one restore point.
        .addColumn('backup', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      await db.schema
        .createTable('plan_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('plan_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        // queued | running | available | error | deleting
        .addColumn('status', 'text', (c) => c.notNull())
        // manual | schedule
        .addColumn('trigger', 'text', (c) => c.notNull())
        // application | crash | mixed (set when the snapshots are taken)
        .addColumn('consistency', 'text')
        // JSON record of the run: freeze/thaw order and times, per-instance intervals.
        .addColumn('record', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('freeze_window_ms', 'real')
        .addColumn('snapshot_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('backup_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('error', 'text')
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createIndex('plan_runs_plan').on('plan_runs').column('plan_id').execute();
    },
  };
}
