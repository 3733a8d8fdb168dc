import type { Kysely, Migration } from 'kysely';
import type { Store } from '../db.js';

/**
 * A hold reserves a target's job queue for one resource until it expires or is
 * released: while any hold on a target is live, workers there claim only the
 * holders' jobs. A protection plan holds its volume pools from before its
 * guests freeze until its snapshots are taken, so a long job queued meanwhile
 * (an image copy, a merge) cannot start between the two and stretch the freeze.
 */
export function jobHoldsSchema(_store: Store): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('job_holds')
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('holder', 'text', (c) => c.notNull())
        // Epoch milliseconds, as jobs.lease_expires_at: a holder that dies lets go by itself.
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('job_holds_pk', ['target', 'holder'])
        .execute();
    },
  };
}
