// Snapshots, group types, groups and group snapshots through the Cinder plugin
// on a real store and job queue: response shapes against tempest's schemas,
// the rows and jobs each accepted request leaves for the volume role, and that
// every refused request leaves nothing behind. No volume role runs, so tests
// set statuses in the store where a resource must be settled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { AuthenticatedUser } from '../../src/api/cinder/scope.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { ensureDefaultGroupType } from '../../src/services/group-types.js';
import { newId } from '../../src/services/ids.js';
import { createVolume } from '../../src/services/volumes.js';
import type { Store } from '../../src/store/db.js';
import { nowIso } from '../../src/store/db.js';
import { dialects, stopSharedPostgres, type DialectName } from '../harness/stores.js';
import { buildCinderApp, dumpTables } from './cinder-admin-harness.js';

// pg-pool's end() resolves before its sockets have closed; stopping the server
// at once can turn a closing socket's 57P01 into an uncaught error. Let them drain.
after(async () => {
  await new Promise((r) => setTimeout(r, 250));
  await stopSharedPostgres();
});

const P_ADMIN = 'aaaaaaaa00004000800000000000000a';
const P_A = 'aaaaaaaa00004000800000000000000b';
const P_B = 'aaaaaaaa00004000800000000000000c';
const USERS = {
  admin: { userId: 'u-admin', userName: 'admin', projectId: P_ADMIN, roles: ['admin', 'member', 'reader'] },
  a: { userId: 'u-a', userName: 'alice', projectId: P_A, roles: ['member', 'reader'] },
  b: { userId: 'u-b', userName: 'bob', projectId: P_B, roles: ['member', 'reader'] },
  reader: { userId: 'u-r', userName: 'rita', projectId: P_A, roles: ['reader'] },
} satisfies Record<string, AuthenticatedUser>;
type Who = keyof typeof USERS;
const HOST = 'node1@pool1';
const MISSING = '00000000-0000-4000-8000-000000000000';

// Tempest's schemas written out (tempest/lib/api_schema/response/volume/*.py).
const SNAP_BASE = ['created_at', 'description', 'id', 'metadata', 'name', 'size', 'status', 'updated_at', 'volume_id'];
const SNAP_EXT = ['os-extended-snapshot-attributes:progress', 'os-extended-snapshot-attributes:project_id'];
const GROUP_313 = ['availability_zone', 'created_at', 'description', 'group_type', 'id', 'name', 'status', 'volume_types'];
const GROUP_SNAP_DETAIL = ['created_at', 'description', 'group_id', 'group_type_id', 'id', 'name', 'status'];
const GROUP_TYPE = ['description', 'id', 'is_public', 'name'];
const keys = (o: unknown) => Object.keys(o as object).sort();
const sorted = (a: string[]) => [...a].sort();

interface Res {
  status: number;
  json: Record<string, unknown>;
}

interface Env {
  store: Store;
  deps: ServiceDeps;
  app: FastifyInstance;
  call(who: Who, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, payload?: unknown, version?: string): Promise<Res>;
  /** Every table these routes write, to prove a refused request wrote nothing. */
  dump(): Promise<string>;
  close(): Promise<void>;
}

async function setup(dialect: DialectName, label: string): Promise<Env> {
  const t = await buildCinderApp(dialect, label, {}, USERS);
  await ensureDefaultGroupType(t.store.db);
  return { ...t, dump: () => dumpTables(t.store, ['volumes', 'snapshots', 'groups', 'group_snapshots', 'group_types', 'jobs']) };
}

/** A Cinder fault body {<name>: {code, message}} with the expected status. */
function fault(res: Res, status: number, what: string): void {
  assert.equal(res.status, status, `${what}: got ${res.status} ${JSON.stringify(res.json)}`);
  const f = Object.values(res.json);
  assert.equal(f.length, 1, `${what}: one fault`);
  assert.equal((f[0] as { code: number }).code, status, what);
}

/** Runs refused requests and proves none of them wrote a row or a job. */
async function refused(env: Env, cases: [() => Promise<Res>, number, string][]): Promise<void> {
  const before = await env.dump();
  for (const [req, status, what] of cases) fault(await req(), status, what);
  assert.equal(await env.dump(), before, 'a refused request left rows or jobs behind');
}

/** A volume made by the real service, then settled as the volume role would. */
async function volume(env: Env, who: Who, opts: { size?: number; status?: string; host?: string | null; type?: string; groupId?: string } = {}): Promise<string> {
  const u = USERS[who];
  const row = await createVolume(env.deps, { userId: u.userId, projectId: u.projectId, isAdmin: false }, { size: opts.size ?? 1, volumeType: opts.type ?? null, groupId: opts.groupId ?? null });
  await env.store.db.updateTable('volumes').set({ status: opts.status ?? 'available', host: opts.host === undefined ? HOST : opts.host }).where('id', '=', row.id).execute();
  return row.id;
}

async function setStatus(env: Env, table: 'volumes' | 'snapshots' | 'groups' | 'group_snapshots', id: string, status: string): Promise<void> {
  await env.store.db.updateTable(table).set({ status }).where('id', '=', id).execute();
}

async function jobsFor(env: Env, resourceId: string) {
  return env.store.db.selectFrom('jobs').selectAll().where('resource_id', '=', resourceId).orderBy('id').execute();
}

async function setQuota(env: Env, projectId: string, resource: string, limit: number): Promise<void> {
  await env.store.db.deleteFrom('quotas').where('project_id', '=', projectId).where('resource', '=', resource).execute();
  await env.store.db.insertInto('quotas').values({ project_id: projectId, resource, hard_limit: limit }).execute();
}

async function defaultTypeId(env: Env): Promise<string> {
  return (await env.store.db.selectFrom('volume_types').select('id').where('name', '=', '__DEFAULT__').executeTakeFirstOrThrow()).id;
}

/** A group type, a group of A's on it, and `n` available members on HOST. */
async function groupWithVolumes(env: Env, n: number, who: Who = 'a'): Promise<{ groupId: string; volumeIds: string[] }> {
  const res = await env.call(who, 'POST', '/groups', { group: { group_type: 'default_group_type', volume_types: ['__DEFAULT__'], name: 'g' } }, '3.13');
  assert.equal(res.status, 202, JSON.stringify(res.json));
  const groupId = (res.json['group'] as { id: string }).id;
  const volumeIds: string[] = [];
  for (let i = 0; i < n; i++) volumeIds.push(await volume(env, who, { groupId, size: 2 }));
  if (n > 0) await env.store.db.updateTable('groups').set({ host: HOST }).where('id', '=', groupId).execute();
  return { groupId, volumeIds };
}

