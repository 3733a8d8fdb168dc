// QoS specs (and the volume type's link to one), volume type encryption specs
// and user messages (Cinder's qos_specs, encryption and messages tables).
import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

type Db = Kysely<unknown>;

export function qosMessagesSchema(_store: Store): Migration {
  return {
    async up(db: Db) {
      await db.schema
        .createTable('qos_specs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('consumer', 'text', (c) => c.notNull())
        // JSON object of key -> string (or null, as Cinder allows).
        .addColumn('specs', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.alterTable('volume_types').addColumn('qos_specs_id', 'text').execute();
      await db.schema.createIndex('volume_types_qos').on('volume_types').column('qos_specs_id').execute();

      await db.schema
        .createTable('volume_type_encryption')
        .addColumn('volume_type_id', 'text', (c) => c.primaryKey())
        .addColumn('encryption_id', 'text', (c) => c.notNull().unique())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('control_location', 'text', (c) => c.notNull())
        .addColumn('cipher', 'text')
        .addColumn('key_size', 'integer')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();

      await db.schema
        .createTable('messages')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('request_id', 'text', (c) => c.notNull())
        .addColumn('resource_type', 'text', (c) => c.notNull())
        .addColumn('resource_uuid', 'text')
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('message_level', 'text', (c) => c.notNull())
        .addColumn('user_message', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('messages_project').on('messages').columns(['project_id', 'created_at']).execute();
    },
  };
}
