// Volume transfers through the Cinder plugin on a real store: response shapes
// against tempest's transfer schemas (base, 3.55, 3.57), the rows that change
// owner on accept, the accepting project's quota, and that every refused
// request leaves the store exactly as it was.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuthenticatedUser } from '../../src/api/cinder/scope.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { quotaUsage } from '../../src/services/quotas.js';
import { createVolume } from '../../src/services/volumes.js';
import type { Store } from '../../src/store/db.js';
import { dialects, stopSharedPostgres, type DialectName } from '../harness/stores.js';
import { buildCinderApp, dumpTables } from './cinder-admin-harness.js';

after(async () => {
  // Let pg-pool's sockets close before the server stops (see snapshots-groups.test.ts).
  await new Promise((r) => setTimeout(r, 250));
  await stopSharedPostgres();
});

const P_ADMIN = 'aaaaaaaa00004000800000000000001a';
const P_A = 'aaaaaaaa00004000800000000000001b';
const P_B = 'aaaaaaaa00004000800000000000001c';
const USERS = {
  admin: { userId: 'u-admin', userName: 'admin', projectId: P_ADMIN, roles: ['admin', 'member', 'reader'] },
  a: { userId: 'u-a', userName: 'alice', projectId: P_A, roles: ['member', 'reader'] },
  b: { userId: 'u-b', userName: 'bob', projectId: P_B, roles: ['member', 'reader'] },
  reader: { userId: 'u-r', userName: 'rita', projectId: P_A, roles: ['reader'] },
  breader: { userId: 'u-br', userName: 'ben', projectId: P_B, roles: ['reader'] },
} satisfies Record<string, AuthenticatedUser>;
type Who = keyof typeof USERS;
const MISSING = '00000000-0000-4000-8000-000000000000';
const LEGACY = '/os-volume-transfer';
const V3 = '/volume-transfers';

// tempest/lib/api_schema/response/volume/{transfers,v3_55/transfers,v3_57/transfers}.py
const SUMMARY = ['id', 'links', 'name', 'volume_id'];
const DETAIL = ['created_at', 'id', 'links', 'name', 'volume_id'];
const CREATE = [...DETAIL, 'auth_key'];
const V355 = ['no_snapshots'];
const V357 = ['accepted', 'destination_project_id', 'no_snapshots', 'source_project_id'];
const keys = (o: unknown) => Object.keys(o as object).sort();
const sorted = (a: string[]) => [...a].sort();

interface Res {
  status: number;
  json: Record<string, unknown>;
}

interface Env {
  store: Store;
  deps: ServiceDeps;
  call(who: Who, method: 'GET' | 'POST' | 'DELETE', path: string, payload?: unknown, version?: string): Promise<Res>;
  dump(): Promise<string>;
  close(): Promise<void>;
}

async function setup(dialect: DialectName): Promise<Env> {
  const t = await buildCinderApp(dialect, 'transfers_api', {}, USERS);
  return { ...t, dump: () => dumpTables(t.store, ['volumes', 'snapshots', 'transfers', 'jobs']) };
}

function fault(res: Res, status: number, what: string): string {
  assert.equal(res.status, status, `${what}: got ${res.status} ${JSON.stringify(res.json)}`);
  const f = Object.values(res.json);
  assert.equal(f.length, 1, `${what}: one fault`);
  assert.equal((f[0] as { code: number }).code, status, what);
  return (f[0] as { message: string }).message;
}

async function refused(env: Env, cases: [() => Promise<Res>, number, string][]): Promise<void> {
  const before = await env.dump();
  for (const [req, status, what] of cases) fault(await req(), status, what);
  assert.equal(await env.dump(), before, 'a refused request left rows behind');
}

/** A settled volume of `who`'s, made by the real service. */
async function volume(env: Env, who: Who, opts: { size?: number; status?: string } = {}): Promise<string> {
  const u = USERS[who];
  const row = await createVolume(env.deps, { userId: u.userId, projectId: u.projectId, isAdmin: false }, { size: opts.size ?? 1 });
  await env.store.db.updateTable('volumes').set({ status: opts.status ?? 'available', host: 'node1@pool1' }).where('id', '=', row.id).execute();
  return row.id;
}

async function snapshot(env: Env, who: Who, volumeId: string, status = 'available'): Promise<string> {
  const res = await env.call(who, 'POST', '/snapshots', { snapshot: { volume_id: volumeId } });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  const id = (res.json['snapshot'] as { id: string }).id;
  await env.store.db.updateTable('snapshots').set({ status }).where('id', '=', id).execute();
  return id;
}

