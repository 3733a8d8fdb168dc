// The backups API tests' environment: a Cinder app on a real store (the admin
// harness's), volumes made by the real service and settled in the store,
// snapshots and backups made through the API and settled where the roles would,
// and a check that refused requests leave every table as it was.
import assert from 'node:assert/strict';
import { createVolume } from '../../src/services/volumes.js';
import { JobQueue } from '../../src/store/jobs.js';
import { ADMIN_P, PROJ_A, PROJ_B, assertFault, type CinderTestApp, type Reply, type Who } from './cinder-admin-harness.js';

const HOST = 'node1@pool1';
export const MISSING = '00000000-0000-4000-8000-000000000000';
/** The harness's personas (its Who is any string). */
export type Persona = 'admin' | 'a' | 'b' | 'reader';
const PROJECT: Record<Persona, string> = { admin: ADMIN_P, a: PROJ_A, b: PROJ_B, reader: PROJ_A };
const USER: Record<Persona, string> = { admin: 'u-admin', a: 'u-a', b: 'u-b', reader: 'u-r' };

// tempest/lib/api_schema/response/volume/backups.py and v3_64/backups.py
export const SUMMARY = ['id', 'links', 'name'];
export const DETAIL = ['availability_zone', 'container', 'created_at', 'data_timestamp', 'description', 'fail_reason', 'has_dependent_backups', 'id', 'is_incremental', 'links', 'name', 'object_count', 'size', 'snapshot_id', 'status', 'updated_at', 'volume_id'];
export const PROJECT_ATTR = 'os-backup-project-attr:project_id';
export const RESTORE = ['backup_id', 'volume_id', 'volume_name'];
export const PROGRESS = ['backup_id', 'bytes_done', 'bytes_read', 'bytes_total', 'host', 'status', 'tracking'];
export const keys = (o: unknown) => Object.keys(o as object).sort();
export const sorted = (a: string[]) => [...a].sort();

export interface Env {
  t: CinderTestApp;
  call: CinderTestApp['call'];
  volume(who: Persona, opts?: { size?: number; status?: string; name?: string }): Promise<string>;
  snapshot(who: Who, volumeId: string, status?: string): Promise<string>;
  backup(who: Who, body: Record<string, unknown>, opts?: { version?: string; status?: string }): Promise<string>;
  row(table: 'volumes' | 'snapshots' | 'backups', id: string): Promise<Record<string, unknown>>;
  jobs(resourceId: string): Promise<{ kind: string; target: string | null; payload: unknown }[]>;
  refused(cases: [() => Promise<Reply>, number, string][]): Promise<void>;
  quota(projectId: string, resource: string, limit: number | null): Promise<void>;
}

export async function setup(t: CinderTestApp): Promise<Env> {
  const { store, config } = t;
  const deps = { store, config, jobs: new JobQueue(store, config.jobs.leaseTtlMs) };
  const db = store.db;
  const dump = async () => {
    const out: Record<string, string[]> = {};
    for (const table of ['volumes', 'snapshots', 'backups', 'jobs'] as const) out[table] = (await db.selectFrom(table).selectAll().execute()).map((r) => JSON.stringify(r)).sort();
    return JSON.stringify(out);
  };
  const env: Env = {
    t,
    call: (...args) => t.call(...args),
    async volume(who, opts = {}) {
      const row = await createVolume(deps, { userId: USER[who], projectId: PROJECT[who], isAdmin: false }, { size: opts.size ?? 1, name: opts.name ?? null });
      await db.updateTable('volumes').set({ status: opts.status ?? 'available', host: HOST }).where('id', '=', row.id).execute();
      return row.id;
    },
    async snapshot(who, volumeId, status = 'available') {
      const res = await t.call(who, 'POST', '/snapshots', { snapshot: { volume_id: volumeId } });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const id = (res.json['snapshot'] as { id: string }).id;
      await db.updateTable('snapshots').set({ status }).where('id', '=', id).execute();
      return id;
    },
    async backup(who, body, opts = {}) {
      const res = await t.call(who, 'POST', '/backups', { backup: body }, opts.version);
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const id = (res.json['backup'] as { id: string }).id;
      // What the role does when it is done: the backup settles, its source is released.
      await db.updateTable('backups').set({ status: opts.status ?? 'available' }).where('id', '=', id).execute();
      await db.updateTable('volumes').set({ status: 'available' }).where('id', '=', String(body['volume_id'])).where('status', '=', 'backing-up').execute();
      await db.updateTable('snapshots').set({ status: 'available' }).where('status', '=', 'backing-up').execute();
      return id;
    },
    async row(table, id) {
      return (await db.selectFrom(table).selectAll().where('id', '=', id).executeTakeFirstOrThrow()) as unknown as Record<string, unknown>;
    },
    async jobs(resourceId) {
      const rows = await db.selectFrom('jobs').selectAll().where('resource_id', '=', resourceId).orderBy('id').execute();
      return rows.map((j) => ({ kind: j.kind, target: j.target, payload: JSON.parse(j.payload) as unknown }));
    },
    async refused(cases) {
      const before = await dump();
      for (const [req, status, what] of cases) assertFault(await req(), status, what);
      assert.equal(await dump(), before, 'a refused request left rows behind');
    },
    async quota(projectId, resource, limit) {
      await db.deleteFrom('quotas').where('project_id', '=', projectId).where('resource', '=', resource).execute();
      if (limit !== null) await db.insertInto('quotas').values({ project_id: projectId, resource, hard_limit: limit }).execute();
    },
  };
  return env;
}

