// Volume transfers (Cinder's os-volume-transfer / volume-transfers). A row lives
// while its volume is 'awaiting-transfer'; accepting or deleting it removes it.
import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

type Db = Kysely<unknown>;

export function transfersSchema(_store: Store): Migration {
  return {
    async up(db: Db) {
      await db.schema
        .createTable('transfers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('salt', 'text', (c) => c.notNull())
        .addColumn('crypt_hash', 'text', (c) => c.notNull())
        .addColumn('no_snapshots', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .execute();
      // One open transfer per volume: the status CAS already ensures it, the index proves it.
      await db.schema.createIndex('transfers_volume').on('transfers').column('volume_id').unique().execute();
      await db.schema.createIndex('transfers_project').on('transfers').columns(['project_id', 'created_at']).execute();
    },
  };
}