async function offer(env: Env, who: Who, volumeId: string, opts: { base?: string; version?: string; noSnapshots?: boolean; name?: string } = {}): Promise<{ id: string; authKey: string; body: Record<string, unknown> }> {
  const transfer: Record<string, unknown> = { volume_id: volumeId };
  if (opts.name !== undefined) transfer['name'] = opts.name;
  if (opts.noSnapshots !== undefined) transfer['no_snapshots'] = opts.noSnapshots;
  const res = await env.call(who, 'POST', opts.base ?? LEGACY, { transfer }, opts.version);
  assert.equal(res.status, 202, JSON.stringify(res.json));
  const body = res.json['transfer'] as Record<string, unknown>;
  return { id: String(body['id']), authKey: String(body['auth_key']), body };
}

const volumeRow = (env: Env, id: string) => env.store.db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const snapshotRow = (env: Env, id: string) => env.store.db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const transferCount = async (env: Env) => (await env.store.db.selectFrom('transfers').select('id').execute()).length;

async function setQuota(env: Env, projectId: string, resource: string, limit: number): Promise<void> {
  await env.store.db.deleteFrom('quotas').where('project_id', '=', projectId).where('resource', '=', resource).execute();
  await env.store.db.insertInto('quotas').values({ project_id: projectId, resource, hard_limit: limit }).execute();
}

