// A Cinder API app on a real store for the admin-resource tests: fixed tokens
// stand in for Keystone (token auth is tested elsewhere), one admin, members
// of two projects and a reader.
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { installApiBehaviour } from '../../src/api/http.js';
import { cinderPlugin } from '../../src/api/cinder/plugin.js';
import type { AuthenticatedUser } from '../../src/api/cinder/scope.js';
import { configSchema, type BulwarkConfig } from '../../src/config/schema.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { ensureDefaultVolumeType } from '../../src/services/volume-types.js';
import type { Store } from '../../src/store/db.js';
import type { Database } from '../../src/store/schema.js';
import { JobQueue } from '../../src/store/jobs.js';
import { openTestStore, type DialectName } from '../harness/stores.js';

export const ADMIN_P = '0a0a0a0a0a0a4a0a8a0a0a0a0a0a0a0a';
export const PROJ_A = '1b1b1b1b1b1b4b1b8b1b1b1b1b1b1b1b';
export const PROJ_B = '2c2c2c2c2c2c4c2c8c2c2c2c2c2c2c2c';

const users: Record<string, AuthenticatedUser> = {
  admin: { userId: 'u-admin', userName: 'admin', projectId: ADMIN_P, roles: ['admin', 'member', 'reader'] },
  a: { userId: 'u-a', userName: 'alice', projectId: PROJ_A, roles: ['member', 'reader'] },
  b: { userId: 'u-b', userName: 'bob', projectId: PROJ_B, roles: ['member', 'reader'] },
  reader: { userId: 'u-r', userName: 'rita', projectId: PROJ_A, roles: ['reader'] },
};
export type Who = keyof typeof users;
type Users = Record<string, AuthenticatedUser>;

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  /** Parsed JSON, or undefined for an empty body. */
  readonly body: unknown;
  readonly json: Record<string, unknown>;
}

export interface CinderTestApp<W extends string = Who> {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly config: BulwarkConfig;
  readonly deps: ServiceDeps;
  call(who: W, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, payload?: unknown, version?: string): Promise<Reply>;
  close(): Promise<void>;
}

/** The Cinder plugin on a fresh store; `testUsers` (token `tok-<key>`) default to the users above. */
export async function buildCinderApp<U extends Users = typeof users>(
  dialect: DialectName,
  label: string,
  configOverrides: Record<string, unknown> = {},
  testUsers: U = users as U,
): Promise<CinderTestApp<Extract<keyof U, string>>> {
  const { store, cleanup } = await openTestStore(dialect, label);
  const config = configSchema.parse({ availabilityZone: 'nova', ...configOverrides });
  await ensureDefaultVolumeType(store.db);
  const deps: ServiceDeps = { store, jobs: new JobQueue(store, config.jobs.leaseTtlMs), config };
  const app = Fastify({ logger: false });
  installApiBehaviour(app);
  const tokens = new Map(Object.entries(testUsers).map(([k, u]) => [`tok-${k}`, u]));
  await app.register(cinderPlugin, { prefix: '/volume', deps, authenticate: (t: string) => tokens.get(t) ?? null, publicBaseUrl: 'http://bulwark.test/volume' });
  await app.ready();
  return {
    app,
    store,
    config,
    deps,
    async call(who, method, path, payload, version) {
      const headers: Record<string, string> = { 'x-auth-token': `tok-${who}` };
      if (version) headers['openstack-api-version'] = `volume ${version}`;
      const project = testUsers[who]!.projectId;
      const res = await app.inject({
        method,
        url: `/volume/v3/${project}${path}`,
        headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
      });
      const body: unknown = res.body.length > 0 ? JSON.parse(res.body) : undefined;
      return { status: res.statusCode, headers: res.headers, body, json: (body ?? {}) as Record<string, unknown> };
    },
    async close() {
      await app.close();
      await cleanup();
    },
  };
}

/** Exactly tempest's field set: every required key, nothing outside required + optional. */
export function assertFields(obj: unknown, required: readonly string[], optional: readonly string[] = [], what = 'body'): void {
  assert.ok(obj && typeof obj === 'object' && !Array.isArray(obj), `${what} is an object`);
  const keys = Object.keys(obj);
  for (const k of required) assert.ok(keys.includes(k), `${what} lacks required ${k} (has ${keys.join(', ')})`);
  const allowed = new Set([...required, ...optional]);
  const extra = keys.filter((k) => !allowed.has(k));
  assert.deepEqual(extra, [], `${what} has fields outside the schema`);
}

/** A Cinder fault: {<name>: {code, message}} with the given status. */
export function assertFault(res: Reply, status: number, what = ''): void {
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  const faults = Object.values(res.json);
  assert.equal(faults.length, 1, `${what}: one fault`);
  assert.equal((faults[0] as { code: number }).code, status);
}

export async function countRows(store: Store, table: 'volume_types' | 'volume_type_access' | 'quotas' | 'quota_classes' | 'volumes' | 'services'): Promise<number> {
  const r = await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** A snapshot of the tables these routes write, to prove a refused request wrote nothing. */
export async function snapshotTables(store: Store): Promise<string> {
  return dumpTables(store, ['volume_types', 'volume_type_access', 'quotas', 'quota_classes', 'volumes', 'services']);
}

/** Every row of `tables`, in a stable order: equal before and after proves a refused request wrote nothing. */
export async function dumpTables(store: Store, tables: readonly (keyof Database)[]): Promise<string> {
  const out: Record<string, string[]> = {};
  for (const t of tables) out[t] = (await store.db.selectFrom(t).selectAll().execute()).map((r) => JSON.stringify(r)).sort();
  return JSON.stringify(out);
}
