// `bulwark compute`: one per hypervisor host. Runs QEMU VMs booted from Bulwark
// volumes (attached over NBD), each with a QMP socket and a guest agent
// channel. VMs outlive this process: after a restart it re-attaches to every
// QEMU it finds, marks instances whose QEMU is gone SHUTOFF with a fault, and
// re-arms the freeze watchdog of every guest that might still be frozen.
import { mkdirSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import type { ServiceDeps } from '../../services/deps.js';
import { COMPUTE_BINARY, computeTarget } from '../../services/instances.js';
import { ServiceRegistry } from '../../services/registry.js';
import { nowIso } from '../../store/db.js';
import type { Logger } from '../../util/log.js';
import { findVm, vmPid } from '../../drivers/vm/index.js';
import { ensureWatchdog, lastWatchdogAction } from '../../drivers/vm/freeze-watchdog.js';
import { JobWorker } from '../worker.js';
import { makeComputeContext, type ComputeContext } from './context.js';
import { computeHandlers, recordComputeFailure } from './handlers.js';

/** Jobs run side by side: a slow boot must not hold up a freeze on another instance. */
const WORKERS = 4;
/** Freeze/thaw hops sit inside a plan's freeze window: poll the queue often. */
const POLL_MS = 10;
const SYNC_INTERVAL_MS = 3_000;

export class ComputeRole {
  private workers: JobWorker[] = [];
  private registry: ServiceRegistry | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private ctx: ComputeContext | null = null;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly log: Logger,
  ) {}

  get host(): string {
    return this.deps.config.host ?? osHostname();
  }

  async start(): Promise<void> {
    const { config, jobs, store } = this.deps;
    const host = this.host;
    const ctx = makeComputeContext(this.deps, host, this.log);
    this.ctx = ctx;
    mkdirSync(ctx.instancesDir, { recursive: true, mode: 0o700 });
    const owner = `compute:${host}`;
    await jobs.requeueOwnedBy(owner);
    await this.reconcile();
    const handlers = computeHandlers(ctx);
    for (let i = 0; i < WORKERS; i++) {
      this.workers.push(
        new JobWorker({
          jobs,
          owner,
          targets: [computeTarget(host)],
          handlers,
          pollIntervalMs: Math.min(POLL_MS, config.jobs.pollIntervalMs),
          leaseTtlMs: config.jobs.leaseTtlMs,
          log: this.log,
          onFailure: (job, err) => recordComputeFailure(ctx, job, err),
        }),
      );
    }
    this.registry = ServiceRegistry.fromConfig(store, config);
    await this.registry.register(COMPUTE_BINARY, host, config.availabilityZone, { accel: config.compute.accel });
    for (const w of this.workers) w.start();
    this.syncTimer = setInterval(() => {
      this.syncStates().catch((err: unknown) => this.log.warn({ err: String(err) }, 'instance state sync failed'));
    }, SYNC_INTERVAL_MS);
    this.syncTimer.unref();
  }

  kick(): void {
    for (const w of this.workers) w.kick();
  }

  async stop(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    await Promise.all(this.workers.map((w) => w.stop()));
    this.ctx?.sessions.dropAll();
    await this.registry?.stop();
  }

  /** After a restart: every instance of this host either has its QEMU back or is
   *  marked SHUTOFF; a guest that may be frozen has its watchdog running. */
  private async reconcile(): Promise<void> {
    const ctx = this.ctx!;
    const db = this.deps.store.db;
    const rows = await db.selectFrom('instances').selectAll().where('host', '=', this.host).where('status', 'in', ['ACTIVE', 'BUILD', 'SHUTOFF']).execute();
    for (const inst of rows) {
      const dir = ctx.instanceDir(inst.id);
      const vm = await findVm(dir).catch(() => null);
      if (vm) {
        await vm.close();
        if (inst.quiesce_state !== 'thawed') await ensureWatchdog(dir);
        continue;
      }
      if (inst.status === 'ACTIVE') {
        await db
          .updateTable('instances')
          .set({ status: 'SHUTOFF', power_state: 4, task_state: null, quiesce_state: 'thawed', quiesce_deadline_at: null, fault: 'QEMU was not running when the compute service started; start the server again.', updated_at: nowIso() })
          .where('id', '=', inst.id)
          .where('status', '=', 'ACTIVE')
          .execute();
        this.log.warn({ instance: inst.id }, 'instance QEMU not found after restart; marked SHUTOFF');
      }
    }
    await this.syncStates();
  }

  /** Nova's power-state sync, plus the watchdog's thaws reflected in the rows. */
  private async syncStates(): Promise<void> {
    const ctx = this.ctx!;
    const db = this.deps.store.db;
    const rows = await db.selectFrom('instances').selectAll().where('host', '=', this.host).where('status', '=', 'ACTIVE').where('task_state', 'is', null).execute();
    for (const inst of rows) {
      const dir = ctx.instanceDir(inst.id);
      if (inst.quiesce_state === 'frozen' || inst.quiesce_state === 'error') {
        const action = await lastWatchdogAction(dir).catch(() => null);
        if (action && action.statusAfter === 'thawed' && inst.quiesce_deadline_at !== null && action.thawedAt >= inst.quiesce_deadline_at) {
          await db
            .updateTable('instances')
            .set({ quiesce_state: 'thawed', quiesce_deadline_at: null, quiesce_frozen_at: null, quiesce_detail: `thawed by the watchdog at its deadline (${new Date(action.thawedAt).toISOString()})`, updated_at: nowIso() })
            .where('id', '=', inst.id)
            .where('quiesce_state', '=', inst.quiesce_state)
            .execute();
        }
      }
      // Every few seconds for every instance: /proc only, no QMP connection.
      if (vmPid(dir) === null) {
        await db
          .updateTable('instances')
          .set({ status: 'SHUTOFF', power_state: 4, fault: 'QEMU exited', updated_at: nowIso() })
          .where('id', '=', inst.id)
          .where('status', '=', 'ACTIVE')
          .where('task_state', 'is', null)
          .execute();
      }
    }
  }
}
