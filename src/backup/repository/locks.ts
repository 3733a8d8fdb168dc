// Coordination between writers and gc through the store alone (no server, no
// state store): the protocol is in ADR 0005, "Garbage collection".
//
// locks/<backupId>            a writer's lock: a timestamp renewed while it writes
// locks/<backupId>.refs.<n>   the chunk ids it references, published in segments
// gc/<runId>                  a gc run's record: running (renewed) or finished
import { hostname } from 'node:os';
import { getSealed, listKeys, putSealed, type RepoContext } from './context.js';
import { addIdBytes, ChunkIdSet } from './id-set.js';

export const LOCK_PREFIX = 'locks/';
export const GC_PREFIX = 'gc/';

interface LockBody {
  readonly backupId: string;
  readonly volumeId: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly renewedAt: number;
  /** Segments 1..refsSegments are published. */
  readonly refsSegments: number;
}

export interface LockInfo extends LockBody {
  readonly live: boolean;
}

function lockKey(backupId: string): string {
  return `${LOCK_PREFIX}${backupId}`;
}

function refsName(backupId: string, seq: number): string {
  return `${backupId}.refs.${String(seq).padStart(6, '0')}`;
}

function json(v: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(v));
}

function parse<T>(raw: Uint8Array): T {
  return JSON.parse(Buffer.from(raw).toString('utf8')) as T;
}

/** A writer's lock. Every chunk id the backup will reference passes through addRef. */
export class WriterLock {
  private readonly recorded = new ChunkIdSet();
  private pending: string[] = [];
  private segments = 0;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: RepoContext,
    readonly backupId: string,
    private readonly volumeId: string,
  ) {}

  addRef(id: string): void {
    if (this.recorded.add(id)) this.pending.push(id);
  }

  /** Writes the lock, then renews it (publishing new references) until release. */
  async start(): Promise<void> {
    await this.flush();
    this.timer = setInterval(() => {
      this.flush().catch(() => undefined); // a missed renewal is retried at the next tick; commit does not depend on it
    }, this.ctx.options.lockRenewMs);
    this.timer.unref();
  }

  /** Publishes pending references, then renews the timestamp. Serialized. */
  flush(): Promise<void> {
    const run = this.flushing.then(async () => {
      if (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const ids = new Uint8Array(batch.length * 32);
        batch.forEach((id, i) => ids.set(Buffer.from(id, 'hex'), i * 32));
        const name = refsName(this.backupId, this.segments + 1);
        try {
          await putSealed(this.ctx, `${LOCK_PREFIX}${name}`, 'lockrefs', name, ids);
        } catch (err) {
          this.pending = batch.concat(this.pending);
          throw err;
        }
        this.segments++;
      }
      const body: LockBody = {
        backupId: this.backupId,
        volumeId: this.volumeId,
        host: hostname(),
        pid: process.pid,
        startedAt: this.startedAt,
        renewedAt: Date.now(),
        refsSegments: this.segments,
      };
      await putSealed(this.ctx, lockKey(this.backupId), 'lock', this.backupId, json(body));
    });
    this.flushing = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Removes the lock, then its reference segments. */
  async release(): Promise<void> {
    this.stop();
    await this.flushing;
    await this.ctx.store.delete(lockKey(this.backupId));
    for (let s = 1; s <= this.segments; s++) await this.ctx.store.delete(`${LOCK_PREFIX}${refsName(this.backupId, s)}`);
  }
}

export interface LockScan {
  readonly locks: LockInfo[];
  /** Every lock key and refs key listed, to delete those of dead locks. */
  readonly keysOf: Map<string, string[]>;
}

export async function scanLocks(ctx: RepoContext, expiryMs: number): Promise<LockScan> {
  const keys = await listKeys(ctx.store, LOCK_PREFIX);
  const keysOf = new Map<string, string[]>();
  for (const k of keys) {
    const id = k.slice(LOCK_PREFIX.length).split('.')[0]!;
    keysOf.set(id, [...(keysOf.get(id) ?? []), k]);
  }
  const locks: LockInfo[] = [];
  const now = Date.now();
  for (const id of keysOf.keys()) {
    const raw = await getSealed(ctx, lockKey(id), 'lock', id);
    if (raw === null) continue; // refs left behind by a released or expired lock
    const body = parse<LockBody>(raw);
    locks.push({ ...body, live: now - body.renewedAt < expiryMs });
  }
  return { locks, keysOf };
}

/** The references a lock has published. */
export async function readRefs(ctx: RepoContext, lock: LockInfo, into: ChunkIdSet): Promise<void> {
  for (let s = 1; s <= lock.refsSegments; s++) {
    const name = refsName(lock.backupId, s);
    const raw = await getSealed(ctx, `${LOCK_PREFIX}${name}`, 'lockrefs', name);
    // A live lock never loses a published segment; if one is gone the lock was released meanwhile.
    if (raw !== null) addIdBytes(into, raw);
  }
}

interface GcBody {
  readonly runId: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly renewedAt: number;
  readonly finishedAt: number | null;
}

export interface GcRecord extends GcBody {
  /** Not finished, and renewed recently enough that it may still delete chunks. */
  readonly running: boolean;
}

export async function listGcRecords(ctx: RepoContext): Promise<GcRecord[]> {
  const out: GcRecord[] = [];
  const now = Date.now();
  for (const key of await listKeys(ctx.store, GC_PREFIX)) {
    const runId = key.slice(GC_PREFIX.length);
    const raw = await getSealed(ctx, key, 'gc', runId);
    if (raw === null) continue;
    const body = parse<GcBody>(raw);
    out.push({ ...body, running: body.finishedAt === null && now - body.renewedAt < ctx.options.gcExpiryMs });
  }
  return out;
}

/** A gc run's record, renewed while it runs. Deletions stop when renewal lags (self-fencing). */
export class GcRun {
  private renewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly ctx: RepoContext,
    readonly runId: string,
    private readonly expiryMs: number,
  ) {}

  async start(): Promise<void> {
    await this.write(null);
    this.timer = setInterval(() => {
      this.write(null).catch(() => undefined);
    }, Math.max(10, Math.floor(this.expiryMs / 4)));
    this.timer.unref();
  }

  /**
   * False once our record may look dead to a writer: a committing writer stops
   * waiting for a gc whose record is older than the expiry, so we must not
   * delete past half of it (the other half is the margin for clock skew).
   */
  fresh(): boolean {
    return Date.now() - this.renewedAt < this.expiryMs / 2;
  }

  async finish(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.write(Date.now());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async write(finishedAt: number | null): Promise<void> {
    const renewedAt = Date.now();
    const body: GcBody = { runId: this.runId, host: hostname(), pid: process.pid, startedAt: this.startedAt, renewedAt, finishedAt };
    await putSealed(this.ctx, `${GC_PREFIX}${this.runId}`, 'gc', this.runId, json(body));
    if (finishedAt === null) this.renewedAt = Math.max(this.renewedAt, renewedAt);
  }
}
