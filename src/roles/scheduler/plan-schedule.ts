// The scheduler's protection-plan clock: every plans.scheduleTickMs it queues a
// 'schedule' run of each plan whose next_run_at has come, and finishes the
// deletion of runs whose snapshots are gone. Any number of schedulers may run:
// a plan fires only for the one whose compare-and-swap of next_run_at (old
// value → next cron time after now) succeeds, in the same transaction as the
// run it queues. A plan that already has a run queued or running just moves
// on to its next time. Missed times (every scheduler down) fire once, not once
// per missed time.
import type { ServiceDeps } from '../../services/deps.js';
import { nextCronTime } from '../../services/plan-cron.js';
import { queueRunIn, reapDeletingRuns } from '../../services/plans.js';
import type { Logger } from '../../util/log.js';

export interface TickResult {
  /** Ids of the runs this tick queued. */
  readonly queued: string[];
  /** Plans that were due but already had a run in progress (advanced only). */
  readonly skipped: string[];
  /** Plans another scheduler advanced first. */
  readonly lost: string[];
}

export async function planScheduleTick(deps: ServiceDeps, log: Logger | null, now: number = Date.now()): Promise<TickResult> {
  const out: TickResult = { queued: [], skipped: [], lost: [] };
  const due = await deps.store.db
    .selectFrom('protection_plans')
    .select(['id', 'schedule', 'next_run_at'])
    .where('schedule', 'is not', null)
    .where('next_run_at', 'is not', null)
    .where('next_run_at', '<=', now)
    .execute();
  for (const d of due) {
    let next: number | null;
    try {
      next = nextCronTime(d.schedule!, now);
    } catch (err) {
      // Only a row written around the API can get here; stop it firing every tick.
      log?.error({ plan: d.id, err: String(err) }, 'plan has an unusable schedule; not scheduling it');
      next = null;
    }
    const outcome = await deps.store.transaction(async (trx) => {
      const res = await trx
        .updateTable('protection_plans')
        .set({ next_run_at: next })
        .where('id', '=', d.id)
        .where('next_run_at', '=', d.next_run_at!)
        .executeTakeFirst();
      if (res.numUpdatedRows !== 1n) return 'lost' as const;
      if (next === null) return 'skipped' as const;
      const plan = await trx.selectFrom('protection_plans').selectAll().where('id', '=', d.id).executeTakeFirstOrThrow();
      const run = await queueRunIn(trx, deps, plan, 'schedule');
      return run ? run.id : ('skipped' as const);
    });
    if (outcome === 'lost') out.lost.push(d.id);
    else if (outcome === 'skipped') out.skipped.push(d.id);
    else {
      out.queued.push(outcome);
      log?.info({ plan: d.id, run: outcome }, 'scheduled protection plan run queued');
    }
  }
  if (out.queued.length > 0) deps.kick?.();
  await reapDeletingRuns(deps);
  return out;
}

/** Runs the tick on a timer; ticks never overlap, stop() waits for the current one. */
export class PlanScheduleClock {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = planScheduleTick(this.deps, this.log)
        .then(
          () => undefined,
          (err: unknown) => this.log.warn({ err: String(err) }, 'protection plan schedule tick failed; retrying next tick'),
        )
        .finally(() => {
          this.running = null;
          this.arm();
        });
    }, this.deps.config.plans.scheduleTickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
