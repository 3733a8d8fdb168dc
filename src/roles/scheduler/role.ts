// `bulwark scheduler`: places new volumes on a pool of a live, enabled volume
// service (most free capacity first), keeping a group's volumes on one host so
// its group snapshots are one QMP transaction. Any number may run.
import { hostname as osHostname } from 'node:os';
import type { BulwarkConfig } from '../../config/schema.js';
import type { Store } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { ClaimedJob, JobQueue } from '../../store/jobs.js';
import { ServiceRegistry } from '../../services/registry.js';
import type { Logger } from '../../util/log.js';
import { JobWorker, errorText } from '../worker.js';
import { recordUserMessage } from '../../services/messages.js';
import { matchesExtraSpecs, type Capabilities } from './filters.js';
import { PlanScheduleClock } from './plan-schedule.js';
import { PlanRunner } from './plan-runner.js';
import { ORCHESTRATOR_TARGET, RESTORE_RUN_JOB, RUN_PLAN_JOB } from '../../services/plans.js';
import { restoreRun } from './restore-points.js';

interface PoolCapability {
  pool_name: string;
  free_capacity_gb: number;
  [key: string]: unknown;
}

/** Cinder's NoValidBackend: no pool passes the filters. */
export class NoValidBackend extends Error {
  constructor() {
    super('No valid backend was found. No weighed backends available');
  }
}

export interface Placement {
  readonly serviceHost: string;
  readonly pool: string;
  readonly freeGiB: number;
  /** Backend-level capabilities overlaid with the pool's own. */
  readonly capabilities: Capabilities;
}

/** Pure choice among candidate pools: the given host if one is required,
 *  else the pool with the most free space (ties: name order, for determinism). */
export function choosePool(candidates: readonly Placement[], sizeGiB: number, requiredHost: string | null): Placement | null {
  const fits = candidates.filter((c) => c.freeGiB >= sizeGiB && (!requiredHost || `${c.serviceHost}#${c.pool}` === requiredHost));
  fits.sort((a, b) => b.freeGiB - a.freeGiB || `${a.serviceHost}#${a.pool}`.localeCompare(`${b.serviceHost}#${b.pool}`));
  return fits[0] ?? null;
}

export class SchedulerRole {
  private worker: JobWorker | null = null;
  private registry: ServiceRegistry | null = null;
  private planClock: PlanScheduleClock | null = null;
  private orchestrator: JobWorker | null = null;

  constructor(
    private readonly config: BulwarkConfig,
    private readonly store: Store,
    private readonly jobs: JobQueue,
    private readonly log: Logger,
    /** Wake-up hint for the roles that will run what this one enqueues (all-in-one). */
    private readonly kickOthers: () => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    const host = this.config.host ?? osHostname();
    this.registry = ServiceRegistry.fromConfig(this.store, this.config);
    await this.registry.register('cinder-scheduler', host, this.config.availabilityZone, {});
    this.worker = new JobWorker({
      jobs: this.jobs,
      owner: `cinder-scheduler:${host}:${process.pid}`,
      targets: [null],
      handlers: { schedule_volume: (job) => this.scheduleVolume(job) },
      pollIntervalMs: this.config.jobs.pollIntervalMs,
      leaseTtlMs: this.config.jobs.leaseTtlMs,
      log: this.log,
      onFailure: async (job, err) => {
        await this.jobs.withFence(job, async (trx) => {
          const res = await trx
            .updateTable('volumes')
            .set({ status: 'error', error_reason: errorText(err), updated_at: nowIso() })
            .where('id', '=', job.resourceId)
            .where('status', '=', 'creating')
            .executeTakeFirst();
          // Once per failure: a retried job finds the volume already in error.
          if (res.numUpdatedRows === 0n) return;
          const vol = await trx.selectFrom('volumes').select('project_id').where('id', '=', job.resourceId).executeTakeFirstOrThrow();
          await recordUserMessage(trx, {
            projectId: vol.project_id,
            resourceType: 'VOLUME',
            resourceUuid: job.resourceId,
            action: 'SCHEDULE_ALLOCATE_VOLUME',
            detail: err instanceof NoValidBackend ? 'NO_BACKEND_AVAILABLE' : 'UNKNOWN_ERROR',
          });
        });
      },
    });
    this.worker.start();
    // Protection-plan schedules: queued runs go to the orchestrator through job rows.
    this.planClock = new PlanScheduleClock({ store: this.store, jobs: this.jobs, config: this.config, kick: this.kickOthers }, this.log);
    this.planClock.start();
    // The plan orchestrator: its own worker, so a run (seconds) never delays
    // volume placement. Any number of schedulers may run; a run whose
    // orchestrator died is taken over when its lease expires.
    const runnerDeps = { store: this.store, jobs: this.jobs, config: this.config, kick: this.kickOthers };
    const runner = new PlanRunner(runnerDeps, this.log);
    this.orchestrator = new JobWorker({
      jobs: this.jobs,
      owner: `bulwark-orchestrator:${host}:${process.pid}`,
      targets: [ORCHESTRATOR_TARGET],
      handlers: { [RUN_PLAN_JOB]: (job) => runner.run(job), [RESTORE_RUN_JOB]: (job) => restoreRun(runnerDeps, this.log, job) },
      pollIntervalMs: this.config.jobs.pollIntervalMs,
      leaseTtlMs: this.config.jobs.leaseTtlMs,
      log: this.log,
    });
    this.orchestrator.start();
  }