for (const dialect of dialects) {
  describe(`snapshots API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(dialect, 'snapshots_api');
    });
    after(() => env.close());

    it('creates a snapshot: 202, tempest create shape, a creating row and one create_snapshot job on the volume host', async () => {
      const vol = await volume(env, 'a', { size: 3 });
      const res = await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, name: 's1', description: 'd', metadata: { k: 'v' } } });
      assert.equal(res.status, 202);
      const snap = res.json['snapshot'] as Record<string, unknown>;
      assert.deepEqual(keys(res.json), ['snapshot']);
      assert.deepEqual(keys(snap), SNAP_BASE);
      assert.equal(snap['status'], 'creating');
      assert.equal(snap['size'], 3);
      assert.deepEqual(snap['metadata'], { k: 'v' });
      assert.match(String(snap['created_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      const row = await env.store.db.selectFrom('snapshots').selectAll().where('id', '=', String(snap['id'])).executeTakeFirstOrThrow();
      assert.equal(row.project_id, P_A);
      assert.equal(row.volume_id, vol);
      const jobs = await jobsFor(env, row.id);
      assert.deepEqual(jobs.map((j) => [j.kind, j.target, JSON.parse(j.payload)]), [['create_snapshot', HOST, { volumeId: vol }]]);
      // Later microversions add group_snapshot_id (3.14) and user_id (3.41), still without the extension fields.
      const v341 = await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, display_name: 'legacy' } }, '3.41');
      assert.equal(v341.status, 202);
      const s341 = v341.json['snapshot'] as Record<string, unknown>;
      assert.deepEqual(keys(s341), sorted([...SNAP_BASE, 'group_snapshot_id', 'user_id']));
      assert.equal(s341['name'], 'legacy');
      assert.equal(s341['user_id'], 'u-a');
    });

    it('snapshots an in-use volume only with force', async () => {
      const vol = await volume(env, 'a', { status: 'in-use' });
      await refused(env, [[() => env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol } }), 400, 'in-use without force']]);
      await refused(env, [[() => env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, force: 'false' } }), 400, 'in-use force=false']]);
      const res = await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, force: 'True' } });
      assert.equal(res.status, 202);
    });

    it('refuses bad snapshot creates and writes nothing', async () => {
      const vol = await volume(env, 'a');
      const volB = await volume(env, 'b');
      const creating = await volume(env, 'a', { status: 'creating' });
      const errored = await volume(env, 'a', { status: 'error' });
      const unplaced = await volume(env, 'a', { host: null });
      const post = (who: Who, body?: unknown) => env.call(who, 'POST', '/snapshots', body);
      await refused(env, [
        [() => post('a'), 400, 'no body'],
        [() => post('a', []), 400, 'array body'],
        [() => post('a', {}), 400, 'no snapshot'],
        [() => post('a', { snapshot: {} }), 400, 'no volume_id'],
        [() => post('a', { snapshot: { volume_id: 'not-a-uuid' } }), 400, 'volume_id not a uuid'],
        [() => post('a', { snapshot: { volume_id: 42 } }), 400, 'volume_id a number'],
        [() => post('a', { snapshot: { volume_id: vol, name: 7 } }), 400, 'name a number'],
        [() => post('a', { snapshot: { volume_id: vol, force: 'maybe' } }), 400, 'force not boolean'],
        [() => post('a', { snapshot: { volume_id: vol, metadata: { k: 1 } } }), 400, 'metadata value a number'],
        [() => post('a', { snapshot: { volume_id: vol, size: 1 } }), 400, 'unknown field'],
        [() => post('a', { snapshot: { volume_id: vol }, extra: 1 }), 400, 'unknown top-level key'],
        [() => post('a', { snapshot: { volume_id: null } }), 404, 'null volume_id (tempest expects 404)'],
        [() => post('a', { snapshot: { volume_id: MISSING } }), 404, 'unknown volume'],
        [() => post('a', { snapshot: { volume_id: volB } }), 404, "another project's volume"],
        [() => post('a', { snapshot: { volume_id: creating } }), 400, 'volume creating'],
        [() => post('a', { snapshot: { volume_id: errored } }), 400, 'volume in error'],
        [() => post('a', { snapshot: { volume_id: unplaced } }), 400, 'volume never scheduled'],
        [() => post('reader', { snapshot: { volume_id: vol } }), 403, 'reader'],
      ]);
      await setQuota(env, P_A, 'snapshots', 0);
      await refused(env, [[() => post('a', { snapshot: { volume_id: vol } }), 413, 'over snapshot quota']]);
      await env.store.db.deleteFrom('quotas').execute();
      await setQuota(env, P_A, 'gigabytes', 1);
      await refused(env, [[() => post('a', { snapshot: { volume_id: vol } }), 413, 'over gigabytes quota']]);
      await env.store.db.deleteFrom('quotas').execute();
    });

    it('lists, shows and pages snapshots with tempest shapes and project scoping', async () => {
      const vol = await volume(env, 'b');
      for (const name of ['b1', 'b2', 'b3']) assert.equal((await env.call('b', 'POST', '/snapshots', { snapshot: { volume_id: vol, name } })).status, 202);
      const list = await env.call('b', 'GET', '/snapshots');
      assert.equal(list.status, 200);
      assert.deepEqual(keys(list.json), ['snapshots']);
      const items = list.json['snapshots'] as Record<string, unknown>[];
      assert.equal(items.length, 3);
      for (const s of items) assert.deepEqual(keys(s), SNAP_BASE);
      const detail = await env.call('b', 'GET', '/snapshots/detail');
      for (const s of detail.json['snapshots'] as Record<string, unknown>[]) {
        assert.deepEqual(keys(s), sorted([...SNAP_BASE, ...SNAP_EXT]));
        assert.equal(s['os-extended-snapshot-attributes:project_id'], P_B);
        assert.equal(s['os-extended-snapshot-attributes:progress'], '0%');
      }
      const d341 = await env.call('b', 'GET', '/snapshots/detail', undefined, '3.41');
      for (const s of d341.json['snapshots'] as Record<string, unknown>[]) assert.deepEqual(keys(s), sorted([...SNAP_BASE, ...SNAP_EXT, 'group_snapshot_id', 'user_id']));
      const byName = await env.call('b', 'GET', '/snapshots?name=b2');
      assert.deepEqual((byName.json['snapshots'] as { name: string }[]).map((s) => s.name), ['b2']);
      const asc = await env.call('b', 'GET', '/snapshots?sort_key=display_name&sort_dir=asc');
      assert.deepEqual((asc.json['snapshots'] as { name: string }[]).map((s) => s.name), ['b1', 'b2', 'b3']);
      const page = await env.call('b', 'GET', '/snapshots?limit=2&sort=name:asc');
      assert.equal((page.json['snapshots'] as unknown[]).length, 2);
      assert.ok(Array.isArray(page.json['snapshots_links']));
      assert.equal(((await env.call('b', 'GET', '/snapshots?limit=0')).json['snapshots'] as unknown[]).length, 0);
      const counted = await env.call('b', 'GET', '/snapshots?with_count=true', undefined, '3.45');
      assert.equal(counted.json['count'], 3);
      // A sees none of B's; admin sees them with all_tenants.
      const mine = (await env.call('a', 'GET', '/snapshots/detail')).json['snapshots'] as { volume_id: string }[];
      assert.ok(mine.every((s) => s.volume_id !== vol));
      const all = (await env.call('admin', 'GET', '/snapshots?all_tenants=1')).json['snapshots'] as { volume_id: string }[];
      assert.equal(all.filter((s) => s.volume_id === vol).length, 3);
      const id = items[0]!['id'] as string;
      const shown = await env.call('b', 'GET', `/snapshots/${id}`);
      assert.equal(shown.status, 200);
      assert.deepEqual(keys(shown.json['snapshot']), sorted([...SNAP_BASE, ...SNAP_EXT]));
      assert.equal((await env.call('admin', 'GET', `/snapshots/${id}`)).status, 200);
      await refused(env, [
        [() => env.call('a', 'GET', `/snapshots/${id}`), 404, "another project's snapshot"],
        [() => env.call('b', 'GET', `/snapshots/${MISSING}`), 404, 'unknown snapshot'],
        [() => env.call('b', 'GET', `/snapshots?marker=${MISSING}`), 404, 'unknown marker (tempest expects 404)'],
        [() => env.call('b', 'GET', '/snapshots?limit=invalid'), 400, 'bad limit'],
        [() => env.call('b', 'GET', '/snapshots?sort_key=invalid'), 400, 'bad sort key'],
        [() => env.call('b', 'GET', '/snapshots?sort=name:sideways'), 400, 'bad sort direction'],
        [() => env.call('b', 'GET', '/snapshots?bogus=1', undefined, '3.34'), 400, 'unknown filter from 3.34'],
      ]);
    });

    it('updates name and description; refuses bad updates', async () => {
      const vol = await volume(env, 'a');
      const id = ((await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, name: 'old' } })).json['snapshot'] as { id: string }).id;
      const res = await env.call('a', 'PUT', `/snapshots/${id}`, { snapshot: { name: 'new', display_description: 'dd' } });
      assert.equal(res.status, 200);
      assert.deepEqual(keys(res.json['snapshot']), SNAP_BASE);
      assert.equal((res.json['snapshot'] as { name: string }).name, 'new');
      assert.equal((res.json['snapshot'] as { description: string }).description, 'dd');
      await refused(env, [
        [() => env.call('a', 'PUT', `/snapshots/${id}`), 400, 'no body'],
        [() => env.call('a', 'PUT', `/snapshots/${id}`, { snapshot: {} }), 400, 'nothing to update'],
        [() => env.call('a', 'PUT', `/snapshots/${id}`, { snapshot: { name: ['x'] } }), 400, 'name not a string'],
        [() => env.call('a', 'PUT', `/snapshots/${id}`, { snapshot: { status: 'available' } }), 400, 'unknown field'],
        [() => env.call('b', 'PUT', `/snapshots/${id}`, { snapshot: { name: 'x' } }), 404, "another project's snapshot"],
        [() => env.call('a', 'PUT', `/snapshots/${MISSING}`, { snapshot: { name: 'x' } }), 404, 'unknown snapshot'],
        [() => env.call('reader', 'PUT', `/snapshots/${id}`, { snapshot: { name: 'x' } }), 403, 'reader'],
      ]);
    });

    it('serves snapshot metadata like volume metadata', async () => {
      const vol = await volume(env, 'a');
      const id = ((await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol, metadata: { a: '1' } } })).json['snapshot'] as { id: string }).id;
      const base = `/snapshots/${id}/metadata`;
      assert.deepEqual((await env.call('a', 'GET', base)).json, { metadata: { a: '1' } });
      assert.deepEqual((await env.call('a', 'POST', base, { metadata: { b: '2' } })).json, { metadata: { a: '1', b: '2' } });
      assert.deepEqual((await env.call('a', 'PUT', base, { metadata: { c: '3' } })).json, { metadata: { c: '3' } });
      assert.deepEqual((await env.call('a', 'GET', `${base}/c`)).json, { meta: { c: '3' } });
      const item = await env.call('a', 'PUT', `${base}/c`, { meta: { c: '4' } });
      assert.equal(item.status, 200);
      assert.deepEqual(item.json, { meta: { c: '4' } });
      assert.equal((await env.call('a', 'DELETE', `${base}/c`)).status, 200);
      assert.deepEqual((await env.call('a', 'GET', base)).json, { metadata: {} });
      await refused(env, [
        [() => env.call('a', 'POST', base), 400, 'no body'],
        [() => env.call('a', 'POST', base, { metadata: { k: 5 } }), 400, 'value a number'],
        [() => env.call('a', 'PUT', base, { meta: {} }), 400, 'wrong key'],
        [() => env.call('a', 'PUT', `${base}/x`, { meta: { y: '1' } }), 400, 'body and URI mismatch'],
        [() => env.call('a', 'PUT', `${base}/x`, { meta: { x: '1', y: '2' } }), 400, 'two items'],
        [() => env.call('a', 'GET', `${base}/nope`), 404, 'unknown key'],
        [() => env.call('a', 'DELETE', `${base}/nope`), 404, 'delete unknown key'],
        [() => env.call('b', 'GET', base), 404, "another project's snapshot"],
        [() => env.call('b', 'POST', base, { metadata: { k: 'v' } }), 404, "write another project's snapshot"],
        [() => env.call('reader', 'POST', base, { metadata: { k: 'v' } }), 403, 'reader'],
      ]);
    });

    it('deletes settled snapshots: deleting + one delete_snapshot job; refuses the rest', async () => {
      const vol = await volume(env, 'a');
      const id = ((await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol } })).json['snapshot'] as { id: string }).id;
      await refused(env, [
        [() => env.call('a', 'DELETE', `/snapshots/${id}`), 400, 'still creating'],
        [() => env.call('b', 'DELETE', `/snapshots/${id}`), 404, "another project's snapshot"],
        [() => env.call('a', 'DELETE', `/snapshots/${MISSING}`), 404, 'unknown snapshot'],
        [() => env.call('reader', 'DELETE', `/snapshots/${id}`), 403, 'reader'],
      ]);
      await setStatus(env, 'snapshots', id, 'available');
      assert.equal((await env.call('a', 'DELETE', `/snapshots/${id}`)).status, 202);
      const row = await env.store.db.selectFrom('snapshots').select('status').where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.status, 'deleting');
      const jobs = (await jobsFor(env, id)).filter((j) => j.kind === 'delete_snapshot');
      assert.deepEqual(jobs.map((j) => [j.target, JSON.parse(j.payload)]), [[HOST, { volumeId: vol, force: false }]]);
      await refused(env, [[() => env.call('a', 'DELETE', `/snapshots/${id}`), 400, 'already deleting']]);
    });

    it('runs snapshot actions with Cinder policy: reset/force-delete admin, update_snapshot_status member', async () => {
      const vol = await volume(env, 'a');
      const id = ((await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol } })).json['snapshot'] as { id: string }).id;
      const act = (who: Who, body?: unknown) => env.call(who, 'POST', `/snapshots/${id}/action`, body);
      await refused(env, [
        [() => act('admin'), 400, 'no body'],
        [() => act('admin', { 'os-reset_status': { status: 'available' }, 'os-force_delete': {} }), 400, 'two actions'],
        [() => act('admin', { 'os-frobnicate': {} }), 400, 'unknown action'],
        [() => act('admin', { 'os-reset_status': {} }), 400, 'reset without status'],
        [() => act('admin', { 'os-reset_status': { status: 'sleeping' } }), 400, 'reset to an unknown status'],
        [() => act('a', { 'os-reset_status': { status: 'available' } }), 403, 'member resets'],
        [() => act('b', { 'os-reset_status': { status: 'available' } }), 404, "another project's member resets"],
        [() => act('a', { 'os-force_delete': {} }), 403, 'member force-deletes'],
        [() => act('a', { 'os-update_snapshot_status': { status: 'deleting' } }), 400, 'creating -> deleting not allowed'],
        [() => act('a', { 'os-update_snapshot_status': { status: 'available', progress: '120%' } }), 400, 'progress over 100%'],
        [() => act('a', { 'os-update_snapshot_status': { progress: '10%' } }), 400, 'no status'],
        [() => act('b', { 'os-update_snapshot_status': { status: 'available' } }), 404, "another project's snapshot"],
        [() => act('reader', { 'os-update_snapshot_status': { status: 'available' } }), 403, 'reader'],
        [() => env.call('admin', 'POST', `/snapshots/${MISSING}/action`, { 'os-reset_status': { status: 'error' } }), 404, 'unknown snapshot'],
      ]);
      // Nova's path: creating -> error with progress, by the owner.
      assert.equal((await act('a', { 'os-update_snapshot_status': { status: 'error', progress: '80%' } })).status, 202);
      const shown = (await env.call('admin', 'GET', `/snapshots/${id}`)).json['snapshot'] as Record<string, unknown>;
      assert.equal(shown['status'], 'error');
      assert.equal(shown['os-extended-snapshot-attributes:progress'], '80%');
      await refused(env, [[() => act('a', { 'os-update_snapshot_status': { status: 'available' } }), 400, 'error is not an updatable status']]);
      assert.equal((await act('admin', { 'os-reset_status': { status: 'Deleting' } })).status, 202);
      assert.equal((await env.store.db.selectFrom('snapshots').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status, 'deleting');
      // Force delete works in any status (tempest: creating, deleting, error, error_deleting).
      assert.equal((await act('admin', { 'os-force_delete': {} })).status, 202);
      const jobs = (await jobsFor(env, id)).filter((j) => j.kind === 'delete_snapshot');
      assert.deepEqual(jobs.map((j) => [j.target, JSON.parse(j.payload)]), [[HOST, { volumeId: vol, force: true }]]);
    });
  });

  describe(`group types API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(dialect, 'group_types_api');
    });
    after(() => env.close());

    it('exists from 3.11 on and has a default group type', async () => {
      await refused(env, [
        [() => env.call('admin', 'GET', '/group_types'), 404, 'no microversion'],
        [() => env.call('admin', 'GET', '/group_types', undefined, '3.10'), 404, 'at 3.10'],
        [() => env.call('admin', 'POST', '/group_types', { group_type: { name: 'x' } }, '3.10'), 404, 'create at 3.10'],
      ]);
      const def = await env.call('a', 'GET', '/group_types/default', undefined, '3.11');
      assert.equal(def.status, 200);
      assert.deepEqual(keys(def.json['group_type']), GROUP_TYPE, 'no group_specs for members');
      assert.equal((def.json['group_type'] as { name: string }).name, 'default_group_type');
      const list = await env.call('admin', 'GET', '/group_types', undefined, '3.11');
      assert.deepEqual(keys(list.json), ['group_types']);
      for (const t of list.json['group_types'] as unknown[]) assert.deepEqual(keys(t), sorted([...GROUP_TYPE, 'group_specs']));
    });

    it('creates, lists by is_public, shows, updates and deletes (admin); hides private types from members', async () => {
      const create = (who: Who, body?: unknown) => env.call(who, 'POST', '/group_types', body, '3.11');
      const a = await create('admin', { group_type: { name: 'a_type', description: 'd', is_public: true, group_specs: { consistent_group_snapshot_enabled: '<is> False' } } });
      assert.equal(a.status, 202);
      assert.deepEqual(keys(a.json['group_type']), sorted([...GROUP_TYPE, 'group_specs']));
      const aId = (a.json['group_type'] as { id: string }).id;
      const b = await create('admin', { group_type: { name: 'b_type', is_public: 'false' } });
      const bId = (b.json['group_type'] as { id: string; is_public: boolean }).id;
      assert.equal((b.json['group_type'] as { is_public: boolean }).is_public, false);
      await refused(env, [
        [() => create('admin'), 400, 'no body'],
        [() => create('admin', { group_type: {} }), 400, 'no name'],
        [() => create('admin', { group_type: { name: '' } }), 400, 'empty name'],
        [() => create('admin', { group_type: { name: 'x', is_public: 'perhaps' } }), 400, 'bad is_public'],
        [() => create('admin', { group_type: { name: 'x', group_specs: { 'bad key!': 'v' } } }), 400, 'bad spec key'],
        [() => create('admin', { group_type: { name: 'x', extra: 1 } }), 400, 'unknown field'],
        [() => create('admin', { group_type: { name: 'a_type' } }), 409, 'duplicate name'],
        [() => create('a', { group_type: { name: 'x' } }), 403, 'member creates'],
      ]);
      const names = async (who: Who, q: string) => ((await env.call(who, 'GET', `/group_types${q}`, undefined, '3.11')).json['group_types'] as { name: string }[]).map((t) => t.name);
      const both = await names('admin', '?sort=name:asc&is_public=None');
      assert.ok(both.indexOf('a_type') < both.indexOf('b_type') && both.indexOf('a_type') >= 0);
      const desc = await names('admin', '?sort=name:desc&is_public=None');
      assert.ok(desc.indexOf('b_type') < desc.indexOf('a_type'));
      assert.deepEqual(await names('admin', '?is_public=false'), ['b_type']);
      assert.ok(!(await names('admin', '?is_public=true')).includes('b_type'));
      assert.ok(!(await names('a', '?is_public=None')).includes('b_type'), 'members never see private types');
      fault(await env.call('admin', 'GET', '/group_types?is_public=sometimes', undefined, '3.11'), 400, 'bad is_public filter');
      const shown = await env.call('admin', 'GET', `/group_types/${aId}`, undefined, '3.11');
      assert.deepEqual(shown.json['group_type'], { id: aId, name: 'a_type', description: 'd', is_public: true, group_specs: { consistent_group_snapshot_enabled: '<is> False' } });
      assert.deepEqual(keys((await env.call('a', 'GET', `/group_types/${aId}`, undefined, '3.11')).json['group_type']), GROUP_TYPE);
      const upd = await env.call('admin', 'PUT', `/group_types/${aId}`, { group_type: { name: 'a_renamed', description: 'new' } }, '3.11');
      assert.equal(upd.status, 200);
      assert.equal((upd.json['group_type'] as { name: string }).name, 'a_renamed');
      const put = (who: Who, id: string, body?: unknown) => env.call(who, 'PUT', `/group_types/${id}`, body, '3.11');
      await refused(env, [
        [() => env.call('a', 'GET', `/group_types/${bId}`, undefined, '3.11'), 404, 'member shows a private type'],
        [() => env.call('admin', 'GET', `/group_types/${MISSING}`, undefined, '3.11'), 404, 'unknown type'],
        [() => put('admin', aId), 400, 'no body'],
        [() => put('admin', aId, { group_type: {} }), 400, 'nothing to update'],
        [() => put('admin', aId, { group_type: { name: '   ' } }), 400, 'blank name'],
        [() => put('admin', aId, { group_type: { is_public: 3 } }), 400, 'is_public a number'],
        [() => put('admin', aId, { group_type: { name: 'b_type' } }), 409, 'rename onto another type'],
        [() => put('admin', MISSING, { group_type: { name: 'z' } }), 404, 'unknown type'],
        [() => put('a', aId, { group_type: { name: 'z' } }), 403, 'member updates'],
        [() => env.call('a', 'DELETE', `/group_types/${bId}`, undefined, '3.11'), 403, 'member deletes'],
        [() => env.call('admin', 'DELETE', `/group_types/${MISSING}`, undefined, '3.11'), 404, 'delete unknown type'],
      ]);
      const defId = ((await env.call('admin', 'GET', '/group_types/default', undefined, '3.11')).json['group_type'] as { id: string }).id;
      await refused(env, [[() => env.call('admin', 'DELETE', `/group_types/${defId}`, undefined, '3.11'), 400, 'the default type']]);
      // In use by a group: refused; once unused: 202 and gone.
      const grp = await env.call('admin', 'POST', '/groups', { group: { group_type: bId, volume_types: ['__DEFAULT__'] } }, '3.13');
      assert.equal(grp.status, 202);
      await refused(env, [[() => env.call('admin', 'DELETE', `/group_types/${bId}`, undefined, '3.11'), 400, 'type in use']]);
      assert.equal((await env.call('admin', 'DELETE', `/group_types/${aId}`, undefined, '3.11')).status, 202);
      fault(await env.call('admin', 'GET', `/group_types/${aId}`, undefined, '3.11'), 404, 'deleted type');
    });

    it('manages group specs (admin only) with tempest shapes', async () => {
      const t = await env.call('admin', 'POST', '/group_types', { group_type: { name: 'spec_type' } }, '3.11');
      const id = (t.json['group_type'] as { id: string }).id;
      const base = `/group_types/${id}/group_specs`;
      const c1 = await env.call('admin', 'POST', base, { group_specs: { key1: 'value1', key2: 'value2' } }, '3.11');
      assert.equal(c1.status, 202);
      assert.deepEqual(c1.json, { group_specs: { key1: 'value1', key2: 'value2' } });
      const c2 = await env.call('admin', 'POST', base, { group_specs: { key2: 'value2-updated', key3: 'value3' } }, '3.11');
      assert.deepEqual(c2.json, { group_specs: { key2: 'value2-updated', key3: 'value3' } }, 'the request is echoed');
      assert.deepEqual((await env.call('admin', 'GET', `${base}/key2`, undefined, '3.11')).json, { key2: 'value2-updated' });
      const item = await env.call('admin', 'PUT', `${base}/key3`, { key3: 'value3-updated' }, '3.11');
      assert.equal(item.status, 200);
      assert.deepEqual(item.json, { key3: 'value3-updated' });
      assert.deepEqual((await env.call('admin', 'GET', base, undefined, '3.11')).json, { group_specs: { key1: 'value1', key2: 'value2-updated', key3: 'value3-updated' } });
      await refused(env, [
        [() => env.call('admin', 'POST', base, undefined, '3.11'), 400, 'no body'],
        [() => env.call('admin', 'POST', base, { group_specs: { 'a b': 'x' } }, '3.11'), 400, 'space in key'],
        [() => env.call('admin', 'POST', base, { group_specs: { k: 5 } }, '3.11'), 400, 'value a number'],
        [() => env.call('admin', 'PUT', `${base}/key1`, { other: 'x' }, '3.11'), 400, 'body and URI mismatch'],
        [() => env.call('admin', 'PUT', `${base}/key1`, { key1: 'x', key2: 'y' }, '3.11'), 400, 'two items'],
        [() => env.call('admin', 'GET', `${base}/nope`, undefined, '3.11'), 404, 'unknown key'],
        [() => env.call('admin', 'DELETE', `${base}/nope`, undefined, '3.11'), 404, 'delete unknown key'],
        [() => env.call('admin', 'GET', `/group_types/${MISSING}/group_specs`, undefined, '3.11'), 404, 'unknown type'],
        [() => env.call('admin', 'POST', `/group_types/${MISSING}/group_specs`, { group_specs: { k: 'v' } }, '3.11'), 404, 'write unknown type'],
        [() => env.call('a', 'GET', base, undefined, '3.11'), 403, 'member lists specs'],
        [() => env.call('a', 'POST', base, { group_specs: { k: 'v' } }, '3.11'), 403, 'member writes specs'],
        [() => env.call('a', 'DELETE', `${base}/key1`, undefined, '3.11'), 403, 'member deletes a spec'],
        [() => env.call('admin', 'GET', base, undefined, '3.10'), 404, 'below 3.11'],
      ]);
      for (const k of ['key1', 'key2', 'key3']) {
        assert.equal((await env.call('admin', 'DELETE', `${base}/${k}`, undefined, '3.11')).status, 202);
        fault(await env.call('admin', 'GET', `${base}/${k}`, undefined, '3.11'), 404, `deleted ${k}`);
      }
    });
  });

  describe(`groups API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(dialect, 'groups_api');
    });
    after(() => env.close());

    it('creates an empty group straight to available, without a job; shapes per microversion', async () => {
      const res = await env.call('a', 'POST', '/groups', { group: { group_type: 'default_group_type', volume_types: ['__DEFAULT__'], name: ' g1 ', description: 'd' } }, '3.13');
      assert.equal(res.status, 202);
      assert.deepEqual(keys(res.json['group']), ['id', 'name']);
      const id = (res.json['group'] as { id: string }).id;
      assert.equal((res.json['group'] as { name: string }).name, 'g1');
      const row = await env.store.db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.status, 'available');
      assert.equal(row.host, null);
      assert.deepEqual(JSON.parse(row.volume_type_ids), [await defaultTypeId(env)]);
      assert.deepEqual(await jobsFor(env, id), []);
      const show = async (v: string, q = '', who: Who = 'a') => (await env.call(who, 'GET', `/groups/${id}${q}`, undefined, v)).json['group'] as Record<string, unknown>;
      assert.deepEqual(keys(await show('3.13')), GROUP_313);
      assert.deepEqual(keys(await show('3.14')), sorted([...GROUP_313, 'group_snapshot_id', 'source_group_id']));
      assert.deepEqual(keys(await show('3.25')), sorted([...GROUP_313, 'group_snapshot_id', 'source_group_id']));
      assert.deepEqual((await show('3.25', '?list_volume=true'))['volumes'], []);
      assert.deepEqual(keys(await show('3.38')), sorted([...GROUP_313, 'group_snapshot_id', 'source_group_id', 'replication_status']));
      assert.equal((await show('3.58', '', 'admin'))['project_id'], P_A);
      assert.equal((await show('3.58'))['project_id'], undefined, 'project_id is for admins');
      const summary = await env.call('a', 'GET', '/groups', undefined, '3.13');
      assert.deepEqual(keys(summary.json), ['groups']);
      for (const g of summary.json['groups'] as unknown[]) assert.deepEqual(keys(g), ['id', 'name']);
      const detail = await env.call('a', 'GET', '/groups/detail?name=g1', undefined, '3.13');
      assert.deepEqual((detail.json['groups'] as Record<string, unknown>[]).map((g) => [keys(g), g['id']]), [[GROUP_313, id]]);
      assert.deepEqual((await env.call('b', 'GET', '/groups', undefined, '3.13')).json, { groups: [] });
      const all = (await env.call('admin', 'GET', '/groups?all_tenants=true', undefined, '3.13')).json['groups'] as { id: string }[];
      assert.ok(all.some((g) => g.id === id));
      await refused(env, [
        [() => env.call('a', 'GET', `/groups/${id}`, undefined, '3.12'), 404, 'below 3.13'],
        [() => env.call('b', 'GET', `/groups/${id}`, undefined, '3.13'), 404, "another project's group"],
        [() => env.call('a', 'GET', `/groups/${MISSING}`, undefined, '3.13'), 404, 'unknown group'],
        [() => env.call('a', 'GET', `/groups?marker=${MISSING}`, undefined, '3.13'), 404, 'unknown marker'],
        [() => env.call('a', 'GET', '/groups?status=available', undefined, '3.34'), 400, 'filter groups do not have'],
      ]);
    });

    it('refuses bad group creates and writes nothing', async () => {
      const priv = await env.call('admin', 'POST', '/group_types', { group_type: { name: 'private_gt', is_public: false } }, '3.11');
      const privId = (priv.json['group_type'] as { id: string }).id;
      const post = (who: Who, body?: unknown, v = '3.13') => env.call(who, 'POST', '/groups', body, v);
      const ok = { group_type: 'default_group_type', volume_types: ['__DEFAULT__'] };
      await refused(env, [
        [() => post('a'), 400, 'no body'],
        [() => post('a', { group: {} }), 400, 'no group_type'],
        [() => post('a', { group: { group_type: 'default_group_type' } }), 400, 'no volume_types'],
        [() => post('a', { group: { ...ok, volume_types: [] } }), 400, 'empty volume_types'],
        [() => post('a', { group: { ...ok, volume_types: ['__DEFAULT__', '__DEFAULT__'] } }), 400, 'duplicate volume_types'],
        [() => post('a', { group: { ...ok, volume_types: '__DEFAULT__' } }), 400, 'volume_types a string'],
        [() => post('a', { group: { ...ok, group_type: '  ' } }), 400, 'blank group_type'],
        [() => post('a', { group: { ...ok, size: 1 } }), 400, 'unknown field'],
        [() => post('a', { group: { ...ok, availability_zone: 'mars' } }), 400, 'unknown availability zone'],
        [() => post('a', { group: { ...ok, group_type: 'nope' } }), 404, 'unknown group type'],
        [() => post('a', { group: { ...ok, group_type: privId } }), 404, "member uses a private group type"],
        [() => post('a', { group: { ...ok, volume_types: ['nope'] } }), 404, 'unknown volume type'],
        [() => post('reader', { group: ok }), 403, 'reader'],
        [() => post('a', { group: ok }, '3.12'), 404, 'below 3.13'],
      ]);
      await setQuota(env, P_A, 'groups', 0);
      await refused(env, [[() => post('a', { group: ok }), 413, 'over group quota']]);
      await env.store.db.deleteFrom('quotas').execute();
    });

    it('updates name, description and membership; refuses bad updates', async () => {
      const { groupId, volumeIds } = await groupWithVolumes(env, 2);
      const [v1, v2] = volumeIds as [string, string];
      const put = (who: Who, body?: unknown, id = groupId) => env.call(who, 'PUT', `/groups/${id}`, body, '3.13');
      const groupOf = async (v: string) => (await env.store.db.selectFrom('volumes').select('group_id').where('id', '=', v).executeTakeFirstOrThrow()).group_id;
      assert.equal((await put('a', { group: { name: 'new_group', description: 'This is a new group', remove_volumes: v2 } })).status, 202);
      assert.equal(await groupOf(v2), null);
      const shown = (await env.call('a', 'GET', `/groups/${groupId}`, undefined, '3.13')).json['group'] as Record<string, unknown>;
      assert.deepEqual([shown['name'], shown['description'], shown['status']], ['new_group', 'This is a new group', 'available']);
      assert.equal((await put('a', { group: { add_volumes: `${v2},` } })).status, 202);
      assert.equal(await groupOf(v2), groupId);
      const other = await volume(env, 'a');
      const otherType = newId();
      await env.store.db.insertInto('volume_types').values({ id: otherType, name: 'other', description: null, is_public: 1, extra_specs: '{}', created_at: nowIso() }).execute();
      const wrongType = await volume(env, 'a', { type: 'other' });
      const elsewhere = await volume(env, 'a', { host: 'node2@pool1' });
      const creating = await volume(env, 'a', { status: 'creating' });
      const volB = await volume(env, 'b');
      const inOther = (await groupWithVolumes(env, 1)).volumeIds[0]!;
      await refused(env, [
        [() => put('a'), 400, 'no body'],
        [() => put('a', { group: {} }), 400, 'nothing given'],
        [() => put('a', { group: { name: 'new_group' } }), 400, 'unchanged name only'],
        [() => put('a', { group: { add_volumes: 5 } }), 400, 'add_volumes a number'],
        [() => put('a', { group: { volumes: other } }), 400, 'unknown field'],
        [() => put('a', { group: { add_volumes: other, remove_volumes: other } }), 400, 'in both lists'],
        [() => put('a', { group: { add_volumes: MISSING } }), 400, 'unknown volume'],
        [() => put('a', { group: { add_volumes: volB } }), 400, "another project's volume"],
        [() => put('a', { group: { add_volumes: wrongType } }), 400, 'type not in group'],
        [() => put('a', { group: { add_volumes: elsewhere } }), 400, 'volume on another host'],
        [() => put('a', { group: { add_volumes: creating } }), 400, 'volume creating'],
        [() => put('a', { group: { add_volumes: inOther } }), 400, 'volume in another group'],
        [() => put('a', { group: { remove_volumes: other } }), 400, 'remove a non-member'],
        [() => put('b', { group: { name: 'x' } }), 404, "another project's group"],
        [() => put('a', { group: { name: 'x' } }, MISSING), 404, 'unknown group'],
        [() => put('reader', { group: { name: 'x' } }), 403, 'reader'],
      ]);
      await setStatus(env, 'groups', groupId, 'error');
      await refused(env, [[() => put('a', { group: { remove_volumes: v1 } }), 400, 'membership change on a group in error']]);
      await setStatus(env, 'groups', groupId, 'available');
    });

    it('deletes groups: empty unplaced ones at once, populated ones via one delete_group job', async () => {
      const act = (who: Who, id: string, body?: unknown, v = '3.13') => env.call(who, 'POST', `/groups/${id}/action`, body, v);
      const empty = await groupWithVolumes(env, 0);
      assert.equal((await act('a', empty.groupId, { delete: { 'delete-volumes': false } })).status, 202);
      assert.equal(await env.store.db.selectFrom('groups').select('id').where('id', '=', empty.groupId).executeTakeFirst(), undefined);
      assert.deepEqual(await jobsFor(env, empty.groupId), []);
      const full = await groupWithVolumes(env, 2);
      const withSnap = await groupWithVolumes(env, 1);
      const snapped = await env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: withSnap.volumeIds[0] } });
      assert.equal(snapped.status, 202);
      const busy = await groupWithVolumes(env, 1);
      await setStatus(env, 'volumes', busy.volumeIds[0]!, 'extending');
      await refused(env, [
        [() => act('a', full.groupId), 400, 'no body'],
        [() => act('a', full.groupId, { delete: { 'delete-volumes': 'maybe' } }), 400, 'delete-volumes not boolean'],
        [() => act('a', full.groupId, { delete: { force: true } }), 400, 'unknown field'],
        [() => act('a', full.groupId, { delete: {} }), 400, 'has volumes, no delete-volumes'],
        [() => act('a', withSnap.groupId, { delete: { 'delete-volumes': true } }), 400, 'member volume has a snapshot'],
        [() => act('a', busy.groupId, { delete: { 'delete-volumes': true } }), 400, 'member volume busy'],
        [() => act('b', full.groupId, { delete: { 'delete-volumes': true } }), 404, "another project's group"],
        [() => act('a', MISSING, { delete: { 'delete-volumes': true } }), 404, 'unknown group'],
        [() => act('reader', full.groupId, { delete: { 'delete-volumes': true } }), 403, 'reader'],
        [() => act('a', full.groupId, { enable_replication: {} }, '3.38'), 400, 'no replication here'],
        [() => act('a', full.groupId, { enable_replication: {} }), 404, 'replication below 3.38'],
        [() => act('a', full.groupId, { explode: {} }), 400, 'unknown action'],
      ]);
      await setStatus(env, 'groups', full.groupId, 'creating');
      await refused(env, [[() => act('a', full.groupId, { delete: { 'delete-volumes': true } }), 400, 'group still creating']]);
      await setStatus(env, 'groups', full.groupId, 'available');
      assert.equal((await act('a', full.groupId, { delete: { 'delete-volumes': true } })).status, 202);
      assert.equal((await env.store.db.selectFrom('groups').select('status').where('id', '=', full.groupId).executeTakeFirstOrThrow()).status, 'deleting');
      const vols = await env.store.db.selectFrom('volumes').select('status').where('group_id', '=', full.groupId).execute();
      assert.deepEqual(vols.map((v) => v.status), ['deleting', 'deleting']);
      const jobs = await jobsFor(env, full.groupId);
      assert.deepEqual(jobs.map((j) => [j.kind, j.target]), [['delete_group', HOST]]);
      assert.deepEqual(sorted(JSON.parse(jobs[0]!.payload).volumeIds as string[]), sorted(full.volumeIds));
      await refused(env, [[() => act('a', full.groupId, { delete: { 'delete-volumes': true } }), 400, 'already deleting']]);
    });

    it('resets group status from 3.20 on, admin only', async () => {
      const { groupId } = await groupWithVolumes(env, 0);
      const act = (who: Who, body?: unknown, v = '3.20') => env.call(who, 'POST', `/groups/${groupId}/action`, body, v);
      await refused(env, [
        [() => act('admin', { reset_status: { status: 'error' } }, '3.19'), 404, 'below 3.20'],
        [() => act('admin', { reset_status: {} }), 400, 'no status'],
        [() => act('admin', { reset_status: { status: 'bogus' } }), 400, 'unknown status'],
        [() => act('a', { reset_status: { status: 'error' } }), 403, 'member resets'],
        [() => act('b', { reset_status: { status: 'error' } }), 404, "another project's group"],
      ]);
      for (const status of ['creating', 'available', 'error']) {
        assert.equal((await act('admin', { reset_status: { status } })).status, 202);
        assert.equal(((await env.call('a', 'GET', `/groups/${groupId}`, undefined, '3.20')).json['group'] as { status: string }).status, status);
      }
    });

    it('creates a group from a source group: creating rows beside the source and ONE create_group_from_src job', async () => {
      const src = await groupWithVolumes(env, 2);
      const from = (who: Who, body?: unknown, v = '3.14') => env.call(who, 'POST', '/groups/action', body, v);
      const res = await from('a', { 'create-from-src': { source_group_id: src.groupId, name: 'Group_from_grp' } });
      assert.equal(res.status, 202);
      assert.deepEqual(keys(res.json['group']), ['id', 'name']);
      const id = (res.json['group'] as { id: string }).id;
      const g = await env.store.db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual([g.status, g.host, g.source_group_id, g.group_snapshot_id], ['creating', HOST, src.groupId, null]);
      const vols = await env.store.db.selectFrom('volumes').selectAll().where('group_id', '=', id).execute();
      assert.deepEqual(sorted(vols.map((v) => v.source_volid!)), sorted(src.volumeIds));
      assert.ok(vols.every((v) => v.status === 'creating' && v.host === HOST && v.size === 2 && v.project_id === P_A));
      const jobs = await jobsFor(env, id);
      assert.deepEqual(jobs.map((j) => [j.kind, j.target]), [['create_group_from_src', HOST]]);
      assert.equal((JSON.parse(jobs[0]!.payload).members as unknown[]).length, 2);
      assert.equal((await jobsFor(env, vols[0]!.id)).length, 0, 'no per-volume jobs');
      const shown = (await env.call('a', 'GET', `/groups/${id}`, undefined, '3.14')).json['group'] as Record<string, unknown>;
      assert.equal(shown['source_group_id'], src.groupId);
      const empty = await groupWithVolumes(env, 0);
      const srcB = await groupWithVolumes(env, 1, 'b');
      await refused(env, [
        [() => from('a', { 'create-from-src': { source_group_id: src.groupId } }, '3.13'), 404, 'below 3.14'],
        [() => from('a'), 400, 'no body'],
        [() => from('a', { 'create-from-src': {} }), 400, 'no source'],
        [() => from('a', { 'create-from-src': { source_group_id: src.groupId, group_snapshot_id: MISSING } }), 400, 'two sources'],
        [() => from('a', { 'create-from-src': { source_group_id: 'nope' } }), 400, 'not a uuid'],
        [() => from('a', { 'create-from-src': { source_group_id: src.groupId, size: 3 } }), 400, 'unknown field'],
        [() => from('a', { 'make-it': {} }), 400, 'unknown action'],
        [() => from('a', { 'create-from-src': { source_group_id: MISSING } }), 404, 'unknown source group'],
        [() => from('a', { 'create-from-src': { group_snapshot_id: MISSING } }), 404, 'unknown group snapshot'],
        [() => from('a', { 'create-from-src': { source_group_id: srcB.groupId } }), 404, "another project's group"],
        [() => from('a', { 'create-from-src': { source_group_id: empty.groupId } }), 400, 'empty source group'],
        [() => from('reader', { 'create-from-src': { source_group_id: src.groupId } }), 403, 'reader'],
      ]);
      await setStatus(env, 'groups', src.groupId, 'error');
      await refused(env, [[() => from('a', { 'create-from-src': { source_group_id: src.groupId } }), 400, 'source group in error']]);
      await setStatus(env, 'groups', src.groupId, 'available');
      await setQuota(env, P_A, 'volumes', 1);
      await refused(env, [[() => from('a', { 'create-from-src': { source_group_id: src.groupId } }), 413, 'over volume quota']]);
      await env.store.db.deleteFrom('quotas').execute();
      // The new group is the source of a creation in flight: its source cannot go.
      await refused(env, [[() => env.call('a', 'POST', `/groups/${id}/action`, { delete: { 'delete-volumes': true } }, '3.14'), 400, 'creating group']]);
    });
  });

  describe(`group snapshots API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(dialect, 'group_snapshots_api');
    });
    after(() => env.close());

    it('creates a group snapshot: one row per member in one transaction and ONE create_group_snapshot job', async () => {
      const { groupId, volumeIds } = await groupWithVolumes(env, 2);
      const res = await env.call('a', 'POST', '/group_snapshots', { group_snapshot: { group_id: groupId, name: 'gs1' } }, '3.14');
      assert.equal(res.status, 202);
      assert.deepEqual(keys(res.json['group_snapshot']), ['group_type_id', 'id', 'name']);
      const id = (res.json['group_snapshot'] as { id: string }).id;
      const gs = await env.store.db.selectFrom('group_snapshots').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual([gs.status, gs.group_id, gs.project_id], ['creating', groupId, P_A]);
      const snaps = await env.store.db.selectFrom('snapshots').selectAll().where('group_snapshot_id', '=', id).execute();
      assert.deepEqual(sorted(snaps.map((s) => s.volume_id)), sorted(volumeIds));
      assert.ok(snaps.every((s) => s.status === 'creating' && s.size === 2 && s.name === 'gs1'));
      const jobs = await jobsFor(env, id);
      assert.deepEqual(jobs.map((j) => [j.kind, j.target]), [['create_group_snapshot', HOST]]);
      assert.equal((JSON.parse(jobs[0]!.payload).members as unknown[]).length, 2);
      for (const s of snaps) assert.deepEqual(await jobsFor(env, s.id), [], 'no per-snapshot jobs');
      // Shapes: show/detail per tempest, summary list without group_type_id.
      const shown = await env.call('a', 'GET', `/group_snapshots/${id}`, undefined, '3.14');
      assert.deepEqual(keys(shown.json['group_snapshot']), GROUP_SNAP_DETAIL);
      const list = await env.call('a', 'GET', '/group_snapshots', undefined, '3.14');
      assert.deepEqual((list.json['group_snapshots'] as unknown[]).map(keys), [['id', 'name']]);
      const detail = await env.call('a', 'GET', '/group_snapshots/detail', undefined, '3.14');
      assert.deepEqual((detail.json['group_snapshots'] as unknown[]).map(keys), [GROUP_SNAP_DETAIL]);
      assert.equal(((await env.call('admin', 'GET', `/group_snapshots/${id}`, undefined, '3.58')).json['group_snapshot'] as Record<string, unknown>)['project_id'], P_A);
      assert.deepEqual((await env.call('b', 'GET', '/group_snapshots', undefined, '3.14')).json, { group_snapshots: [] });
      const filtered = await env.call('a', 'GET', `/group_snapshots?group_id=${MISSING}`, undefined, '3.29');
      assert.deepEqual(filtered.json, { group_snapshots: [] });
      // Member snapshots carry group_snapshot_id (3.14+) and go only with their group snapshot.
      const member = snaps[0]!.id;
      assert.equal(((await env.call('a', 'GET', `/snapshots/${member}`, undefined, '3.14')).json['snapshot'] as Record<string, unknown>)['group_snapshot_id'], id);
      await setStatus(env, 'snapshots', member, 'available');
      await refused(env, [
        [() => env.call('a', 'DELETE', `/snapshots/${member}`), 400, 'member snapshot alone'],
        [() => env.call('admin', 'POST', `/snapshots/${member}/action`, { 'os-force_delete': {} }), 400, 'member snapshot forced'],
        [() => env.call('a', 'GET', `/group_snapshots/${id}`, undefined, '3.13'), 404, 'below 3.14'],
        [() => env.call('b', 'GET', `/group_snapshots/${id}`, undefined, '3.14'), 404, "another project's group snapshot"],
        [() => env.call('a', 'GET', `/group_snapshots/${MISSING}`, undefined, '3.14'), 404, 'unknown group snapshot'],
        [() => env.call('a', 'GET', `/group_snapshots?marker=${MISSING}`, undefined, '3.29'), 404, 'unknown marker'],
        // While a group snapshot exists its group cannot be deleted.
        [() => env.call('a', 'POST', `/groups/${groupId}/action`, { delete: { 'delete-volumes': true } }, '3.14'), 400, 'group has group snapshots'],
      ]);
    });

    it('refuses bad group snapshot creates and writes nothing', async () => {
      const empty = await groupWithVolumes(env, 0);
      const busy = await groupWithVolumes(env, 2);
      await setStatus(env, 'volumes', busy.volumeIds[1]!, 'creating');
      const ok = await groupWithVolumes(env, 1);
      const other = await groupWithVolumes(env, 1, 'b');
      const post = (who: Who, body?: unknown, v = '3.14') => env.call(who, 'POST', '/group_snapshots', body, v);
      await refused(env, [
        [() => post('a', { group_snapshot: { group_id: ok.groupId } }, '3.13'), 404, 'below 3.14'],
        [() => post('a'), 400, 'no body'],
        [() => post('a', { group_snapshot: {} }), 400, 'no group_id'],
        [() => post('a', { group_snapshot: { group_id: 'nope' } }), 400, 'group_id not a uuid'],
        [() => post('a', { group_snapshot: { group_id: ok.groupId, name: 1 } }), 400, 'name a number'],
        [() => post('a', { group_snapshot: { group_id: ok.groupId, force: true } }), 400, 'unknown field'],
        [() => post('a', { group_snapshot: { group_id: MISSING } }), 404, 'unknown group'],
        [() => post('a', { group_snapshot: { group_id: other.groupId } }), 404, "another project's group"],
        [() => post('a', { group_snapshot: { group_id: empty.groupId } }), 400, 'empty group'],
        [() => post('a', { group_snapshot: { group_id: busy.groupId } }), 400, 'a member is creating'],
        [() => post('reader', { group_snapshot: { group_id: ok.groupId } }), 403, 'reader'],
      ]);
      await setStatus(env, 'groups', ok.groupId, 'error');
      await refused(env, [[() => post('a', { group_snapshot: { group_id: ok.groupId } }), 400, 'group in error']]);
      await setStatus(env, 'groups', ok.groupId, 'available');
      await setQuota(env, P_A, 'snapshots', 0);
      await refused(env, [[() => post('a', { group_snapshot: { group_id: ok.groupId } }), 413, 'over snapshot quota']]);
      await env.store.db.deleteFrom('quotas').execute();
    });

    it('creates a group from a group snapshot, then guards and deletes the group snapshot', async () => {
      const { groupId, volumeIds } = await groupWithVolumes(env, 1);
      const gsId = ((await env.call('a', 'POST', '/group_snapshots', { group_snapshot: { group_id: groupId } }, '3.14')).json['group_snapshot'] as { id: string }).id;
      const from = { 'create-from-src': { group_snapshot_id: gsId, name: 'Group_from_snap' } };
      await refused(env, [
        [() => env.call('a', 'POST', '/groups/action', from, '3.14'), 400, 'group snapshot still creating'],
        [() => env.call('a', 'DELETE', `/group_snapshots/${gsId}`, undefined, '3.14'), 400, 'delete while creating'],
      ]);
      // As the volume role would finish it.
      await setStatus(env, 'group_snapshots', gsId, 'available');
      await env.store.db.updateTable('snapshots').set({ status: 'available' }).where('group_snapshot_id', '=', gsId).execute();
      const res = await env.call('a', 'POST', '/groups/action', from, '3.14');
      assert.equal(res.status, 202);
      const newGroup = (res.json['group'] as { id: string }).id;
      const vols = await env.store.db.selectFrom('volumes').selectAll().where('group_id', '=', newGroup).execute();
      const member = await env.store.db.selectFrom('snapshots').select(['id', 'volume_id']).where('group_snapshot_id', '=', gsId).executeTakeFirstOrThrow();
      assert.deepEqual(vols.map((v) => [v.snapshot_id, v.status, v.host]), [[member.id, 'creating', HOST]]);
      assert.equal(member.volume_id, volumeIds[0]);
      assert.deepEqual((await jobsFor(env, newGroup)).map((j) => [j.kind, j.target]), [['create_group_from_src', HOST]]);
      const g = await env.store.db.selectFrom('groups').selectAll().where('id', '=', newGroup).executeTakeFirstOrThrow();
      assert.equal(g.group_snapshot_id, gsId);
      await refused(env, [
        [() => env.call('a', 'DELETE', `/group_snapshots/${gsId}`, undefined, '3.14'), 400, 'source of a group being created'],
        [() => env.call('b', 'DELETE', `/group_snapshots/${gsId}`, undefined, '3.14'), 404, "another project's group snapshot"],
        [() => env.call('reader', 'DELETE', `/group_snapshots/${gsId}`, undefined, '3.14'), 403, 'reader'],
        [() => env.call('a', 'DELETE', `/group_snapshots/${MISSING}`, undefined, '3.14'), 404, 'unknown group snapshot'],
      ]);
      await setStatus(env, 'groups', newGroup, 'available');
      assert.equal((await env.call('a', 'DELETE', `/group_snapshots/${gsId}`, undefined, '3.14')).status, 202);
      assert.equal((await env.store.db.selectFrom('group_snapshots').select('status').where('id', '=', gsId).executeTakeFirstOrThrow()).status, 'deleting');
      assert.deepEqual((await env.store.db.selectFrom('snapshots').select('status').where('group_snapshot_id', '=', gsId).execute()).map((s) => s.status), ['deleting']);
      const jobs = (await jobsFor(env, gsId)).filter((j) => j.kind === 'delete_group_snapshot');
      assert.deepEqual(jobs.map((j) => [j.target, JSON.parse(j.payload)]), [[HOST, { groupId, snapshotIds: [member.id] }]]);
    });

    it('resets group snapshot status from 3.19 on, admin only', async () => {
      const { groupId } = await groupWithVolumes(env, 1);
      const gsId = ((await env.call('a', 'POST', '/group_snapshots', { group_snapshot: { group_id: groupId } }, '3.14')).json['group_snapshot'] as { id: string }).id;
      const act = (who: Who, body?: unknown, v = '3.19') => env.call(who, 'POST', `/group_snapshots/${gsId}/action`, body, v);
      await refused(env, [
        [() => act('admin', { reset_status: { status: 'error' } }, '3.18'), 404, 'below 3.19'],
        [() => act('admin'), 400, 'no body'],
        [() => act('admin', { reset_status: { status: 'in-use' } }), 400, 'not a group snapshot status'],
        [() => act('admin', { reset_status: { status: 5 } }), 400, 'status a number'],
        [() => act('admin', { snapshot_it: {} }), 400, 'unknown action'],
        [() => act('a', { reset_status: { status: 'error' } }), 403, 'member resets'],
        [() => act('b', { reset_status: { status: 'error' } }), 404, "another project's group snapshot"],
      ]);
      for (const status of ['creating', 'available', 'error']) {
        assert.equal((await act('admin', { reset_status: { status } })).status, 202);
        assert.equal(((await env.call('a', 'GET', `/group_snapshots/${gsId}`, undefined, '3.19')).json['group_snapshot'] as { status: string }).status, status);
      }
    });
  });
}
