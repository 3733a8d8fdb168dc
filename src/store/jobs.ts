// Durable jobs: the only way roles hand work to each other. A job is claimed under
// a lease; the owner renews it; every state change is conditional on (owner, fence),
// so a worker that lost its lease can never overwrite its successor's work.
import type { Updateable } from 'kysely';
import type { Executor, Store } from './db.js';
import { nowIso } from './db.js';
import type { JobRow, JobTable } from './schema.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface NewJob {
  kind: string;
  target: string | null;
  resourceId: string;
  payload?: object;
}

export interface ClaimedJob {
  readonly id: number;
  readonly kind: string;
  readonly target: string | null;
  readonly resourceId: string;
  readonly payload: Record<string, unknown>;
  readonly owner: string;
  readonly fence: number;
  readonly attempts: number;
}

export class StaleJobError extends Error {
  constructor(job: ClaimedJob) {
    super(`job ${job.id} (${job.kind}) is no longer owned by ${job.owner} with fence ${job.fence}`);
  }
}

export class JobQueue {
  constructor(
    private readonly store: Store,
    private readonly leaseTtlMs: number,
  ) {}

  /** Calls `listener` when the store may hold new work (see Store.onChange); null: poll. */
  onChange(listener: () => void): (() => void) | null {
    return this.store.onChange(listener);
  }

