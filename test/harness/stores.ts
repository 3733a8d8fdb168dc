// One test body, every store dialect (kysely's habit): each suite gets a fresh
// SQLite file and a fresh PostgreSQL database on a server started here, or on the
// one the test command started (BULWARK_TEST_PG_URL).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/db.js';
import { startPostgres, type PostgresServer } from './postgres.js';

export type DialectName = 'sqlite' | 'postgres';
export const dialects: DialectName[] = ['sqlite', 'postgres'];

let shared: PostgresServer | undefined;
let counter = 0;

export async function databaseUrlFor(dialect: DialectName, label: string): Promise<{ url: string; cleanup: () => Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-sqlite-'));
    return { url: `sqlite://${join(dir, 'bulwark.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const external = process.env['BULWARK_TEST_PG_URL'];
  const name = `t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${process.pid}_${counter++}`;
  if (external) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: `${external}/postgres` });
    await client.connect();
    await client.query(`CREATE DATABASE "${name}"`);
    await client.end();
    return { url: `${external}/${name}`, cleanup: async () => undefined };
  }
  shared ??= await startPostgres();
  return { url: await shared.createDatabase(name), cleanup: async () => undefined };
}

export async function openTestStore(dialect: DialectName, label: string): Promise<{ store: Store; url: string; cleanup: () => Promise<void> }> {
  const { url, cleanup } = await databaseUrlFor(dialect, label);
  const store = await openStore(url);
  return {
    store,
    url,
    cleanup: async () => {
      await store.close();
      await cleanup();
    },
  };
}

/** Stops the PostgreSQL server this process started, if any. Call from a top-level after(). */
export async function stopSharedPostgres(): Promise<void> {
  await shared?.stop();
  shared = undefined;
}
