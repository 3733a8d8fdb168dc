// The state-store port: one Kysely API over SQLite (embedded default) and
// PostgreSQL (shared by many hosts), chosen by URL scheme.
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import type { Database } from './schema.js';
import { migrateToLatest } from './migrate.js';

export type Dialect = 'sqlite' | 'postgres';

export interface StoreCapabilities {
  /** Several processes on different hosts may share this store. */
  readonly sharedAcrossHosts: boolean;
  /** `FOR UPDATE SKIP LOCKED` is available for claiming jobs. */
  readonly skipLocked: boolean;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly capabilities: StoreCapabilities;
  /** Runs fn in one serializable write transaction (BEGIN IMMEDIATE on SQLite so
   *  two processes never deadlock upgrading a read lock). */
  transaction<T>(fn: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Calls `listener` soon after any process commits a change to the store: a
   * hint to look again, which may come spuriously and, rarely, late (never
   * rely on it alone). null when this store cannot tell (poll instead).
   * Returns the function that unsubscribes.
   */
  onChange(listener: () => void): (() => void) | null;
  /**
   * Makes sure onChange listeners everywhere hear of this executor's writes
   * once they commit. SQLite: nothing to do (the log tells). PostgreSQL:
   * NOTIFY, which the server delivers only at commit, and not at all on rollback.
   */
  announce(ex: Executor): Promise<void>;
  close(): Promise<void>;
}

export type Executor = Kysely<Database> | Transaction<Database>;

// PostgreSQL returns int8 as strings; every int8 here is epoch ms or a byte
// count, both far below 2^53.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export function sqliteUrlFor(dataDir: string): string {
  return `sqlite://${resolve(dataDir, 'bulwark.db')}`;
}

export async function openStore(url: string): Promise<Store> {
  const store = url.startsWith('sqlite:') ? openSqlite(url) : url.startsWith('postgres') ? openPostgres(url) : null;
  if (!store) throw new Error(`unsupported databaseUrl scheme: ${url.split(':')[0]} (use sqlite:// or postgres://)`);
  await migrateToLatest(store);
  return store;
}

function openSqlite(url: string): Store {
  const path = url.replace(/^sqlite:\/\//, '');
  mkdirSync(dirname(path), { recursive: true });
  const native = new SqliteDatabase(path);
  native.pragma('journal_mode = WAL');
  native.pragma('synchronous = NORMAL');
  // Several role processes share the file; wait for the writer instead of failing.
  native.pragma('busy_timeout = 10000');
  native.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: native }) });
  let chain: Promise<unknown> = Promise.resolve();
  const changes = walWatcher(path);
  return {
    db,
    dialect: 'sqlite',
    capabilities: { sharedAcrossHosts: false, skipLocked: false },
    onChange: (listener) => changes.subscribe(listener),
    announce: async () => undefined,
    transaction<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
      // Kysely's SQLite driver has a single connection; serialize our transactions
      // in-process and take the write lock up front (BEGIN IMMEDIATE) across processes.
      const run = chain.then(() =>
        db.connection().execute(async (conn) => {
          await sql`begin immediate`.execute(conn);
          try {
            const out = await fn(conn);
            await sql`commit`.execute(conn);
            return out;
          } catch (err) {
            await sql`rollback`.execute(conn).catch(() => undefined);
            throw err;
          }
        }),
      );
      chain = run.catch(() => undefined);
      return run;
    },
    async close() {
      changes.close();
      await db.destroy();
    },
  };
}

function openPostgres(url: string): Store {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle client whose server goes away (restart, shutdown) emits 'error' on
  // the pool; without a listener that is an uncaught exception. The next query
  // gets a fresh connection and reports any real failure itself.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const changes = pgListener(url);
  return {
    db,
    dialect: 'postgres',
    capabilities: { sharedAcrossHosts: true, skipLocked: true },
    onChange: (listener) => changes.subscribe(listener),
    announce: async (ex) => {
      await sql`select pg_notify(${CHANGE_CHANNEL}, '')`.execute(ex);
    },
    async transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
      // Serializable + retry makes count-then-insert quota checks safe across processes.
      for (let attempt = 0; ; attempt++) {
        try {
          return await db.transaction().setIsolationLevel('serializable').execute(fn);
        } catch (err) {
          const code = (err as { code?: string }).code;
          if ((code === '40001' || code === '40P01') && attempt < 20) {
            await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
            continue;
          }
          throw err;
        }
      }
    },
    async close() {
      changes.close();
      await db.destroy();
    },
  };
}

/**
 * Every commit, from any process on this host, appends to the database's
 * write-ahead log: inotify on its directory (the -wal file may be recreated)
 * tells subscribers without any process having to announce its writes. The
 * watcher starts with the first subscriber; if the kernel refuses one (the
 * inotify limit), subscribe returns null and callers keep polling.
 */
function walWatcher(dbPath: string): { subscribe(listener: () => void): (() => void) | null; close(): void } {
  const wal = `${basename(dbPath)}-wal`;
  const listeners = new Set<() => void>();
  let watcher: FSWatcher | null = null;
  return {
    subscribe(listener) {
      if (!watcher) {
        try {
          watcher = watch(dirname(dbPath), { persistent: false }, (_event, name) => {
            if (name === wal) for (const l of listeners) l();
          });
          watcher.on('error', () => undefined); // the directory went away: subscribers still poll
        } catch {
          return null;
        }
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      listeners.clear();
      watcher?.close();
      watcher = null;
    },
  };
}

/** The NOTIFY channel Store.announce uses on PostgreSQL. */
const CHANGE_CHANNEL = 'bulwark_changes';
const LISTEN_RETRY_MS = 1_000;

/**
 * One connection per process outside the pool, LISTENing on CHANGE_CHANNEL,
 * opened with the first subscriber and reopened a second after it drops
 * (server restart, network): notifications sent meanwhile are lost, which
 * only costs latency; workers still poll.
 */
function pgListener(url: string): { subscribe(listener: () => void): () => void; close(): void } {
  const listeners = new Set<() => void>();
  let client: pg.Client | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  const connect = (): void => {
    retry = null;
    const c = new pg.Client({ connectionString: url });
    client = c;
    const reopen = (): void => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      if (!closed) retry = setTimeout(connect, LISTEN_RETRY_MS).unref(); // a process on its way out need not wait for it
    };
    c.on('error', reopen);
    c.on('end', reopen);
    c.on('notification', () => {
      for (const l of listeners) l();
    });
    c.connect()
      .then(() => c.query(`LISTEN ${CHANGE_CHANNEL}`))
      .then(() => {
        for (const l of listeners) l(); // anything committed while we were not listening
      })
      .catch(reopen);
  };
  return {
    subscribe(listener) {
      listeners.add(listener);
      if (!client && !retry && !closed) connect();
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      listeners.clear();
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      c?.end().catch(() => undefined);
    },
  };
}

export function nowIso(): string {
  return new Date().toISOString();
}