  kick(): void {
    this.worker?.kick();
    this.orchestrator?.kick();
  }

  private async candidates(): Promise<Placement[]> {
    const services = await this.registry!.listUp('cinder-volume');
    const out: Placement[] = [];
    for (const s of services.filter((svc) => !svc.disabled)) {
      const { pools, ...backend } = s.capabilities as { pools?: PoolCapability[] } & Record<string, unknown>;
      for (const p of pools ?? []) out.push({ serviceHost: s.host, pool: p.pool_name, freeGiB: p.free_capacity_gb, capabilities: { ...backend, ...p } });
    }
    return out;
  }

  private async scheduleVolume(job: ClaimedJob): Promise<void> {
    // Two attempts: the second follows a group that another scheduler placed
    // between our read and our write.
    for (let attempt = 0; attempt < 2; attempt++) {
      const vol = await this.store.db.selectFrom('volumes').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
      if (!vol || vol.status !== 'creating' || vol.host) return;
      const group = vol.group_id ? await this.store.db.selectFrom('groups').selectAll().where('id', '=', vol.group_id).executeTakeFirst() : undefined;
      const vtype = await this.store.db.selectFrom('volume_types').select('extra_specs').where('id', '=', vol.volume_type_id).executeTakeFirst();
      const specs = JSON.parse(vtype?.extra_specs ?? '{}') as Record<string, string>;
      const fitting = (await this.candidates()).filter((c) => matchesExtraSpecs(specs, c.capabilities));
      const choice = choosePool(fitting, vol.size, group?.host ?? null);
      if (!choice) throw new NoValidBackend();
      const host = `${choice.serviceHost}#${choice.pool}`;
      const placed = await this.jobs.withFence(job, async (trx) => {
        if (group) {
          await trx.updateTable('groups').set({ host }).where('id', '=', group.id).where('host', 'is', null).execute();
          const g = await trx.selectFrom('groups').select('host').where('id', '=', group.id).executeTakeFirst();
          if (g?.host !== host) return false;
        }
        const res = await trx.updateTable('volumes').set({ host, updated_at: nowIso() }).where('id', '=', vol.id).where('host', 'is', null).executeTakeFirst();
        if (res.numUpdatedRows === 1n) await this.jobs.enqueue(trx, { kind: 'create_volume', target: host, resourceId: vol.id });
        return true;
      });
      if (placed) {
        this.log.info({ volume: vol.id, host }, 'scheduled');
        this.kickOthers();
        return;
      }
    }
    throw new Error('could not place the volume beside its group');
  }

  async stop(): Promise<void> {
    await this.planClock?.stop();
    await this.orchestrator?.stop();
    await this.worker?.stop();
    await this.registry?.stop();
  }
}
