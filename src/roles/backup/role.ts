// `bulwark backup`: any number of processes on any hosts. Each claims backup
// jobs (target "cinder-backup"), reads and writes volumes only through NBD
// exports the volume role makes for it, and records itself as the backup's host.
import { hostname as osHostname } from 'node:os';
import type { BulwarkConfig } from '../../config/schema.js';
import type { Repository } from '../../backup/repository/repository.js';
import { BACKUP_BINARY, ServiceRegistry } from '../../services/registry.js';
import type { Store } from '../../store/db.js';
import type { JobQueue } from '../../store/jobs.js';
import type { Logger } from '../../util/log.js';
import { JobWorker } from '../worker.js';
import { GC_JOB, runGc, runVerify, VERIFY_JOB } from './admin.js';
import { failBackup, runBackup, type BackupContext } from './engine.js';
import { openRepository } from './repository.js';
import { failRestore, failSimple, runDelete, runImport, runRestore } from './restore.js';
import { VolumeCalls } from './volume-calls.js';

export const BACKUP_TARGET = 'cinder-backup';

export class BackupRole {
  private worker: JobWorker | null = null;
  private registry: ServiceRegistry | null = null;
  private repo: Repository | null = null;

  constructor(
    private readonly config: BulwarkConfig,
    private readonly store: Store,
    private readonly jobs: JobQueue,
    private readonly log: Logger,
    private readonly kickOthers: () => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    const host = this.config.host ?? osHostname();
    this.repo = await openRepository(this.config);
    const owner = `cinder-backup:${host}`;
    await this.jobs.requeueOwnedBy(owner);
    const ctx: BackupContext = {
      store: this.store,
      jobs: this.jobs,
      repo: this.repo,
      calls: new VolumeCalls(this.store, this.jobs, host, this.config.backup.exportTimeoutMs, this.kickOthers),
      serviceHost: host,
      inFlight: this.config.backup.inFlight,
      log: this.log,
    };
    this.worker = new JobWorker({
      jobs: this.jobs,
      owner,
      targets: [BACKUP_TARGET],
      handlers: {
        create_backup: (job) => runBackup(ctx, job),
        restore_backup: (job) => runRestore(ctx, job),
        delete_backup: (job) => runDelete(ctx, job),
        import_backup: (job) => runImport(ctx, job),
        [VERIFY_JOB]: (job) => runVerify(ctx, job),
        [GC_JOB]: (job) => runGc(ctx, job),
      },
      pollIntervalMs: this.config.jobs.pollIntervalMs,
      leaseTtlMs: this.config.jobs.leaseTtlMs,
      log: this.log,
      onFailure: async (job, err) => {
        if (job.kind === 'create_backup') await failBackup(ctx, job, err);
        else if (job.kind === 'restore_backup') await failRestore(ctx, job, err);
        else if (job.kind === 'delete_backup') await failSimple(ctx, job, err, 'error_deleting');
        else if (job.kind === 'import_backup') await failSimple(ctx, job, err, 'error');
      },
    });
    this.registry = ServiceRegistry.fromConfig(this.store, this.config);
    await this.registry.register(BACKUP_BINARY, host, this.config.availabilityZone, { repository: this.repo.store.describe });
    this.worker.start();
  }

  kick(): void {
    this.worker?.kick();
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
    await this.registry?.stop();
    await this.repo?.close();
  }
}
