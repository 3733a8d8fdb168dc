// The one configuration schema. Every knob has a default and units in its name;
// unknown keys are rejected so a typo never silently falls back to a default.
import { z } from 'zod';

const listen = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
  })
  .strict();

const roleAssignment = z
  .object({
    project: z.string().min(1),
    /** Domain name of `project`; defaults to the user's own domain. */
    projectDomain: z.string().min(1).optional(),
    role: z.enum(['admin', 'member', 'reader']),
  })
  .strict();

const user = z
  .object({
    name: z.string().min(1),
    password: z.string().min(1),
    domain: z.string().default('Default'),
    roles: z.array(roleAssignment).default([]),
  })
  .strict();

const project = z
  .object({
    name: z.string().min(1),
    domain: z.string().default('Default'),
  })
  .strict();

export const identitySchema = z
  .object({
    projects: z.array(project).default([
      { name: 'admin', domain: 'Default' },
      { name: 'demo', domain: 'Default' },
    ]),
    users: z.array(user).default([
      { name: 'admin', password: 'bulwark-admin', domain: 'Default', roles: [{ project: 'admin', role: 'admin' }] },
      { name: 'demo', password: 'bulwark-demo', domain: 'Default', roles: [{ project: 'demo', role: 'member' }] },
    ]),
    tokenTtlMs: z.number().int().positive().default(3_600_000),
    /**
     * Secret file holding the token key (>= 32 bytes), shared by every API process
     * that must accept the same tokens; created with 32 random bytes, mode 0600,
     * if missing. Unset: the caller picks a path under dataDir.
     */
    tokenKeyFile: z.string().min(1).optional(),
  })
  .strict();

const pool = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,30}$/),
    /** Directory holding the pool's qcow2 layers; created if missing. Absolute after load. */
    path: z.string().min(1),
    capacityGiB: z.number().positive().default(1024),
    /**
     * How qemu-storage-daemon opens the layers, as Nova's disk cachemodes: "none"
     * bypasses the host page cache (O_DIRECT, Linux native AIO), the default of
     * Nova, Proxmox and oVirt; "writeback" goes through it. "auto": none where
     * the filesystem takes O_DIRECT, else writeback.
     */
    cache: z.enum(['auto', 'none', 'writeback']).default('auto'),
  })
  .strict();

const quotas = z
  .object({
    volumes: z.number().int().default(100),
    snapshots: z.number().int().default(100),
    gigabytes: z.number().int().default(10_000),
    backups: z.number().int().default(100),
    backup_gigabytes: z.number().int().default(10_000),
    groups: z.number().int().default(50),
    per_volume_gigabytes: z.number().int().default(-1),
  })
  .strict();

export const configSchema = z
  .object({
    /** Where SQLite, pools, sockets and keys live by default. */
    dataDir: z.string().default('.data'),
    /** Host name this process reports as (Cinder's `host`); defaults to os.hostname(). */
    host: z.string().optional(),
    availabilityZone: z.string().default('nova'),
    /** sqlite:///abs/path.db or postgres://user:pass@host:port/db. Default: sqlite in dataDir. */
    databaseUrl: z.string().optional(),
    api: z
      .object({
        listen: listen.default({ host: '127.0.0.1', port: 8776 }),
        /** Public base URL put in the catalog; defaults to http://listen.host:listen.port */
        publicUrl: z.string().url().optional(),
      })
      .strict()
      .default({ listen: { host: '127.0.0.1', port: 8776 } }),
    identity: identitySchema.default(identitySchema.parse({})),
    volume: z
      .object({
        pools: z.array(pool).default([]),
        /** TCP NBD (TLS-PSK) for attachments from other hosts; port 0 disables it. */
        nbdTcp: listen.default({ host: '127.0.0.1', port: 0 }),
        qsdBinary: z.string().default('qemu-storage-daemon'),
        qmpTimeoutMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .default({ pools: [], nbdTcp: { host: '127.0.0.1', port: 0 }, qsdBinary: 'qemu-storage-daemon', qmpTimeoutMs: 30_000 }),
    jobs: z
      .object({
        leaseTtlMs: z.number().int().positive().default(15_000),
        /** How often an idle worker looks for jobs when its store cannot wake it (no inotify watch). With wake-ups it looks every 500 ms, or this if longer. */
        pollIntervalMs: z.number().int().positive().default(50),
        heartbeatIntervalMs: z.number().int().positive().default(5_000),
        /** A service whose heartbeat is older than this is reported down. */
        serviceDownAfterMs: z.number().int().positive().default(60_000),
      })
      .strict()
      .default({ leaseTtlMs: 15_000, pollIntervalMs: 50, heartbeatIntervalMs: 5_000, serviceDownAfterMs: 60_000 }),
    quotas: quotas.default(quotas.parse({})),
    backup: z
      .object({
        /** file:///abs/dir (default: DATA_DIR/backups) or s3://bucket/prefix?endpoint=URL&region=R */
        repository: z.string().optional(),
        /** Key file that unlocks the repository (created, 0600, for a new local repository). */
        keyFile: z.string().optional(),
        /** JSON {accessKeyId, secretAccessKey} for an s3:// repository; never in the config itself. */
        s3CredentialsFile: z.string().optional(),
        /** NBD reads and repository writes in flight. */
        inFlight: z.number().int().min(1).max(64).default(8),
        exportTimeoutMs: z.number().int().positive().default(120_000),
      })
      .strict()
      .default({ inFlight: 8, exportTimeoutMs: 120_000 }),
    compute: z
      .object({
        /** Per-instance runtime directories (QMP/QGA sockets, pid, console). Default: DATA_DIR/instances. */
        instancesDir: z.string().optional(),
        qemuBinary: z.string().default('qemu-system-x86_64'),
        /** 'auto': KVM only when a trial boot under KVM succeeds, else TCG. */
        accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
        /** Budget for a boot to an answering guest agent. */
        bootTimeoutMs: z.number().int().positive().default(120_000),
        /** Freeze deadline when a quiesce call names none. */
        defaultFreezeDeadlineMs: z.number().int().positive().default(60_000),
        /** os-stop: how long a guest gets to power off after the ACPI request before QEMU is told to quit. */
        shutdownGraceMs: z.number().int().min(0).default(10_000),
      })
      .strict()
      .default({ qemuBinary: 'qemu-system-x86_64', accel: 'auto', bootTimeoutMs: 120_000, defaultFreezeDeadlineMs: 60_000, shutdownGraceMs: 10_000 }),
    images: z
      .object({
        /** Where uploaded image data lives. Default: DATA_DIR/images. */
        directory: z.string().optional(),
        /** Largest accepted upload. */
        maxSizeBytes: z.number().int().positive().default(64 * 1024 * 1024 * 1024),
      })
      .strict()
      .default({ maxSizeBytes: 64 * 1024 * 1024 * 1024 }),
    plans: z
      .object({
        /** How often the scheduler looks for plans whose cron schedule is due. */
        scheduleTickMs: z.number().int().positive().default(5_000),
      })
      .strict()
      .default({ scheduleTickMs: 5_000 }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type BulwarkConfig = z.infer<typeof configSchema>;
export type IdentityConfig = z.infer<typeof identitySchema>;
export type PoolConfig = z.infer<typeof pool>;
