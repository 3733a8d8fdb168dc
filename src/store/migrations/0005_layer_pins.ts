import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

/** Layers kept for someone other than a volume or snapshot: today, the newest
 *  backup of a volume pins the layer it was taken from (ADR 0007). Backups also
 *  record which repository manifest they stand for. */
export function layerPinsSchema(_store: Store): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('layer_pins')
        .addColumn('layer_id', 'text', (c) => c.notNull())
        .addColumn('owner_kind', 'text', (c) => c.notNull())
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('volume_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('layer_pins_pk', ['owner_kind', 'owner_id'])
        .execute();
      await db.schema.createIndex('layer_pins_layer').on('layer_pins').column('layer_id').execute();
      // The repository manifest a backup row stands for: its own id, or for an
      // imported record the id it had where it was made.
      await db.schema.alterTable('backups').addColumn('manifest_id', 'text').execute();
    },
  };
}
