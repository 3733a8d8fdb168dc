// `bulwark volume`: one process per host, one qemu-storage-daemon per pool.
// Start-up order matters: take the pool lock, attach to (or start) QSD, take back
// this service's interrupted jobs, rebuild the graph from the store, roll
// interrupted snapshot switches forward, drop orphans, re-export, then serve.
import { hostname as osHostname } from 'node:os';
import type { BulwarkConfig, PoolConfig } from '../../config/schema.js';
import type { Store } from '../../store/db.js';
import type { JobQueue } from '../../store/jobs.js';
import type { Logger } from '../../util/log.js';
import { ServiceRegistry } from '../../services/registry.js';
import { JobWorker } from '../worker.js';
import { onRolledForward, recordFailure, volumeHandlers, type HandlerContext } from './handlers.js';
import { LayerOps } from './layer-ops.js';
import { PoolRuntime } from './pool.js';
import { TlsGateway } from './gateway.js';
import { QmpClosedError, QmpTimeoutError } from '../../drivers/qmp/connection.js';
import { join } from 'node:path';

export interface VolumeRoleOptions {
  readonly config: BulwarkConfig;
  readonly store: Store;
  readonly jobs: JobQueue;
  readonly log: Logger;
}

export class PoolService {
  readonly runtime: PoolRuntime;
  private readonly ops: LayerOps;
  private worker: JobWorker | null = null;
  private registry: ServiceRegistry | null = null;
  private recovering: Promise<void> | null = null;
  private gateway: TlsGateway | null = null;
  private capabilityTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly opts: VolumeRoleOptions,
    pool: PoolConfig,
    private readonly hostname: string,
  ) {
    const v = opts.config.volume;
    this.runtime = new PoolRuntime({ store: opts.store, pool, hostname, qsdBinary: v.qsdBinary, qmpTimeoutMs: v.qmpTimeoutMs, nbdTcp: v.nbdTcp, log: opts.log });
    this.ops = new LayerOps(this.runtime, opts.store, opts.log);
  }

  get owner(): string {
    return `cinder-volume:${this.runtime.serviceHost}`;
  }

  async start(): Promise<void> {
    const { config, store, jobs, log } = this.opts;
    await jobs.requeueOwnedBy(this.owner);
    // Right after a kill -9 of the previous volume role, QSD may still be tearing
    // down that process's monitor connection and drop ours: retry with backoff.
    for (let attempt = 1; ; attempt++) {
      try {
        const fresh = await this.runtime.start();
        await this.rebuild(fresh);
        break;
      } catch (err) {
        if (attempt >= 8) throw err;
        log.warn({ err: String(err), attempt }, 'bringing the pool up failed; retrying');
        this.runtime.detachDaemon();
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
    const psk = config.volume.nbdTcp.port > 0 ? this.runtime.pskCredentials() : null;
    if (psk) {
      this.gateway = new TlsGateway({
        runDir: join(this.runtime.dir, 'run'),
        poolNbdSocket: this.runtime.nbdSocketPath,
        host: config.volume.nbdTcp.host,
        port: config.volume.nbdTcp.port,
        pskDir: psk.dir,
        qsdBinary: config.volume.qsdBinary,
        qmpTimeoutMs: config.volume.qmpTimeoutMs,
        log,
      });
      await this.gateway.start();
      await this.restoreRemoteExports();
    }
    const ctx: HandlerContext = {
      pool: this.runtime,
      ops: this.ops,
      store,
      jobs,
      log,
      hostname: this.hostname,
      tcp: psk ? { host: config.volume.nbdTcp.host, port: config.volume.nbdTcp.port, pskIdentity: psk.identity, pskKey: psk.key } : null,
      gateway: this.gateway,
    };
    this.worker = new JobWorker({
      jobs,
      owner: this.owner,
      targets: [this.runtime.host],
      handlers: volumeHandlers(ctx),
      pollIntervalMs: config.jobs.pollIntervalMs,
      leaseTtlMs: config.jobs.leaseTtlMs,
      log,
      onFailure: (job, err) => recordFailure(ctx, job, err),
      // QSD dying under a job is not the job's fault: run it again once the
      // daemon is back (every handler is idempotent).
      isRetryable: (err) => err instanceof QmpClosedError || err instanceof QmpTimeoutError || this.runtime.state !== 'running',
    });
    this.runtime.onDaemonExit(() => this.recover());
    this.registry = ServiceRegistry.fromConfig(store, config);
    await this.registry.register('cinder-volume', this.runtime.serviceHost, config.availabilityZone, this.runtime.capabilities());
    // Free space changes with every write; report it with the heartbeat cadence.
    this.capabilityTimer = setInterval(() => {
      this.registry?.updateCapabilities('cinder-volume', this.runtime.serviceHost, this.runtime.capabilities()).catch(() => undefined);
    }, config.jobs.heartbeatIntervalMs);
    this.capabilityTimer.unref();
    this.worker.start();
  }

  kick(): void {
    this.worker?.kick();
  }

  /** Re-adds the gateway exports of attachments connected over TCP (the gateway
   *  may have restarted with the host, or be fresh). */
  private async restoreRemoteExports(): Promise<void> {
    const rows = await this.opts.store.db
      .selectFrom('attachments')
      .innerJoin('volumes', 'volumes.id', 'attachments.volume_id')
      .select(['attachments.export_id', 'attachments.attach_mode', 'attachments.connection_info'])
      .where('volumes.host', '=', this.runtime.host)
      .where('attachments.status', 'in', ['attaching', 'attached'])
      .execute();
    for (const r of rows) {
      const info = JSON.parse(r.connection_info ?? '{}') as { data?: { transport?: string } };
      if (r.export_id && info.data?.transport === 'tcp') await this.gateway?.addExport(r.export_id, r.attach_mode !== 'ro');
    }
  }

  /** Rebuilds QSD's graph from the store (fresh: the daemon has just started). */
  private async rebuild(fresh: boolean): Promise<void> {
    await this.runtime.openLayers(fresh);
    if (fresh) await this.ops.rollForwardSwitches(onRolledForward);
    await this.runtime.removeOrphanFiles();
    await this.ops.collectGarbage();
    await this.runtime.restoreExports();
  }

  /** QSD died: stop claiming, restart it, reopen every volume, carry on. The
   *  job that was running when it died fails on its QMP call and is retried. */
  private recover(): void {
    if (this.stopped || this.recovering) return;
    this.worker?.pause();
    this.recovering = (async () => {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          const fresh = await this.runtime.bringUpDaemon();
          await this.rebuild(fresh);
          this.opts.log.info({ pool: this.runtime.serviceHost, attempt }, 'qemu-storage-daemon recovered');
          this.worker?.resume();
          return;
        } catch (err) {
          this.opts.log.error({ err: String(err), attempt }, 'recovering qemu-storage-daemon failed; retrying');
          await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
        }
      }
    })().finally(() => {
      this.recovering = null;
    });
  }

  async stop(opts: { keepDaemon: boolean }): Promise<void> {
    this.stopped = true;
    if (this.capabilityTimer) clearInterval(this.capabilityTimer);
    await this.worker?.stop();
    await this.registry?.stop();
    await this.gateway?.stop(opts);
    await this.runtime.stop(opts);
  }
}

export class VolumeRole {
  readonly pools: PoolService[];

  constructor(opts: VolumeRoleOptions, hostname = opts.config.host ?? osHostname()) {
    this.pools = opts.config.volume.pools.map((p) => new PoolService(opts, p, hostname));
  }

  async start(): Promise<void> {
    for (const p of this.pools) await p.start();
  }

  kick(): void {
    for (const p of this.pools) p.kick();
  }

  async stop(opts: { keepDaemon: boolean } = { keepDaemon: false }): Promise<void> {
    for (const p of this.pools) await p.stop(opts);
  }
}