  async enqueue(ex: Executor, job: NewJob): Promise<number> {
    const row = await ex
      .insertInto('jobs')
      .values({
        kind: job.kind,
        target: job.target,
        resource_id: job.resourceId,
        payload: JSON.stringify(job.payload ?? {}),
        state: 'queued',
        fence: 0,
        lease_expires_at: 0,
        attempts: 0,
        created_at: nowIso(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await this.store.announce(ex);
    return row.id;
  }

  /** Claims the oldest runnable job for one of `targets` (null = untargeted):
   *  queued, or running under an expired lease (its owner died). */
  async claim(owner: string, targets: ReadonlyArray<string | null>, kinds?: readonly string[]): Promise<ClaimedJob | null> {
    const now = Date.now();
    // Idle workers ask several times a second: a plain read first keeps that
    // from being a (serializable) transaction each time. It is only a hint:
    // the transaction below picks again, under its own snapshot and locks.
    if (!(await this.claimable(this.store.db, now, targets, kinds).executeTakeFirst())) return null;
    return this.store.transaction(async (trx) => {
      let pick = this.claimable(trx, now, targets, kinds);
      if (this.store.capabilities.skipLocked) pick = pick.forUpdate().skipLocked();
      const candidate = await pick.executeTakeFirst();
      if (!candidate) return null;
      const row = await trx
        .updateTable('jobs')
        .set((eb) => ({
          state: 'running',
          owner,
          fence: eb('fence', '+', 1),
          attempts: eb('attempts', '+', 1),
          lease_expires_at: now + this.leaseTtlMs,
          updated_at: nowIso(),
        }))
        .where('id', '=', candidate.id)
        .returningAll()
        .executeTakeFirst();
      return row ? toClaimed(row) : null;
    });
  }

  /** The oldest job one of `targets` could claim now: queued, or running under an expired lease. */
  private claimable(ex: Executor, now: number, targets: ReadonlyArray<string | null>, kinds?: readonly string[]) {
    const named = targets.filter((t): t is string => t !== null);
    const wantsNull = targets.includes(null);
    let pick = ex
      .selectFrom('jobs')
      .select('id')
      .where((eb) => eb.or([eb('state', '=', 'queued'), eb.and([eb('state', '=', 'running'), eb('lease_expires_at', '<', now)])]))
      .where((eb) => {
        const ors = [];
        if (named.length > 0) ors.push(eb('target', 'in', named));
        if (wantsNull) ors.push(eb('target', 'is', null));
        return ors.length > 0 ? eb.or(ors) : eb.val(false);
      })
      // A target under a live hold runs only its holders' jobs (see hold()).
      .where((eb) =>
        eb.or([
          eb.not(eb.exists(eb.selectFrom('job_holds').select('job_holds.holder').whereRef('job_holds.target', '=', 'jobs.target').where('job_holds.expires_at', '>', now))),
          eb.exists(
            eb
              .selectFrom('job_holds')
              .select('job_holds.holder')
              .whereRef('job_holds.target', '=', 'jobs.target')
              .whereRef('job_holds.holder', '=', 'jobs.resource_id')
              .where('job_holds.expires_at', '>', now),
          ),
        ]),
      )
      .orderBy('id')
      .limit(1);
    if (kinds && kinds.length > 0) pick = pick.where('kind', 'in', kinds);
    return pick;
  }

  /**
   * Reserves each target's queue for `holder`'s jobs (those whose resource id
   * it is) until `untilMs` or unhold(): a job already running finishes, but no
   * other job starts there meanwhile. Several holders may share a target.
   */
  async hold(ex: Executor, targets: readonly string[], holder: string, untilMs: number): Promise<void> {
    for (const target of new Set(targets)) {
      await ex.deleteFrom('job_holds').where('target', '=', target).where('holder', '=', holder).execute();
      await ex.insertInto('job_holds').values({ target, holder, expires_at: untilMs, created_at: nowIso() }).execute();
    }
  }

  /** Ends `holder`'s holds; the jobs they kept waiting become claimable at once. */
  async unhold(ex: Executor, holder: string): Promise<void> {
    const res = await ex.deleteFrom('job_holds').where('holder', '=', holder).executeTakeFirst();
    if (res.numDeletedRows > 0n) await this.store.announce(ex);
  }

  /** Extends the lease; false means the job was taken over and the caller must stop. */
  async renew(job: ClaimedJob): Promise<boolean> {
    return this.fencedSet(this.store.db, job, { lease_expires_at: Date.now() + this.leaseTtlMs });
  }

  async complete(job: ClaimedJob, result?: object, ex: Executor = this.store.db): Promise<boolean> {
    return this.fencedSet(ex, job, { state: 'done', result: JSON.stringify(result ?? {}), updated_at: nowIso(), lease_expires_at: 0 });
  }

  async fail(job: ClaimedJob, error: string, ex: Executor = this.store.db): Promise<boolean> {
    return this.fencedSet(ex, job, { state: 'failed', error, updated_at: nowIso(), lease_expires_at: 0 });
  }

  /** Gives the job back to the queue untouched (a transient fault: its owner
   *  will, or another may, run it again). */
  async release(job: ClaimedJob): Promise<boolean> {
    const released = await this.fencedSet(this.store.db, job, { state: 'queued', owner: null, lease_expires_at: 0, updated_at: nowIso() });
    if (released) await this.store.announce(this.store.db);
    return released;
  }

  /** Runs fn in a transaction that first proves the caller still owns the job. */
  async withFence<T>(job: ClaimedJob, fn: (trx: Executor) => Promise<T>): Promise<T> {
    return this.store.transaction(async (trx) => {
      const held = await trx
        .selectFrom('jobs')
        .select('id')
        .where('id', '=', job.id)
        .where('owner', '=', job.owner)
        .where('fence', '=', job.fence)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (!held) throw new StaleJobError(job);
      return fn(trx);
    });
  }

  /** At start a service takes back its own interrupted work at once rather than
   *  waiting for the leases to run out (Cinder's cleanup of one's own orphans). */
  async requeueOwnedBy(owner: string): Promise<number> {
    const res = await this.store.db
      .updateTable('jobs')
      .set({ state: 'queued', owner: null, lease_expires_at: 0, updated_at: nowIso() })
      .where('owner', '=', owner)
      .where('state', '=', 'running')
      .executeTakeFirst();
    if (res.numUpdatedRows > 0n) await this.store.announce(this.store.db);
    return Number(res.numUpdatedRows);
  }

  async get(id: number): Promise<JobRow | undefined> {
    return this.store.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Polls until the job is done or failed; used where the Cinder API is synchronous
   *  (os-initialize_connection) but the work belongs to another role. */
  async waitFor(id: number, timeoutMs: number, pollMs = 20): Promise<JobRow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await this.get(id);
      if (!row) throw new Error(`job ${id} vanished`);
      if (row.state === 'done' || row.state === 'failed') return row;
      if (Date.now() > deadline) throw new Error(`job ${id} (${row.kind}) did not finish within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Drops finished jobs older than the horizon, and lapsed holds, so the tables stay small. */
  async prune(olderThanMs: number): Promise<void> {
    const horizon = new Date(Date.now() - olderThanMs).toISOString();
    await this.store.db
      .deleteFrom('jobs')
      .where('state', 'in', ['done', 'failed'])
      .where('updated_at', '<', horizon)
      .execute();
    await this.store.db.deleteFrom('job_holds').where('expires_at', '<', Date.now()).execute();
  }

  private async fencedSet(ex: Executor, job: ClaimedJob, values: Updateable<JobTable>): Promise<boolean> {
    const res = await ex
      .updateTable('jobs')
      .set(values)
      .where('id', '=', job.id)
      .where('owner', '=', job.owner)
      .where('fence', '=', job.fence)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return res.numUpdatedRows === 1n;
  }
}

function toClaimed(row: JobRow): ClaimedJob {
  return {
    id: row.id,
    kind: row.kind,
    target: row.target,
    resourceId: row.resource_id,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    owner: row.owner ?? '',
    fence: row.fence,
    attempts: row.attempts,
  };
}

