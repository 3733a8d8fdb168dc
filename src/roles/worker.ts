// A job loop: claims jobs for its targets, runs the handler for the job's kind,
// renews the lease while it runs, and records the outcome under the fence.
// Jobs run one at a time per worker: a volume pool's graph is changed by one
// operation at a time, which keeps every QMP sequence simple to reason about.
import type { JobQueue, ClaimedJob } from '../store/jobs.js';
import { StaleJobError } from '../store/jobs.js';
import type { Logger } from '../util/log.js';

/** After this many claims a job that keeps hitting transient faults fails for real. */
const MAX_TRANSIENT_ATTEMPTS = 20;

/**
 * How often an idle worker looks for work when the store tells it of every
 * commit (Store.onChange): then polling only covers what no commit announces,
 * a lease running out, and a missed hint. Without such a store it polls
 * every `pollIntervalMs`.
 */
const NOTIFIED_POLL_MS = 500;

/**
 * After a change hint that found nothing, look again this much later, then
 * later again: SQLite's hint (the write-ahead log grew) can come a moment
 * before the commit is visible, since the writer updates the log's index
 * after writing the frames, and a writer preempted in between can take a
 * while on a busy host.
 */
const HINT_RECHECKS_MS = [20, 100, 300];

export type JobHandler = (job: ClaimedJob) => Promise<object | void>;

export type WorkerState = 'starting' | 'running' | 'paused' | 'draining' | 'stopped';

export interface WorkerOptions {
  readonly jobs: JobQueue;
  readonly owner: string;
  readonly targets: ReadonlyArray<string | null>;
  readonly handlers: Readonly<Record<string, JobHandler>>;
  readonly pollIntervalMs: number;
  readonly leaseTtlMs: number;
  readonly log: Logger;
  /** Called when a handler throws, to put the resource into its error status. */
  readonly onFailure?: (job: ClaimedJob, err: unknown) => Promise<void>;
  /** A transient fault (the data plane restarting): the job is released and run
   *  again instead of failing its resource. */
  readonly isRetryable?: (err: unknown) => boolean;
}

export class JobWorker {
  private state: WorkerState = 'starting';
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  /** A change came while a claim was in flight: look again before sleeping. */
  private changed = false;

  constructor(private readonly opts: WorkerOptions) {}

  get status(): WorkerState {
    return this.state;
  }

  start(): void {
    this.state = 'running';
    this.unsubscribe = this.opts.jobs.onChange(() => {
      this.changed = true;
      this.kick();
    });
    this.loop = this.run();
  }

  /** Wakes the loop at once (a latency hint; polling finds the job anyway). */
  kick(): void {
    this.wake?.();
  }

  /** Stops claiming; the job in hand finishes first. */
  pause(): void {
    if (this.state === 'running') this.state = 'paused';
  }

  resume(): void {
    if (this.state === 'paused') {
      this.state = 'running';
      this.kick();
    }
  }

  async stop(): Promise<void> {
    this.state = 'draining';
    this.kick();
    await this.loop;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.state = 'stopped';
  }

  private async run(): Promise<void> {
    const { jobs, owner, targets, handlers, log } = this.opts;
    const kinds = Object.keys(handlers);
    const idleMs = this.unsubscribe ? Math.max(this.opts.pollIntervalMs, NOTIFIED_POLL_MS) : this.opts.pollIntervalMs;
    let rechecks: number[] = [];
    while (this.state === 'running' || this.state === 'paused') {
      let job: ClaimedJob | null = null;
      let failed = false;
      const hinted = this.changed;
      this.changed = false;
      if (this.state === 'running') {
        try {
          job = await jobs.claim(owner, targets, kinds);
        } catch (err) {
          failed = true;
          log.warn({ err: String(err) }, 'claiming a job failed; retrying');
        }
      }
      if (!job) {
        if (this.changed && !failed && this.state === 'running') continue; // a commit landed after our look
        if (hinted) rechecks = [...HINT_RECHECKS_MS];
        const wait = rechecks.shift() ?? idleMs;
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = null;
        continue;
      }
      rechecks = [];
      await this.execute(job);
    }
  }

  private async execute(job: ClaimedJob): Promise<void> {
    const { jobs, handlers, log } = this.opts;
    const renew = setInterval(() => {
      jobs.renew(job).catch(() => undefined);
    }, Math.max(50, Math.floor(this.opts.leaseTtlMs / 3)));
    const started = Date.now();
    try {
      const handler = handlers[job.kind];
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`);
      const result = await handler(job);
      await jobs.complete(job, result ?? {});
      log.info({ job: job.id, kind: job.kind, resource: job.resourceId, ms: Date.now() - started }, 'job done');
    } catch (err) {
      if (err instanceof StaleJobError) {
        log.warn({ job: job.id, kind: job.kind }, 'lost the job to another owner; dropping it');
        return;
      }
      if (this.opts.isRetryable?.(err) && job.attempts < MAX_TRANSIENT_ATTEMPTS) {
        log.warn({ job: job.id, kind: job.kind, attempt: job.attempts, err: errorText(err) }, 'transient failure; the job will run again');
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * job.attempts)));
        await jobs.release(job).catch(() => undefined);
        return;
      }
      log.error({ job: job.id, kind: job.kind, resource: job.resourceId, err: errorText(err) }, 'job failed');
      try {
        await this.opts.onFailure?.(job, err);
      } catch (inner) {
        log.error({ job: job.id, err: errorText(inner) }, 'recording the failure failed');
      }
      await jobs.fail(job, errorText(err)).catch(() => undefined);
    } finally {
      clearInterval(renew);
    }
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
