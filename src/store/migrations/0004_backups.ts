// Volume backups (Cinder's backups table). The API writes a row in 'creating',
// 'deleting' or 'restoring' and hands the work to the backup role as a job;
// the role fills in host, object_count, tracking and the progress counters.
import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

type Db = Kysely<unknown>;

export function backupsSchema(_store: Store): Migration {
  return {
    async up(db: Db) {
      await db.schema
        .createTable('backups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('snapshot_id', 'text')
        .addColumn('name', 'text')
        .addColumn('description', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('fail_reason', 'text')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('object_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('container', 'text')
        .addColumn('availability_zone', 'text')
        .addColumn('is_incremental', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('parent_id', 'text')
        .addColumn('data_timestamp', 'text')
        .addColumn('host', 'text')
        // JSON object of key -> string (3.43).
        .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('restore_volume_id', 'text')
        .addColumn('temp_snapshot_id', 'text')
        // 'allocation-depth' | 'full-read', set by the role (ADR 0007).
        .addColumn('tracking', 'text')
        .addColumn('bytes_read', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_total', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_done', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createIndex('backups_project').on('backups').columns(['project_id', 'created_at']).execute();
      await db.schema.createIndex('backups_volume').on('backups').columns(['volume_id', 'data_timestamp']).execute();
      // Incremental chains: "does anything depend on this backup" must be cheap.
      await db.schema.createIndex('backups_parent').on('backups').column('parent_id').execute();
    },
  };
}
