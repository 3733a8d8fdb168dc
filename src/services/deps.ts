// What the API-side services need: the store, the job queue and the config.
// Passed explicitly; no module-level singletons, so tests can run several
// deployments in one process.
import type { BulwarkConfig } from '../config/schema.js';
import type { Store } from '../store/db.js';
import type { JobQueue } from '../store/jobs.js';

export interface ServiceDeps {
  readonly store: Store;
  readonly jobs: JobQueue;
  readonly config: BulwarkConfig;
  /** Called after a job is enqueued; in all-in-one it wakes the local workers at
   *  once. Only a latency hint: split roles find the job by polling. */
  readonly kick?: () => void;
}

export interface Caller {
  readonly userId: string;
  readonly projectId: string;
  readonly isAdmin: boolean;
}
