// Volume types, extra specs and type access through the Cinder API on every
// store dialect: tempest's exact field sets, Cinder's status codes, the rows
// written, and that every refused request leaves the store untouched.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { dialects, stopSharedPostgres } from '../harness/stores.js';
import { assertFault, assertFields, buildCinderApp, countRows, PROJ_A, PROJ_B, snapshotTables, type CinderTestApp } from './cinder-admin-harness.js';

after(stopSharedPostgres);

const TYPE_REQ = ['name', 'is_public', 'description', 'id', 'os-volume-type-access:is_public'];
const TYPE_UPDATE_REQ = ['name', 'is_public', 'description', 'id'];
const MISSING = '3f1e7a52-9d44-4c3e-a1a8-0d6a4e3b2c10';

type TypeBody = { id: string; name: string; is_public: boolean; extra_specs?: Record<string, string> };

async function withApp(dialect: (typeof dialects)[number], label: string, fn: (t: CinderTestApp) => Promise<void>): Promise<void> {
  const t = await buildCinderApp(dialect, label);
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

async function createType(t: CinderTestApp, name: string, extra: Record<string, unknown> = {}): Promise<TypeBody> {
  const res = await t.call('admin', 'POST', '/types', { volume_type: { name, ...extra } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.json['volume_type'] as TypeBody;
}

/** Sends each request, expects `status`, and proves the store did not change. */
async function refused(t: CinderTestApp, status: number, cases: [string, () => ReturnType<CinderTestApp['call']>][]): Promise<void> {
  for (const [what, send] of cases) {
    const before = await snapshotTables(t.store);
    assertFault(await send(), status, what);
    assert.equal(await snapshotTables(t.store), before, `${what} changed nothing`);
  }
}

for (const dialect of dialects) {
  describe(`volume types on ${dialect}`, () => {
    it('creates, shows, lists, updates and deletes with tempest field sets', async () => {
      await withApp(dialect, 'types_crud', async (t) => {
        const created = await t.call('admin', 'POST', '/types', {
          volume_type: { name: 'gold', description: 'fast', extra_specs: { vendor_name: 'bulwark', multiattach: '<is> True' }, 'os-volume-type-access:is_public': 'true' },
        });
        assert.equal(created.status, 200);
        assertFields(created.json, ['volume_type']);
        const vt = created.json['volume_type'] as TypeBody;
        assertFields(vt, TYPE_REQ, ['extra_specs'], 'create');
        assert.deepEqual(vt.extra_specs, { vendor_name: 'bulwark', multiattach: '<is> True' });
        const row = await t.store.db.selectFrom('volume_types').selectAll().where('id', '=', vt.id).executeTakeFirstOrThrow();
        assert.equal(row.name, 'gold');
        assert.equal(row.is_public, 1);

        const asAdmin = await t.call('admin', 'GET', `/types/${vt.id}`);
        assertFields(asAdmin.json['volume_type'], TYPE_REQ, ['extra_specs', 'qos_specs_id'], 'show');
        assert.equal((asAdmin.json['volume_type'] as Record<string, unknown>)['qos_specs_id'], null);
        const asMember = (await t.call('a', 'GET', `/types/${vt.id}`)).json['volume_type'] as TypeBody;
        assertFields(asMember, TYPE_REQ, ['extra_specs'], 'member show');
        assert.deepEqual(asMember.extra_specs, { multiattach: '<is> True' }, 'only user-visible specs for members');
        const asReader = (await t.call('reader', 'GET', `/types/${vt.id}`)).json['volume_type'];
        assertFields(asReader, ['name', 'is_public', 'description', 'id'], ['extra_specs'], 'reader show');

        const list = await t.call('a', 'GET', '/types');
        assertFields(list.json, ['volume_types']);
        const names = (list.json['volume_types'] as TypeBody[]).map((x) => x.name).sort();
        assert.deepEqual(names, ['__DEFAULT__', 'gold']);
        for (const item of list.json['volume_types'] as unknown[]) assertFields(item, TYPE_REQ, ['extra_specs'], 'list item');

        const def = await t.call('a', 'GET', '/types/default');
        assert.equal((def.json['volume_type'] as TypeBody).name, '__DEFAULT__');

        const upd = await t.call('admin', 'PUT', `/types/${vt.id}`, { volume_type: { name: 'platinum', description: 'faster', is_public: false } });
        assert.equal(upd.status, 200);
        assertFields(upd.json['volume_type'], TYPE_UPDATE_REQ, ['extra_specs'], 'update');
        const after = await t.store.db.selectFrom('volume_types').selectAll().where('id', '=', vt.id).executeTakeFirstOrThrow();
        assert.deepEqual([after.name, after.description, after.is_public], ['platinum', 'faster', 0]);
        assertFault(await t.call('a', 'GET', `/types/${vt.id}`), 404, 'private type hidden from members');

        const del = await t.call('admin', 'DELETE', `/types/${vt.id}`);
        assert.equal(del.status, 202);
        assert.equal(del.body, undefined);
        assert.equal(await countRows(t.store, 'volume_types'), 1);
        assertFault(await t.call('admin', 'GET', `/types/${vt.id}`), 404, 'deleted');
      });
    });

    it('refuses bad creates, duplicates and non-admins without writing', async () => {
      await withApp(dialect, 'types_bad_create', async (t) => {
        await createType(t, 'silver');
        const post = (who: 'admin' | 'a', body: unknown) => () => t.call(who, 'POST', '/types', body);
        await refused(t, 409, [['duplicate name', post('admin', { volume_type: { name: 'silver' } })]]);
        await refused(t, 403, [
          ['member create', post('a', { volume_type: { name: 'x' } })],
          ['member update', () => t.call('a', 'PUT', `/types/${MISSING}`, { volume_type: { name: 'y' } })],
          ['member delete', () => t.call('a', 'DELETE', `/types/${MISSING}`)],
        ]);
        await refused(t, 400, [
          ['no body', post('admin', undefined)],
          ['null body', post('admin', null)],
          ['no volume_type', post('admin', { name: 'x' })],
          ['no name', post('admin', { volume_type: { description: 'd' } })],
          ['empty name', post('admin', { volume_type: { name: '' } })],
          ['blank name', post('admin', { volume_type: { name: '   ' } })],
          ['long name', post('admin', { volume_type: { name: 'n'.repeat(256) } })],
          ['numeric name', post('admin', { volume_type: { name: 5 } })],
          ['bad is_public', post('admin', { volume_type: { name: 'x', 'os-volume-type-access:is_public': 'maybe' } })],
          ['specs as list', post('admin', { volume_type: { name: 'x', extra_specs: ['invalid'] } })],
          ['spec value not string', post('admin', { volume_type: { name: 'x', extra_specs: { k: 1 } } })],
          ['spec key bad chars', post('admin', { volume_type: { name: 'x', extra_specs: { 'a*b': 'v' } } })],
          ['unknown field', post('admin', { volume_type: { name: 'x', color: 'red' } })],
          ['long description', post('admin', { volume_type: { name: 'x', description: 'd'.repeat(256) } })],
        ]);
        assert.equal(await countRows(t.store, 'volume_types'), 2);
      });
    });

    it('refuses bad updates and deletes', async () => {
      await withApp(dialect, 'types_bad_update', async (t) => {
        const a = await createType(t, 'a-type');
        await createType(t, 'b-type');
        const def = (await t.call('admin', 'GET', '/types/default')).json['volume_type'] as TypeBody;
        const put = (id: string, body: unknown) => () => t.call('admin', 'PUT', `/types/${id}`, body);
        await refused(t, 400, [
          ['nothing to change', put(a.id, { volume_type: {} })],
          ['all null', put(a.id, { volume_type: { name: null, description: null, is_public: null } })],
          ['blank name', put(a.id, { volume_type: { name: '  ' } })],
          ['wrong type', put(a.id, { volume_type: { is_public: 'sometimes' } })],
          ['unknown field', put(a.id, { volume_type: { extra_specs: {} } })],
          ['no body', put(a.id, undefined)],
          ['rename default', put(def.id, { volume_type: { name: 'renamed' } })],
          ['delete default', () => t.call('admin', 'DELETE', `/types/${def.id}`)],
        ]);
        await refused(t, 409, [['rename onto existing', put(a.id, { volume_type: { name: 'b-type' } })]]);
        await refused(t, 404, [
          ['update unknown', put(MISSING, { volume_type: { name: 'z' } })],
          ['delete unknown', () => t.call('admin', 'DELETE', `/types/${MISSING}`)],
          ['show unknown', () => t.call('admin', 'GET', `/types/${MISSING}`)],
        ]);
        // In use by a volume: refused, and the type stays.
        const vol = await t.call('a', 'POST', '/volumes', { volume: { size: 1, volume_type: 'a-type' } });
        assert.equal(vol.status, 202, JSON.stringify(vol.body));
        await refused(t, 400, [
          ['delete in use', () => t.call('admin', 'DELETE', `/types/${a.id}`)],
          ['spec write in use', () => t.call('admin', 'POST', `/types/${a.id}/extra_specs`, { extra_specs: { k: 'v' } })],
        ]);
      });
    });

    it('lists by is_public and extra_specs as Cinder filters them', async () => {
      await withApp(dialect, 'types_filters', async (t) => {
        await createType(t, 'pub', { extra_specs: { 'RESKEY:availability_zones': 'nova, az2', tier: 'hot' } });
        const priv = await createType(t, 'priv', { 'os-volume-type-access:is_public': false });
        const names = async (who: 'admin' | 'a' | 'b', q = '') =>
          ((await t.call(who, 'GET', `/types${q}`)).json['volume_types'] as TypeBody[]).map((x) => x.name).sort();
        assert.deepEqual(await names('admin'), ['__DEFAULT__', 'pub']);
        assert.deepEqual(await names('admin', '?is_public=false'), ['priv']);
        assert.deepEqual(await names('admin', '?is_public=none'), ['__DEFAULT__', 'priv', 'pub']);
        assertFault(await t.call('admin', 'GET', '/types?is_public=perhaps'), 400, 'bad is_public');
        assert.deepEqual(await names('a', '?is_public=false'), ['__DEFAULT__', 'pub'], 'members only see public');
        assert.equal((await t.call('admin', 'POST', `/types/${priv.id}/action`, { addProjectAccess: { project: PROJ_A } })).status, 202);
        assert.deepEqual(await names('a'), ['__DEFAULT__', 'priv', 'pub'], 'shared type listed for its project');
        assert.deepEqual(await names('b'), ['__DEFAULT__', 'pub'], 'but not for others');
        const az = encodeURIComponent(`{'RESKEY:availability_zones': 'az2'}`);
        assert.deepEqual(await names('a', `?extra_specs=${az}`), ['pub']);
        const tier = encodeURIComponent(`{"tier": "hot"}`);
        assert.deepEqual(await names('admin', `?extra_specs=${tier}`), ['pub']);
        assert.deepEqual(await names('a', `?extra_specs=${tier}`), [], 'members may not filter on sensitive specs');
        const page = await t.call('admin', 'GET', '/types?is_public=none&limit=1&sort=name:asc');
        assert.equal((page.json['volume_types'] as TypeBody[]).length, 1);
        assert.ok(Array.isArray(page.json['volume_type_links']), 'next link when there is more');
      });
    });

    it('manages extra specs with Cinder validation', async () => {
      await withApp(dialect, 'types_specs', async (t) => {
        const vt = await createType(t, 'specs', { extra_specs: { spec1: 'val1', multiattach: '<is> False' } });
        const base = `/types/${vt.id}/extra_specs`;
        const created = await t.call('admin', 'POST', base, { extra_specs: { spec2: 'val2' } });
        assert.equal(created.status, 200);
        assert.deepEqual(created.json, { extra_specs: { spec2: 'val2' } });
        const listed = await t.call('admin', 'GET', base);
        assert.deepEqual(listed.json, { extra_specs: { spec1: 'val1', multiattach: '<is> False', spec2: 'val2' } });
        assert.deepEqual((await t.call('a', 'GET', base)).json, { extra_specs: { multiattach: '<is> False' } });
        assert.deepEqual((await t.call('admin', 'GET', `${base}/spec1`)).json, { spec1: 'val1' });
        const upd = await t.call('admin', 'PUT', `${base}/spec1`, { spec1: 'val9' });
        assert.deepEqual([upd.status, upd.json], [200, { spec1: 'val9' }]);
        const del = await t.call('admin', 'DELETE', `${base}/spec2`);
        assert.equal(del.status, 202);
        const row = await t.store.db.selectFrom('volume_types').select('extra_specs').where('id', '=', vt.id).executeTakeFirstOrThrow();
        assert.deepEqual(JSON.parse(row.extra_specs), { spec1: 'val9', multiattach: '<is> False' });

        await refused(t, 400, [
          ['create no body', () => t.call('admin', 'POST', base, undefined)],
          ['create null specs', () => t.call('admin', 'POST', base, { extra_specs: null })],
          ['create list', () => t.call('admin', 'POST', base, { extra_specs: ['invalid'] })],
          ['create number value', () => t.call('admin', 'POST', base, { extra_specs: { k: 3 } })],
          ['create key with space', () => t.call('admin', 'POST', base, { extra_specs: { 'a b': 'v' } })],
          ['create extra top key', () => t.call('admin', 'POST', base, { extra_specs: {}, more: 1 })],
          ['cacheable with multiattach', () => t.call('admin', 'POST', base, { extra_specs: { multiattach: '<is> True', cacheable: '<is> True' } })],
          ['update no body', () => t.call('admin', 'PUT', `${base}/spec1`, null)],
          ['update key mismatch', () => t.call('admin', 'PUT', `${base}/${MISSING}`, { spec1: 'v' })],
          ['update "None" key', () => t.call('admin', 'PUT', `${base}/None`, { spec1: 'v' })],
          ['update two keys', () => t.call('admin', 'PUT', `${base}/spec1`, { spec1: 'a', spec2: 'b' })],
          ['update non-string', () => t.call('admin', 'PUT', `${base}/spec1`, { spec1: true })],
        ]);
        const other = `/types/${MISSING}/extra_specs`;
        await refused(t, 404, [
          ['list unknown type', () => t.call('admin', 'GET', other)],
          ['create unknown type', () => t.call('admin', 'POST', other, { extra_specs: { k: 'v' } })],
          ['show unknown type', () => t.call('admin', 'GET', `${other}/spec1`)],
          ['update unknown type', () => t.call('admin', 'PUT', `${other}/spec1`, { spec1: 'v' })],
          ['delete unknown type', () => t.call('admin', 'DELETE', `${other}/spec1`)],
          ['show unknown key', () => t.call('admin', 'GET', `${base}/nonexistent`)],
          ['member show hidden key', () => t.call('a', 'GET', `${base}/spec1`)],
          ['delete unknown key', () => t.call('admin', 'DELETE', `${base}/nonexistent`)],
        ]);
        await refused(t, 403, [
          ['member create', () => t.call('a', 'POST', base, { extra_specs: { k: 'v' } })],
          ['member update', () => t.call('a', 'PUT', `${base}/spec1`, { spec1: 'v' })],
          ['member delete', () => t.call('a', 'DELETE', `${base}/spec1`)],
        ]);
      });
    });

    it('shares private types through type access', async () => {
      await withApp(dialect, 'types_access', async (t) => {
        const priv = await createType(t, 'private-gold', { 'os-volume-type-access:is_public': false });
        const pub = await createType(t, 'public-gold');
        const action = (who: 'admin' | 'a', id: string, body: unknown) => () => t.call(who, 'POST', `/types/${id}/action`, body);
        assertFault(await t.call('b', 'POST', '/volumes', { volume: { size: 1, volume_type: priv.id } }), 404, 'private type unusable');
        assert.equal(await countRows(t.store, 'volumes'), 0);

        assert.equal((await action('admin', priv.id, { addProjectAccess: { project: PROJ_B } })()).status, 202);
        assert.equal((await action('admin', priv.id, { addProjectAccess: { project: PROJ_A } })()).status, 202);
        const list = await t.call('admin', 'GET', `/types/${priv.id}/os-volume-type-access`);
        assertFields(list.json, ['volume_type_access']);
        const entries = list.json['volume_type_access'] as Record<string, string>[];
        for (const e of entries) assertFields(e, ['volume_type_id', 'project_id'], [], 'access entry');
        assert.deepEqual(entries.map((e) => e.project_id).sort(), [PROJ_A, PROJ_B].sort());
        const vol = await t.call('b', 'POST', '/volumes', { volume: { size: 1, volume_type: priv.id } });
        assert.equal(vol.status, 202, JSON.stringify(vol.body));
        assert.equal((vol.json['volume'] as Record<string, unknown>)['volume_type'], 'private-gold');

        await refused(t, 409, [['add twice', action('admin', priv.id, { addProjectAccess: { project: PROJ_B } })]]);
        await refused(t, 404, [
          ['remove absent', action('admin', priv.id, { removeProjectAccess: { project: 'nobody' } })],
          ['add unknown type', action('admin', MISSING, { addProjectAccess: { project: PROJ_A } })],
          ['list unknown type', () => t.call('admin', 'GET', `/types/${MISSING}/os-volume-type-access`)],
          ['list public type', () => t.call('admin', 'GET', `/types/${pub.id}/os-volume-type-access`)],
        ]);
        await refused(t, 400, [
          ['add to public', action('admin', pub.id, { addProjectAccess: { project: PROJ_A } })],
          ['no body', action('admin', priv.id, undefined)],
          ['unknown action', action('admin', priv.id, { shareWith: { project: PROJ_A } })],
          ['no project', action('admin', priv.id, { addProjectAccess: {} })],
          ['empty project', action('admin', priv.id, { addProjectAccess: { project: '' } })],
          ['project not a string', action('admin', priv.id, { removeProjectAccess: { project: 7 } })],
        ]);
        await refused(t, 403, [
          ['member add', action('a', priv.id, { addProjectAccess: { project: PROJ_A } })],
          ['member list', () => t.call('a', 'GET', `/types/${priv.id}/os-volume-type-access`)],
        ]);
        assert.equal((await action('admin', priv.id, { removeProjectAccess: { project: PROJ_A } })()).status, 202);
        assert.equal(await countRows(t.store, 'volume_type_access'), 1);
      });
    });
  });
}
