// Starts the roles a process runs. Roles share nothing but the state store and
// its job rows; in all-in-one the only extra is a wake-up hint between them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { BulwarkConfig } from '../config/schema.js';
import { openStore, type Store } from '../store/db.js';
import { JobQueue } from '../store/jobs.js';
import { createLogger, type Logger } from '../util/log.js';
import { buildApiApp, publicUrlOf } from './api/app.js';
import { SchedulerRole } from './scheduler/role.js';
import { VolumeRole } from './volume/role.js';
import { BackupRole } from './backup/role.js';
import { ComputeRole } from './compute/role.js';

export type RoleName = 'api' | 'scheduler' | 'volume' | 'backup' | 'compute';

export interface RunningRoles {
  readonly store: Store;
  readonly jobs: JobQueue;
  readonly log: Logger;
  readonly apiUrl: string | null;
  readonly app: FastifyInstance | null;
  readonly volume: VolumeRole | null;
  stop(opts?: { keepDaemon: boolean }): Promise<void>;
}

export async function startRoles(config: BulwarkConfig, roles: ReadonlySet<RoleName>, name = [...roles].join('+')): Promise<RunningRoles> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const log = createLogger(name, config.logLevel);
  const store = await openStore(config.databaseUrl!);
  const jobs = new JobQueue(store, config.jobs.leaseTtlMs);
  let volume: VolumeRole | null = null;
  let scheduler: SchedulerRole | null = null;
  let backup: BackupRole | null = null;
  let compute: ComputeRole | null = null;
  const kick = () => {
    scheduler?.kick();
    volume?.kick();
    backup?.kick();
    compute?.kick();
  };
  // A role that fails to start takes down the ones already started, so a
  // failed start leaves no daemon or store behind.
  try {
    if (roles.has('volume')) {
      volume = new VolumeRole({ config, store, jobs, log });
      await volume.start();
    }
    if (roles.has('backup')) {
      backup = new BackupRole(config, store, jobs, log, () => volume?.kick());
      await backup.start();
    }
    if (roles.has('compute')) {
      compute = new ComputeRole({ store, jobs, config, kick }, log);
      await compute.start();
    }
    if (roles.has('scheduler')) {
      scheduler = new SchedulerRole(config, store, jobs, log, kick);
      await scheduler.start();
    }
  } catch (err) {
    await compute?.stop().catch(() => undefined);
    await scheduler?.stop().catch(() => undefined);
    await backup?.stop().catch(() => undefined);
    await volume?.stop({ keepDaemon: false }).catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  let app: FastifyInstance | null = null;
  let apiUrl: string | null = null;
  if (roles.has('api')) {
    const built = await buildApiApp({ store, jobs, config, kick }, publicUrlOf(config), {});
    app = built.app;
    await app.listen({ host: config.api.listen.host, port: config.api.listen.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.api.listen.port;
    apiUrl = publicUrlOf(config, port);
    if (config.api.listen.port === 0 && !config.api.publicUrl) {
      // Bound to a kernel-chosen port: rebuild so the catalog names the real port.
      await app.close();
      const rebuilt = await buildApiApp({ store, jobs, config: { ...config, api: { ...config.api, publicUrl: apiUrl } }, kick }, apiUrl, {});
      app = rebuilt.app;
      await app.listen({ host: config.api.listen.host, port });
    }
    log.info({ url: apiUrl }, 'API listening');
  }
  return {
    store,
    jobs,
    log,
    apiUrl,
    app,
    volume,
    async stop(opts = { keepDaemon: false }) {
      await app?.close();
      await scheduler?.stop();
      await backup?.stop();
      await compute?.stop();
      await volume?.stop(opts);
      await store.close();
    },
  };
}

/** openrc files for the admin and for a member of another project, so that
 *  `source DIR/openrc && openstack volume list` works at once. */
export function writeOpenrcFiles(config: BulwarkConfig, apiUrl: string): string[] {
  const files: string[] = [];
  const users = config.identity.users;
  const admin = users.find((u) => u.roles.some((r) => r.role === 'admin'));
  const member = users.find((u) => u !== admin && u.roles.some((r) => r.role === 'member'));
  const write = (file: string, user: (typeof users)[number] | undefined) => {
    if (!user) return;
    const project = user.roles[0]?.project ?? '';
    const lines = [
      `export OS_AUTH_URL=${apiUrl}/identity/v3`,
      `export OS_USERNAME=${user.name}`,
      `export OS_PASSWORD=${user.password}`,
      `export OS_PROJECT_NAME=${project}`,
      `export OS_USER_DOMAIN_NAME=${user.domain}`,
      `export OS_PROJECT_DOMAIN_NAME=Default`,
      `export OS_IDENTITY_API_VERSION=3`,
      `export OS_VOLUME_API_VERSION=3.64`,
      `export OS_AUTH_TYPE=password`,
      `export OS_INTERFACE=public`,
      `export OS_REGION_NAME=RegionOne`,
      '',
    ];
    const path = join(config.dataDir, file);
    writeFileSync(path, lines.join('\n'), { mode: 0o600 });
    files.push(path);
  };
  write('openrc', admin);
  write('openrc-member', member);
  return files;
}
