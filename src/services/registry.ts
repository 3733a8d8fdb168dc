// The services table as the roles see it: each role process registers the
// Cinder services it runs (cinder-volume per pool as HOST@POOL,
// cinder-scheduler, cinder-backup as HOST) and heartbeats them; a service
// whose heartbeat is older than jobs.serviceDownAfterMs is "down". Admin
// state (disabled, frozen) belongs to the API and is never touched here.
import type { BulwarkConfig } from '../config/schema.js';
import type { Executor, Store } from '../store/db.js';
import type { ServiceRow } from '../store/schema.js';

export const VOLUME_BINARY = 'cinder-volume';
export const SCHEDULER_BINARY = 'cinder-scheduler';
export const BACKUP_BINARY = 'cinder-backup';
/** Compute services share the table but are Nova's, not Cinder's: Cinder's service and host lists leave them out. */
export const COMPUTE_BINARY = 'nova-compute';

export type Capabilities = Record<string, unknown>;

export interface LiveService {
  readonly id: number;
  readonly binary: string;
  readonly host: string;
  readonly zone: string;
  readonly disabled: boolean;
  readonly disabledReason: string | null;
  readonly frozen: boolean;
  /** Epoch ms of the last heartbeat. */
  readonly heartbeatAt: number;
  readonly capabilities: Capabilities;
}

export function isServiceUp(row: Pick<ServiceRow, 'heartbeat_at'>, now: number, downAfterMs: number): boolean {
  return now - row.heartbeat_at < downAfterMs;
}

export function toLiveService(row: ServiceRow): LiveService {
  return {
    id: row.id,
    binary: row.binary,
    host: row.host,
    zone: row.availability_zone,
    disabled: row.disabled === 1,
    disabledReason: row.disabled_reason,
    frozen: row.frozen === 1,
    heartbeatAt: row.heartbeat_at,
    capabilities: JSON.parse(row.capabilities) as Capabilities,
  };
}

/** Every service of `binary` whose heartbeat is fresh, disabled or not. */
export async function listUpServices(ex: Executor, binary: string, downAfterMs: number, now = Date.now()): Promise<LiveService[]> {
  const rows = await ex
    .selectFrom('services')
    .selectAll()
    .where('binary', '=', binary)
    .where('heartbeat_at', '>', now - downAfterMs)
    .orderBy('host')
    .execute();
  return rows.map(toLiveService);
}

interface Registration {
  readonly binary: string;
  readonly host: string;
}

export interface ServiceRegistryOptions {
  readonly heartbeatIntervalMs: number;
  readonly serviceDownAfterMs: number;
  /** Injected clock (epoch ms), for tests. */
  readonly now?: () => number;
}

export class ServiceRegistry {
  private readonly registrations = new Map<string, Registration>();
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private readonly now: () => number;
  /** The last heartbeat failure (store unreachable, ...); cleared by the next success. */
  lastError: unknown = null;

  constructor(
    private readonly store: Store,
    private readonly opts: ServiceRegistryOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  static fromConfig(store: Store, config: BulwarkConfig): ServiceRegistry {
    return new ServiceRegistry(store, { heartbeatIntervalMs: config.jobs.heartbeatIntervalMs, serviceDownAfterMs: config.jobs.serviceDownAfterMs });
  }

  /**
   * Creates or refreshes the row for (binary, host) with a fresh heartbeat and
   * the given capabilities, then keeps it alive on the heartbeat interval.
   * Zone and capabilities are the role's to report; admin state is kept.
   */
  async register(binary: string, host: string, zone: string, capabilities: Capabilities = {}): Promise<void> {
    const now = this.now();
    const caps = JSON.stringify(capabilities);
    await this.store.db
      .insertInto('services')
      .values({ binary, host, availability_zone: zone, disabled: 0, disabled_reason: null, frozen: 0, heartbeat_at: now, capabilities: caps, created_at: new Date(now).toISOString(), updated_at: null })
      .onConflict((oc) => oc.columns(['binary', 'host']).doUpdateSet({ availability_zone: zone, heartbeat_at: now, capabilities: caps }))
      .execute();
    this.registrations.set(`${binary}\0${host}`, { binary, host });
    this.start();
  }

  /** Replaces a registered service's capabilities (e.g. a pool's free space) without waiting for a beat. */
  async updateCapabilities(binary: string, host: string, capabilities: Capabilities): Promise<void> {
    await this.store.db
      .updateTable('services')
      .set({ capabilities: JSON.stringify(capabilities), heartbeat_at: this.now() })
      .where('binary', '=', binary)
      .where('host', '=', host)
      .execute();
  }

  /** One beat for every registration; overlapping calls share the one in flight. */
  heartbeat(): Promise<void> {
    this.beating ??= this.beat().finally(() => {
      this.beating = null;
    });
    return this.beating;
  }

  private async beat(): Promise<void> {
    if (this.registrations.size === 0) return;
    try {
      const now = this.now();
      for (const r of this.registrations.values()) {
        await this.store.db.updateTable('services').set({ heartbeat_at: now }).where('binary', '=', r.binary).where('host', '=', r.host).execute();
      }
      this.lastError = null;
    } catch (err) {
      // A missed beat is survivable (the row only goes stale); crashing the
      // role on a transient store error is not.
      this.lastError = err;
    }
  }

  private start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.heartbeat(), this.opts.heartbeatIntervalMs);
    // Heartbeats alone must not keep a finished process alive.
    this.timer.unref();
  }

  /** Stops beating (the rows stay and turn "down", as in Cinder) and waits for a beat in flight. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.registrations.clear();
    await this.beating;
  }

  /** Live services of `binary`, capabilities parsed. Schedulers must skip `disabled` and `frozen` ones themselves. */
  listUp(binary: string): Promise<LiveService[]> {
    return listUpServices(this.store.db, binary, this.opts.serviceDownAfterMs, this.now());
  }
}