for (const dialect of dialects) {
  describe(`volume transfers API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(dialect);
    });
    after(() => env.close());

    it('creates with tempest shapes per microversion; the key is returned once and only its salted hash is stored', async () => {
      const vol = await volume(env, 'a');
      const t = await offer(env, 'a', vol, { name: '  first  ' });
      assert.deepEqual(keys(t.body), sorted(CREATE));
      assert.equal(t.body['name'], 'first');
      assert.equal(t.body['volume_id'], vol);
      assert.match(t.authKey, /^[0-9a-f]{16}$/);
      assert.match(String(t.body['created_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      assert.deepEqual(t.body['links'], [
        { href: `http://bulwark.test/volume/v3/${P_A}/os-volume-transfer/${t.id}`, rel: 'self' },
        { href: `http://bulwark.test/volume/${P_A}/os-volume-transfer/${t.id}`, rel: 'bookmark' },
      ]);
      assert.equal((await volumeRow(env, vol)).status, 'awaiting-transfer');
      const row = await env.store.db.selectFrom('transfers').selectAll().where('id', '=', t.id).executeTakeFirstOrThrow();
      assert.equal(row.project_id, P_A);
      assert.ok(!JSON.stringify(row).includes(t.authKey), 'the auth key is stored in clear');
      assert.match(row.crypt_hash, /^[0-9a-f]{64}$/);
      assert.ok(row.salt.length >= 16);
      // 3.55 on the new path takes and shows no_snapshots; 3.57 adds the history fields.
      const t355 = await offer(env, 'a', await volume(env, 'a'), { base: V3, version: '3.55', noSnapshots: true });
      assert.deepEqual(keys(t355.body), sorted([...CREATE, ...V355]));
      assert.equal(t355.body['no_snapshots'], true);
      assert.equal(t355.body['name'], null);
      const t357 = await offer(env, 'a', await volume(env, 'a'), { base: V3, version: '3.57' });
      assert.deepEqual(keys(t357.body), sorted([...CREATE, ...V357]));
      assert.deepEqual([t357.body['no_snapshots'], t357.body['accepted'], t357.body['destination_project_id'], t357.body['source_project_id']], [false, false, null, P_A]);
      // The legacy path answers with the request's microversion's fields too.
      const legacy357 = await offer(env, 'a', await volume(env, 'a'), { version: '3.57' });
      assert.deepEqual(keys(legacy357.body), sorted([...CREATE, ...V357]));
      for (const x of [t, t355, t357, legacy357]) assert.equal((await env.call('a', 'DELETE', `${LEGACY}/${x.id}`)).status, 202);
    });

    it('refuses bad creates and writes nothing', async () => {
      const vol = await volume(env, 'a');
      const volB = await volume(env, 'b');
      const inUse = await volume(env, 'a', { status: 'in-use' });
      const creating = await volume(env, 'a', { status: 'creating' });
      const grouped = await volume(env, 'a');
      await env.store.db.updateTable('volumes').set({ group_id: MISSING }).where('id', '=', grouped).execute();
      const withBusySnap = await volume(env, 'a');
      await snapshot(env, 'a', withBusySnap, 'creating');
      const offered = await volume(env, 'a');
      const open = await offer(env, 'a', offered);
      const post = (body: unknown, base = LEGACY, version?: string, who: Who = 'a') => env.call(who, 'POST', base, body, version);
      await refused(env, [
        [() => post(undefined), 400, 'no body'],
        [() => post({}), 400, 'no transfer'],
        [() => post({ transfer: {} }), 400, 'no volume_id'],
        [() => post({ transfer: { volume_id: 'nope' } }), 400, 'volume_id not a uuid'],
        [() => post({ transfer: { volume_id: vol, name: '   ' } }), 400, 'blank name'],
        [() => post({ transfer: { volume_id: vol, name: 'x'.repeat(256) } }), 400, 'name too long'],
        [() => post({ transfer: { volume_id: vol, name: 5 } }), 400, 'name a number'],
        [() => post({ transfer: { volume_id: vol, size: 1 } }), 400, 'unknown field'],
        [() => post({ transfer: { volume_id: vol }, extra: 1 }), 400, 'unknown top-level key'],
        [() => post({ transfer: { volume_id: vol, no_snapshots: true } }, LEGACY, '3.57'), 400, 'no_snapshots on the legacy path'],
        [() => post({ transfer: { volume_id: vol, no_snapshots: true } }, V3, '3.54'), 400, 'no_snapshots before 3.55'],
        [() => post({ transfer: { volume_id: vol, no_snapshots: 'maybe' } }, V3, '3.55'), 400, 'no_snapshots not a boolean'],
        [() => post({ transfer: { volume_id: MISSING } }), 404, 'unknown volume'],
        [() => post({ transfer: { volume_id: volB } }), 404, "another project's volume"],
        [() => post({ transfer: { volume_id: inUse } }), 400, 'in-use volume'],
        [() => post({ transfer: { volume_id: creating } }), 400, 'creating volume'],
        [() => post({ transfer: { volume_id: offered } }, V3), 400, 'volume already offered'],
        [() => post({ transfer: { volume_id: grouped } }), 400, 'group member'],
        [() => post({ transfer: { volume_id: withBusySnap } }), 400, 'snapshot not available'],
        [() => post({ transfer: { volume_id: vol } }, LEGACY, undefined, 'reader'), 403, 'reader'],
      ]);
      const msg = fault(await post({ transfer: { volume_id: inUse } }), 400, 'state message');
      assert.equal(msg, 'Invalid volume: status must be available');
      // Without its snapshots the volume may go whatever they are doing.
      const t = await offer(env, 'a', withBusySnap, { base: V3, version: '3.55', noSnapshots: true });
      for (const id of [t.id, open.id]) assert.equal((await env.call('a', 'DELETE', `${V3}/${id}`)).status, 202);
    });

    it('accepts into the caller project: volume and snapshots move, usage moves, the offer is gone', async () => {
      const vol = await volume(env, 'a', { size: 2 });
      const snaps = [await snapshot(env, 'a', vol), await snapshot(env, 'a', vol)];
      const usageA = await quotaUsage(env.store.db, P_A);
      const usageB = await quotaUsage(env.store.db, P_B);
      const t = await offer(env, 'a', vol, { name: 'gift' });
      // Awaiting transfer, the volume can neither be deleted nor snapshotted.
      await refused(env, [
        [() => env.call('a', 'DELETE', `/volumes/${vol}`), 400, 'delete a volume awaiting transfer'],
        [() => env.call('a', 'POST', '/snapshots', { snapshot: { volume_id: vol } }), 400, 'snapshot a volume awaiting transfer'],
      ]);
      await refused(env, [
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: '0123456789abcdef' } }), 400, 'wrong key'],
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: 12345 } }), 400, 'wrong integer key'],
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: {} }), 400, 'no key'],
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { auth_key: t.authKey }), 400, 'no accept'],
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: t.authKey, x: 1 } }), 400, 'unknown field'],
        [() => env.call('b', 'POST', `${LEGACY}/${MISSING}/accept`, { accept: { auth_key: t.authKey } }), 404, 'unknown transfer'],
        [() => env.call('breader', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: t.authKey } }), 403, 'reader'],
      ]);
      const msg = fault(await env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: 'nope' } }), 400, 'wrong key');
      assert.equal(msg, `Invalid auth key: Attempt to transfer ${t.id} with invalid auth key.`);
      const res = await env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: t.authKey } });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json), ['transfer']);
      assert.deepEqual(keys(res.json['transfer']), SUMMARY);
      assert.deepEqual([(res.json['transfer'] as { id: string }).id, (res.json['transfer'] as { name: string }).name], [t.id, 'gift']);
      const moved = await volumeRow(env, vol);
      assert.deepEqual([moved.status, moved.project_id, moved.user_id], ['available', P_B, 'u-b']);
      for (const s of snaps) {
        const row = await snapshotRow(env, s);
        assert.deepEqual([row.project_id, row.user_id, row.status], [P_B, 'u-b', 'available']);
      }
      assert.equal(await transferCount(env), 0);
      const afterA = await quotaUsage(env.store.db, P_A);
      const afterB = await quotaUsage(env.store.db, P_B);
      assert.deepEqual([afterA.volumes, afterA.gigabytes, afterA.snapshots], [usageA.volumes - 1, usageA.gigabytes - 6, usageA.snapshots - 2]);
      assert.deepEqual([afterB.volumes, afterB.gigabytes, afterB.snapshots], [usageB.volumes + 1, usageB.gigabytes + 6, usageB.snapshots + 2]);
      // B now sees and owns it; A no longer does; the offer cannot be used twice.
      assert.equal((await env.call('b', 'GET', `/volumes/${vol}`)).status, 200);
      await refused(env, [
        [() => env.call('a', 'GET', `/volumes/${vol}`), 404, 'former owner'],
        [() => env.call('b', 'POST', `${LEGACY}/${t.id}/accept`, { accept: { auth_key: t.authKey } }), 404, 'second accept'],
      ]);
    });

    it('moves a no_snapshots volume alone on the 3.55 path', async () => {
      const vol = await volume(env, 'a');
      const snap = await snapshot(env, 'a', vol);
      const t = await offer(env, 'a', vol, { base: V3, version: '3.55', noSnapshots: true });
      await setQuota(env, P_B, 'snapshots', 0);
      const res = await env.call('b', 'POST', `${V3}/${t.id}/accept`, { accept: { auth_key: t.authKey } }, '3.55');
      assert.equal(res.status, 202, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json['transfer']), SUMMARY);
      assert.equal((await volumeRow(env, vol)).project_id, P_B);
      assert.equal((await snapshotRow(env, snap)).project_id, P_A);
      await env.store.db.deleteFrom('quotas').execute();
    });

    it("enforces the accepting project's quota and moves nothing when over", async () => {
      const vol = await volume(env, 'a', { size: 3 });
      await snapshot(env, 'a', vol);
      const t = await offer(env, 'a', vol);
      const accept = () => env.call('b', 'POST', `${V3}/${t.id}/accept`, { accept: { auth_key: t.authKey } });
      const usedB = await quotaUsage(env.store.db, P_B);
      for (const [resource, limit] of [['volumes', usedB.volumes], ['gigabytes', usedB.gigabytes + 5], ['snapshots', usedB.snapshots], ['per_volume_gigabytes', 2]] as const) {
        await setQuota(env, P_B, resource, limit);
        await refused(env, [[accept, 413, `over ${resource}`]]);
        await env.store.db.deleteFrom('quotas').execute();
      }
      // A snapshot that stopped being available after the offer fails the whole accept.
      const snap2 = await snapshot(env, 'a', await volume(env, 'a'));
      const vol2 = (await snapshotRow(env, snap2)).volume_id;
      const t2 = await offer(env, 'a', vol2);
      await env.store.db.updateTable('snapshots').set({ status: 'deleting' }).where('id', '=', snap2).execute();
      await refused(env, [[() => env.call('b', 'POST', `${V3}/${t2.id}/accept`, { accept: { auth_key: t2.authKey } }), 400, 'snapshot busy at accept']]);
      // A volume knocked out of awaiting-transfer (admin reset) cannot be accepted.
      await env.store.db.updateTable('volumes').set({ status: 'error' }).where('id', '=', vol2).execute();
      await env.store.db.updateTable('snapshots').set({ status: 'available' }).where('id', '=', snap2).execute();
      await refused(env, [[() => env.call('b', 'POST', `${V3}/${t2.id}/accept`, { accept: { auth_key: t2.authKey } }), 400, 'volume not awaiting transfer']]);
      assert.equal((await accept()).status, 202);
      assert.equal((await env.call('a', 'DELETE', `${V3}/${t2.id}`)).status, 202);
      assert.equal((await volumeRow(env, vol2)).status, 'error', 'withdrawing leaves a volume that moved on alone');
    });

    it('shows, lists and deletes within the source project; admin sees all with all_tenants', async () => {
      const mineA = [await offer(env, 'a', await volume(env, 'a'), { name: 'a1' }), await offer(env, 'a', await volume(env, 'a'), { name: 'a2' })];
      const mineB = await offer(env, 'b', await volume(env, 'b'), { name: 'b1' });
      const shown = await env.call('a', 'GET', `${LEGACY}/${mineA[0]!.id}`);
      assert.equal(shown.status, 200);
      assert.deepEqual(keys(shown.json), ['transfer']);
      assert.deepEqual(keys(shown.json['transfer']), DETAIL);
      assert.deepEqual(keys((await env.call('a', 'GET', `${V3}/${mineA[0]!.id}`, undefined, '3.55')).json['transfer']), sorted([...DETAIL, ...V355]));
      assert.deepEqual(keys((await env.call('a', 'GET', `${V3}/${mineA[0]!.id}`, undefined, '3.57')).json['transfer']), sorted([...DETAIL, ...V357]));
      assert.equal((await env.call('admin', 'GET', `${LEGACY}/${mineB.id}`)).status, 200);
      const list = await env.call('a', 'GET', LEGACY);
      assert.deepEqual(keys(list.json), ['transfers']);
      const items = list.json['transfers'] as Record<string, unknown>[];
      assert.deepEqual(items.map((x) => x['name']), ['a1', 'a2']);
      for (const x of items) assert.deepEqual(keys(x), SUMMARY);
      for (const x of (await env.call('a', 'GET', `${V3}/detail`, undefined, '3.57')).json['transfers'] as unknown[]) assert.deepEqual(keys(x), sorted([...DETAIL, ...V357]));
      for (const x of (await env.call('a', 'GET', `${LEGACY}/detail`)).json['transfers'] as unknown[]) assert.deepEqual(keys(x), DETAIL);
      const names = async (who: Who, path: string, version?: string) => ((await env.call(who, 'GET', path, undefined, version)).json['transfers'] as { name: string }[]).map((x) => x.name);
      assert.deepEqual(await names('b', V3), ['b1']);
      assert.deepEqual(await names('admin', LEGACY), []);
      assert.deepEqual((await names('admin', `${LEGACY}?all_tenants=1`)).sort(), ['a1', 'a2', 'b1']);
      assert.deepEqual(await names('a', `${LEGACY}?name=a2`), ['a2']);
      assert.deepEqual(await names('a', `${LEGACY}?bogus=1`), []);
      assert.deepEqual(await names('a', `${LEGACY}?limit=1`), ['a1']);
      assert.deepEqual(await names('a', `${V3}?sort=name:desc`, '3.59'), ['a2', 'a1']);
      assert.deepEqual(await names('a', `${V3}?marker=${mineA[0]!.id}&sort=name:asc`, '3.59'), ['a2']);
      assert.ok(Array.isArray((await env.call('a', 'GET', `${LEGACY}?limit=1`)).json['transfers_links']));
      await refused(env, [
        [() => env.call('a', 'GET', `${LEGACY}/${mineB.id}`), 404, "another project's transfer"],
        [() => env.call('a', 'GET', `${V3}/${MISSING}`), 404, 'unknown transfer'],
        [() => env.call('a', 'DELETE', `${LEGACY}/${mineB.id}`), 404, "delete another project's transfer"],
        [() => env.call('a', 'DELETE', `${V3}/${MISSING}`), 404, 'delete unknown transfer'],
        [() => env.call('reader', 'DELETE', `${LEGACY}/${mineA[0]!.id}`), 403, 'reader deletes'],
        [() => env.call('a', 'GET', `${LEGACY}?limit=x`), 400, 'bad limit'],
        [() => env.call('a', 'GET', `${V3}?marker=${MISSING}`, undefined, '3.59'), 404, 'unknown marker'],
      ]);
      assert.equal((await env.call('reader', 'GET', `${LEGACY}/${mineA[0]!.id}`)).status, 200);
      for (const x of [...mineA, mineB]) {
        const who: Who = x === mineB ? 'admin' : 'a';
        assert.equal((await env.call(who, 'DELETE', `${V3}/${x.id}`)).status, 202);
        assert.equal((await volumeRow(env, String(x.body['volume_id']))).status, 'available');
      }
      assert.equal(await transferCount(env), 0);
    });
  });
}
