import { type ColumnDefinitionBuilder, type Kysely, type Migration } from 'kysely';
import type { Store } from '../db.js';

type Db = Kysely<unknown>;

export function initialSchema(store: Store): Migration {
  // The only dialect difference in this schema: how an auto-increment key is spelled.
  const serialId = (col: ColumnDefinitionBuilder) =>
    store.dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey();
  const serialType = store.dialect === 'sqlite' ? 'integer' : 'serial';

  return {
    async up(db: Db) {
      await db.schema
        .createTable('volumes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('description', 'text')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attach_status', 'text', (c) => c.notNull().defaultTo('detached'))
        .addColumn('migration_status', 'text')
        .addColumn('volume_type_id', 'text', (c) => c.notNull())
        .addColumn('availability_zone', 'text', (c) => c.notNull())
        .addColumn('host', 'text')
        .addColumn('bootable', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('multiattach', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('snapshot_id', 'text')
        .addColumn('source_volid', 'text')
        .addColumn('group_id', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('active_layer_id', 'text')
        .addColumn('error_reason', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .addColumn('launched_at', 'text')
        .execute();
      await db.schema.createIndex('volumes_project').on('volumes').columns(['project_id', 'created_at']).execute();

      await db.schema
        .createTable('snapshots')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('description', 'text')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('progress', 'text', (c) => c.notNull().defaultTo('0%'))
        .addColumn('layer_id', 'text')
        .addColumn('group_snapshot_id', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createIndex('snapshots_volume').on('snapshots').column('volume_id').execute();

      await db.schema
        .createTable('layers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull().unique())
        .addColumn('backing_layer_id', 'text')
        .addColumn('size_bytes', 'bigint', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('pending_for', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('layers_backing').on('layers').column('backing_layer_id').execute();

      await db.schema
        .createTable('volume_types')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('extra_specs', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema
        .createTable('volume_type_access')
        .addColumn('volume_type_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('volume_type_access_pk', ['volume_type_id', 'project_id'])
        .execute();

      await db.schema
        .createTable('group_types')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('group_specs', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('description', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('group_type_id', 'text', (c) => c.notNull())
        .addColumn('volume_type_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('availability_zone', 'text', (c) => c.notNull())
        .addColumn('host', 'text')
        .addColumn('group_snapshot_id', 'text')
        .addColumn('source_group_id', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      await db.schema
        .createTable('group_snapshots')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('group_type_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('description', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      await db.schema
        .createTable('attachments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('instance_uuid', 'text')
        .addColumn('attached_host', 'text')
        .addColumn('mountpoint', 'text')
        .addColumn('attach_mode', 'text', (c) => c.notNull().defaultTo('rw'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('connector', 'text')
        .addColumn('connection_info', 'text')
        .addColumn('export_id', 'text')
        .addColumn('attach_time', 'text')
        .addColumn('detach_time', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createIndex('attachments_volume').on('attachments').column('volume_id').execute();

      await db.schema
        .createTable('services')
        .addColumn('id', serialType, serialId)
        .addColumn('binary', 'text', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('availability_zone', 'text', (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled_reason', 'text')
        .addColumn('frozen', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('capabilities', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .addUniqueConstraint('services_binary_host', ['binary', 'host'])
        .execute();

      await db.schema
        .createTable('quotas')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('resource', 'text', (c) => c.notNull())
        .addColumn('hard_limit', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
        .execute();
      await db.schema
        .createTable('quota_classes')
        .addColumn('class_name', 'text', (c) => c.notNull())
        .addColumn('resource', 'text', (c) => c.notNull())
        .addColumn('hard_limit', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('quota_classes_pk', ['class_name', 'resource'])
        .execute();

      await db.schema
        .createTable('jobs')
        .addColumn('id', serialType, serialId)
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('resource_id', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('fence', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('lease_expires_at', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('result', 'text')
        .addColumn('error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createIndex('jobs_claim').on('jobs').columns(['state', 'target', 'id']).execute();
    },
  };
}
