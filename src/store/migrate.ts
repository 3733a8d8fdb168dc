// Forward-only migrations, kept in code so a single `bulwark` binary carries them.
import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { Store } from './db.js';
import { initialSchema } from './migrations/0001_initial.js';
import { transfersSchema } from './migrations/0002_transfers.js';
import { qosMessagesSchema } from './migrations/0003_qos_messages.js';
import { backupsSchema } from './migrations/0004_backups.js';
import { layerPinsSchema } from './migrations/0005_layer_pins.js';
import { computeImagesPlansSchema } from './migrations/0006_compute_images_plans.js';
import { jobHoldsSchema } from './migrations/0007_job_holds.js';

const migrations: Record<string, (store: Store) => Migration> = {
  '0001_initial': initialSchema,
  '0002_transfers': transfersSchema,
  '0003_qos_messages': qosMessagesSchema,
  '0004_backups': backupsSchema,
  '0005_layer_pins': layerPinsSchema,
  '0006_compute_images_plans': computeImagesPlansSchema,
  '0007_job_holds': jobHoldsSchema,
};

export async function migrateToLatest(store: Store): Promise<void> {
  const provider: MigrationProvider = {
    async getMigrations() {
      return Object.fromEntries(Object.entries(migrations).map(([name, make]) => [name, make(store)]));
    },
  };
  // allowUnorderedMigrations stays false: a database newer than this binary is refused.
  const migrator = new Migrator({ db: store.db, provider, migrationTableName: 'bulwark_migrations', migrationLockTableName: 'bulwark_migrations_lock' });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`state store migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${String(error)}`);
  }
}
