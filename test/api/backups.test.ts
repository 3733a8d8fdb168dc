// Backups through the Cinder plugin on a real store and job queue: bodies
// against tempest's backups schemas per microversion, the statuses each
// accepted request CASes and the one job it leaves for the backup role, quotas,
// and that every refused request leaves the store exactly as it was. No backup
// role runs: tests settle backups in the store where the role would.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { quotaUsage } from '../../src/services/quotas.js';
import { dialects, stopSharedPostgres } from '../harness/stores.js';
import { ADMIN_P, PROJ_A, buildCinderApp, type Who } from './cinder-admin-harness.js';
import { DETAIL, MISSING, PROGRESS, PROJECT_ATTR, RESTORE, SUMMARY, keys, setup, sorted, type Env } from './backups-env.js';

after(async () => {
  // Let pg-pool's sockets close before the server stops (see snapshots-groups.test.ts).
  await new Promise((r) => setTimeout(r, 250));
  await stopSharedPostgres();
});

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64');
const decode = (s: string) => JSON.parse(Buffer.from(s, 'base64').toString('utf8')) as Record<string, unknown>;

for (const dialect of dialects) {
  describe(`backups API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(await buildCinderApp(dialect, 'backups_api'));
    });
    after(() => env.t.close());

    it('creates from an available volume: summary body, row in creating, volume backing-up, one create_backup job', async () => {
      const vol = await env.volume('a', { size: 3 });
      const res = await env.call('a', 'POST', '/backups', { backup: { volume_id: vol, name: '  nightly  ', description: ' d ', container: 'c1' } });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json), ['backup']);
      const body = res.json['backup'] as Record<string, unknown>;
      assert.deepEqual(keys(body), SUMMARY);
      const id = String(body['id']);
      assert.equal(body['name'], 'nightly');
      assert.deepEqual(body['links'], [
        { href: `http://bulwark.test/volume/v3/${PROJ_A}/backups/${id}`, rel: 'self' },
        { href: `http://bulwark.test/volume/${PROJ_A}/backups/${id}`, rel: 'bookmark' },
      ]);
      const row = await env.row('backups', id);
      assert.deepEqual(
        [row['status'], row['size'], row['description'], row['container'], row['project_id'], row['user_id'], row['availability_zone'], row['is_incremental'], row['parent_id'], row['snapshot_id'], row['host']],
        ['creating', 3, 'd', 'c1', PROJ_A, 'u-a', 'nova', 0, null, null, null],
      );
      assert.equal(row['data_timestamp'], row['created_at']);
      assert.equal((await env.row('volumes', vol))['status'], 'backing-up');
      assert.deepEqual(await env.jobs(id), [{ kind: 'create_backup', target: 'cinder-backup', payload: {} }]);
      // A forced backup of an in-use volume leaves it in-use.
      const inUse = await env.volume('a', { status: 'in-use' });
      const forced = await env.call('a', 'POST', '/backups', { backup: { volume_id: inUse, force: 'true' } });
      assert.equal(forced.status, 202);
      assert.equal((await env.row('volumes', inUse))['status'], 'in-use');
      // 3.43 takes metadata, 3.51 an availability zone (the deployment's only one).
      const meta = await env.call('a', 'POST', '/backups', { backup: { volume_id: await env.volume('a'), metadata: { k: 'v' }, availability_zone: 'nova' } }, '3.51');
      assert.equal(meta.status, 202);
      assert.deepEqual(keys(meta.json['backup']), SUMMARY);
      assert.equal((await env.row('backups', String((meta.json['backup'] as { id: string }).id)))['metadata'], '{"k":"v"}');
    });

    it('creates from a snapshot: the snapshot is backing-up, the volume untouched, data_timestamp is the snapshot time', async () => {
      const vol = await env.volume('a');
      const snap = await env.snapshot('a', vol);
      const res = await env.call('a', 'POST', '/backups', { backup: { volume_id: vol, snapshot_id: snap } });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const row = await env.row('backups', String((res.json['backup'] as { id: string }).id));
      const snapRow = await env.row('snapshots', snap);
      assert.deepEqual([row['snapshot_id'], row['data_timestamp'], snapRow['status']], [snap, snapRow['created_at'], 'backing-up']);
      assert.equal((await env.row('volumes', vol))['status'], 'available');
    });

    it('refuses bad creates, wrong states and quota overruns, and writes nothing', async () => {
      const vol = await env.volume('a', { size: 2 });
      const volB = await env.volume('b');
      const inUse = await env.volume('a', { status: 'in-use' });
      const creating = await env.volume('a', { status: 'creating' });
      const busySnap = await env.snapshot('a', vol, 'creating');
      const otherSnap = await env.snapshot('a', await env.volume('a'));
      const post = (backup: unknown, version?: string, who: Who = 'a') => env.call(who, 'POST', '/backups', backup === undefined ? undefined : { backup }, version);
      await env.refused([
        [() => post(undefined), 400, 'no body'],
        [() => post({}), 400, 'no volume_id'],
        [() => post({ volume_id: 'nope' }), 400, 'volume_id not a uuid'],
        [() => post({ volume_id: vol, size: 1 }), 400, 'unknown field'],
        [() => post({ volume_id: vol, metadata: { k: 'v' } }, '3.42'), 400, 'metadata before 3.43'],
        [() => post({ volume_id: vol, metadata: { 'bad key!': 'v' } }, '3.43'), 400, 'bad metadata key'],
        [() => post({ volume_id: vol, availability_zone: 'nova' }, '3.50'), 400, 'availability_zone before 3.51'],
        [() => post({ volume_id: vol, availability_zone: 'elsewhere' }, '3.51'), 400, 'unknown zone'],
        [() => post({ volume_id: vol, incremental: 'maybe' }), 400, 'incremental not a boolean'],
        [() => post({ volume_id: vol, name: 'x'.repeat(256) }), 400, 'name too long'],
        [() => post({ volume_id: vol, container: 'x'.repeat(256) }), 400, 'container too long'],
        [() => post({ volume_id: MISSING }), 404, 'unknown volume'],
        [() => post({ volume_id: volB }), 404, "another project's volume"],
        [() => post({ volume_id: vol, snapshot_id: MISSING }), 404, 'unknown snapshot'],
        [() => post({ volume_id: vol, snapshot_id: otherSnap }), 400, "another volume's snapshot"],
        [() => post({ volume_id: vol, snapshot_id: busySnap }), 400, 'snapshot not available'],
        [() => post({ volume_id: inUse }), 400, 'in-use without force'],
        [() => post({ volume_id: creating, force: true }), 400, 'volume creating'],
        [() => post({ volume_id: vol, incremental: true }), 400, 'incremental without a parent'],
        [() => post({ volume_id: vol }, undefined, 'reader'), 403, 'reader'],
      ]);
      const used = await quotaUsage(env.t.store.db, PROJ_A);
      await env.quota(PROJ_A, 'backups', used.backups);
      await env.refused([[() => post({ volume_id: vol }), 413, 'over backups']]);
      await env.quota(PROJ_A, 'backups', null);
      await env.quota(PROJ_A, 'backup_gigabytes', used.backup_gigabytes + 1);
      await env.refused([[() => post({ volume_id: vol }), 413, 'over backup_gigabytes']]);
      await env.quota(PROJ_A, 'backup_gigabytes', null);
      // Usage counts every backup row and its size.
      await env.backup('a', { volume_id: vol });
      const after = await quotaUsage(env.t.store.db, PROJ_A);
      assert.deepEqual([after.backups, after.backup_gigabytes], [used.backups + 1, used.backup_gigabytes + 2]);
    });

    it('chains incrementals to the newest available backup, or the newest older than the snapshot', async () => {
      const vol = await env.volume('a');
      const [b1, b2, b3] = [await env.backup('a', { volume_id: vol }), await env.backup('a', { volume_id: vol }), await env.backup('a', { volume_id: vol }, { status: 'error' })];
      const stamps: [string, string][] = [[b1, '2030-01-01T00:00:00.000Z'], [b2, '2030-01-03T00:00:00.000Z'], [b3, '2030-01-05T00:00:00.000Z']];
      for (const [id, ts] of stamps) await env.t.store.db.updateTable('backups').set({ data_timestamp: ts }).where('id', '=', id).execute();
      const inc = await env.backup('a', { volume_id: vol, incremental: true });
      const incRow = await env.row('backups', inc);
      assert.deepEqual([incRow['parent_id'], incRow['is_incremental']], [b2, 1]);
      const snap = await env.snapshot('a', vol);
      await env.t.store.db.updateTable('snapshots').set({ created_at: '2030-01-02T00:00:00.000Z' }).where('id', '=', snap).execute();
      await env.t.store.db.updateTable('backups').set({ data_timestamp: '2020-01-01T00:00:00.000Z' }).where('id', '=', inc).execute();
      const fromSnap = await env.backup('a', { volume_id: vol, snapshot_id: snap, incremental: true });
      assert.equal((await env.row('backups', fromSnap))['parent_id'], b1);
      const early = await env.snapshot('a', vol);
      await env.t.store.db.updateTable('snapshots').set({ created_at: '2019-01-01T00:00:00.000Z' }).where('id', '=', early).execute();
      await env.refused([[() => env.call('a', 'POST', '/backups', { backup: { volume_id: vol, snapshot_id: early, incremental: true } }), 400, 'no backup before the snapshot']]);
      // The parent shows it has dependents, the child that it is incremental.
      const shown = (await env.call('a', 'GET', `/backups/${b2}`)).json['backup'] as Record<string, unknown>;
      assert.equal(shown['has_dependent_backups'], true);
      assert.equal(((await env.call('a', 'GET', `/backups/${inc}`)).json['backup'] as Record<string, unknown>)['is_incremental'], true);
      // A backup with dependents cannot be deleted, forced or not.
      await env.refused([
        [() => env.call('a', 'DELETE', `/backups/${b2}`), 400, 'delete a parent'],
        [() => env.call('admin', 'POST', `/backups/${b2}/action`, { 'os-force_delete': {} }), 400, 'force delete a parent'],
      ]);
    });

    it('shows and lists with the fields of each microversion and persona; scopes by project', async () => {
      const vol = await env.volume('a');
      const id = await env.backup('a', { volume_id: vol, name: 'show-me' });
      const idB = await env.backup('b', { volume_id: await env.volume('b'), name: 'bees' });
      const show = async (who: Who, version?: string, bid = id) => (await env.call(who, 'GET', `/backups/${bid}`, undefined, version)).json['backup'];
      assert.deepEqual(keys(await show('a')), DETAIL);
      assert.deepEqual(keys(await show('a', '3.64')), sorted([...DETAIL, 'metadata', 'encryption_key_id']));
      assert.deepEqual(keys(await show('admin', '3.18')), sorted([...DETAIL, PROJECT_ATTR]));
      assert.deepEqual(keys(await show('admin', '3.43')), sorted([...DETAIL, PROJECT_ATTR, 'metadata']));
      assert.deepEqual(keys(await show('admin', '3.56')), sorted([...DETAIL, PROJECT_ATTR, 'metadata', 'user_id']));
      const full = (await show('admin', '3.64')) as Record<string, unknown>;
      assert.deepEqual(keys(full), sorted([...DETAIL, PROJECT_ATTR, 'metadata', 'user_id', 'encryption_key_id']));
      assert.deepEqual([full[PROJECT_ATTR], full['user_id'], full['encryption_key_id'], full['status'], full['object_count'], full['is_incremental']], [PROJ_A, 'u-a', null, 'available', 0, false]);
      assert.match(String(full['created_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      assert.equal((await env.call('reader', 'GET', `/backups/${id}`)).status, 200);
      const names = async (who: Who, query = '', version?: string) => ((await env.call(who, 'GET', `/backups${query}`, undefined, version)).json['backups'] as { name: string }[]).map((x) => x.name);
      const list = await env.call('a', 'GET', '/backups');
      assert.deepEqual(keys(list.json), ['backups']);
      for (const x of list.json['backups'] as unknown[]) assert.deepEqual(keys(x), SUMMARY);
      for (const x of (await env.call('a', 'GET', '/backups/detail', undefined, '3.64')).json['backups'] as unknown[]) assert.deepEqual(keys(x), sorted([...DETAIL, 'metadata', 'encryption_key_id']));
      for (const x of (await env.call('admin', 'GET', '/backups/detail?all_tenants=1', undefined, '3.56')).json['backups'] as unknown[]) assert.deepEqual(keys(x), sorted([...DETAIL, PROJECT_ATTR, 'metadata', 'user_id']));
      assert.ok(!(await names('a')).includes('bees'));
      assert.deepEqual(await names('a', '?name=show-me'), ['show-me']);
      assert.deepEqual(await names('a', `?volume_id=${vol}&status=available`), ['show-me']);
      assert.deepEqual(await names('a', '?status=error&name=show-me'), []);
      assert.deepEqual(await names('admin'), []);
      assert.ok((await names('admin', '?all_tenants=true')).includes('bees'));
      assert.deepEqual(await names('b', '?all_tenants=true'), ['bees'], 'all_tenants is ignored for members');
      const counted = await env.call('a', 'GET', '/backups?with_count=true&limit=1', undefined, '3.45');
      assert.equal(counted.json['count'], (await names('a')).length);
      assert.equal((counted.json['backups'] as unknown[]).length, 1);
      assert.ok(Array.isArray(counted.json['backups_links']));
      assert.deepEqual(await names('a', '?sort=name:asc&name~=show', '3.34'), ['show-me']);
      await env.refused([
        [() => env.call('a', 'GET', `/backups/${idB}`), 404, "another project's backup"],
        [() => env.call('a', 'GET', `/backups/${MISSING}`), 404, 'unknown backup'],
        [() => env.call('a', 'GET', '/backups?host=x', undefined, '3.34'), 400, 'filter members may not use'],
        [() => env.call('a', 'GET', `/backups?marker=${MISSING}`), 404, 'unknown marker'],
        [() => env.call('a', 'GET', '/backups?sort=bogus:asc'), 400, 'unknown sort key'],
      ]);
      assert.equal((await env.call('admin', 'GET', `/backups/${idB}`)).status, 200);
    });

    it('updates name, description (3.9) and metadata (3.43)', async () => {
      const id = await env.backup('a', { volume_id: await env.volume('a'), name: 'old' });
      const idB = await env.backup('b', { volume_id: await env.volume('b') });
      const put = (body: unknown, version = '3.9', who: Who = 'a', bid = id) => env.call(who, 'PUT', `/backups/${bid}`, body, version);
      await env.refused([
        [() => put({ backup: { name: 'x' } }, '3.8'), 404, 'before 3.9'],
        [() => put({ backup: { metadata: { k: 'v' } } }), 400, 'metadata before 3.43'],
        [() => put({ backup: { size: 2 } }), 400, 'unknown field'],
        [() => put({ name: 'x' }), 400, 'no backup key'],
        [() => put({ backup: { name: 'x' } }, '3.9', 'reader'), 403, 'reader'],
        [() => put({ backup: { name: 'x' } }, '3.9', 'a', idB), 404, "another project's backup"],
      ]);
      const res = await put({ backup: { name: ' new ', description: 'desc' } });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json['backup']), SUMMARY);
      assert.equal((res.json['backup'] as { name: string }).name, 'new');
      assert.equal((await put({ backup: { metadata: { a: '1' } } }, '3.43')).status, 200);
      const row = await env.row('backups', id);
      assert.deepEqual([row['name'], row['description'], row['metadata']], ['new', 'desc', '{"a":"1"}']);
      assert.equal((await put({ backup: null })).status, 200);
    });

    it('deletes available or error backups, admins force any other; one delete_backup job', async () => {
      const vol = await env.volume('a');
      const [ok, errored, creating] = [await env.backup('a', { volume_id: vol }), await env.backup('a', { volume_id: vol }, { status: 'error' }), await env.backup('a', { volume_id: vol }, { status: 'creating' })];
      const restoring = await env.backup('a', { volume_id: vol }, { status: 'restoring' });
      const idB = await env.backup('b', { volume_id: await env.volume('b') });
      await env.refused([
        [() => env.call('a', 'DELETE', `/backups/${creating}`), 400, 'creating'],
        [() => env.call('a', 'DELETE', `/backups/${idB}`), 404, "another project's backup"],
        [() => env.call('reader', 'DELETE', `/backups/${ok}`), 403, 'reader'],
        [() => env.call('a', 'DELETE', `/backups/${creating}?force=true`), 403, 'member forcing'],
        [() => env.call('a', 'POST', `/backups/${creating}/action`, { 'os-force_delete': {} }), 403, 'member force action'],
        [() => env.call('admin', 'POST', `/backups/${creating}/action`, { 'os-force_delete': 1 }), 400, 'bad force body'],
      ]);
      for (const id of [ok, errored]) {
        assert.equal((await env.call('a', 'DELETE', `/backups/${id}`)).status, 202);
        assert.equal((await env.row('backups', id))['status'], 'deleting');
        assert.deepEqual((await env.jobs(id)).at(-1), { kind: 'delete_backup', target: 'cinder-backup', payload: { force: false } });
      }
      assert.equal((await env.call('admin', 'DELETE', `/backups/${creating}?force=true`)).status, 202);
      assert.equal((await env.call('admin', 'POST', `/backups/${restoring}/action`, { 'os-force_delete': null })).status, 202);
      for (const id of [creating, restoring]) {
        assert.equal((await env.row('backups', id))['status'], 'deleting');
        assert.deepEqual((await env.jobs(id)).at(-1), { kind: 'delete_backup', target: 'cinder-backup', payload: { force: true } });
      }
      await env.refused([
        [() => env.call('a', 'DELETE', `/backups/${ok}`), 400, 'already deleting'],
        [() => env.call('admin', 'DELETE', `/backups/${ok}?force=1`), 400, 'force while deleting'],
      ]);
    });

    it('restores into a new volume or an available one; one restore_backup job', async () => {
      const id = await env.backup('a', { volume_id: await env.volume('a', { size: 2 }) });
      const res = await env.call('a', 'POST', `/backups/${id}/restore`, { restore: null });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json), ['restore']);
      const r = res.json['restore'] as Record<string, string>;
      assert.deepEqual(keys(r), RESTORE);
      assert.deepEqual([r['backup_id'], r['volume_name']], [id, `restore_backup_${id}`]);
      const made = await env.row('volumes', r['volume_id']!);
      assert.deepEqual([made['size'], made['status'], made['project_id'], made['description']], [2, 'creating', PROJ_A, 'auto-created_from_restore_from_backup']);
      assert.deepEqual((await env.jobs(r['volume_id']!)).map((j) => j.kind), ['schedule_volume']);
      const row = await env.row('backups', id);
      assert.deepEqual([row['status'], row['restore_volume_id']], ['restoring', r['volume_id']]);
      assert.deepEqual((await env.jobs(id)).at(-1), { kind: 'restore_backup', target: 'cinder-backup', payload: { volumeId: r['volume_id'], volumeIsNew: true } });
      // Into an existing volume: it goes to restoring-backup at once.
      await env.t.store.db.updateTable('backups').set({ status: 'available' }).where('id', '=', id).execute();
      const target = await env.volume('a', { size: 3, name: 'target' });
      const into = await env.call('a', 'POST', `/backups/${id}/restore`, { restore: { volume_id: target, name: 'ignored' } });
      assert.equal(into.status, 202, JSON.stringify(into.json));
      assert.deepEqual(into.json['restore'], { backup_id: id, volume_id: target, volume_name: 'target' });
      assert.equal((await env.row('volumes', target))['status'], 'restoring-backup');
      assert.deepEqual((await env.jobs(id)).at(-1), { kind: 'restore_backup', target: 'cinder-backup', payload: { volumeId: target, volumeIsNew: false } });
      const named = await env.backup('a', { volume_id: await env.volume('a') });
      const res2 = await env.call('a', 'POST', `/backups/${named}/restore`, { restore: { name: 'mine' } });
      assert.equal((res2.json['restore'] as { volume_name: string }).volume_name, 'mine');
    });

    it('refuses restores in wrong states, over quota or with bad bodies, and writes nothing', async () => {
      const id = await env.backup('a', { volume_id: await env.volume('a', { size: 2 }) });
      const creating = await env.backup('a', { volume_id: await env.volume('a') }, { status: 'creating' });
      const small = await env.volume('a', { size: 1 });
      const inUse = await env.volume('a', { size: 2, status: 'in-use' });
      const volB = await env.volume('b', { size: 2 });
      const restore = (body: unknown, bid = id, who: Who = 'a') => env.call(who, 'POST', `/backups/${bid}/restore`, body);
      await env.refused([
        [() => restore(undefined), 400, 'no body'],
        [() => restore({ restore: { description: 'x' } }), 400, 'description is not a restore field'],
        [() => restore({ restore: { volume_id: 'nope' } }), 400, 'volume_id not a uuid'],
        [() => restore({ restore: {} }, creating), 400, 'backup not available'],
        [() => restore({ restore: { volume_id: small } }), 400, 'volume too small'],
        [() => restore({ restore: { volume_id: inUse } }), 400, 'volume in-use'],
        [() => restore({ restore: { volume_id: MISSING } }), 404, 'unknown volume'],
        [() => restore({ restore: { volume_id: volB } }), 404, "another project's volume"],
        [() => restore({ restore: {} }, MISSING), 404, 'unknown backup'],
        [() => restore({ restore: {} }, id, 'b'), 404, "another project's backup"],
        [() => restore({ restore: {} }, id, 'reader'), 403, 'reader'],
      ]);
      const used = await quotaUsage(env.t.store.db, PROJ_A);
      await env.quota(PROJ_A, 'volumes', used.volumes);
      await env.refused([[() => restore({ restore: {} }), 413, 'over volumes']]);
      await env.quota(PROJ_A, 'volumes', null);
      await env.quota(PROJ_A, 'gigabytes', used.gigabytes + 1);
      await env.refused([[() => restore({ restore: {} }), 413, 'over gigabytes']]);
      await env.quota(PROJ_A, 'gigabytes', null);
    });

    it('exports an available backup as a record that imports under a new id (tempest flow)', async () => {
      const id = await env.backup('a', { volume_id: await env.volume('a', { size: 2 }), name: 'exported', container: 'cont' });
      const creating = await env.backup('a', { volume_id: await env.volume('a') }, { status: 'creating' });
      await env.refused([
        [() => env.call('a', 'GET', `/backups/${id}/export_record`), 403, 'member exports'],
        [() => env.call('b', 'GET', `/backups/${id}/export_record`), 404, "another project's backup"],
        [() => env.call('admin', 'GET', `/backups/${creating}/export_record`), 400, 'not available'],
      ]);
      const exp = await env.call('admin', 'GET', `/backups/${id}/export_record`);
      assert.equal(exp.status, 200);
      assert.deepEqual(keys(exp.json), ['backup-record']);
      const rec = exp.json['backup-record'] as { backup_service: string; backup_url: string };
      assert.deepEqual(keys(rec), ['backup_service', 'backup_url']);
      assert.ok(rec.backup_service.startsWith('cinder.backup.drivers'));
      const decoded = decode(rec.backup_url);
      assert.deepEqual([decoded['id'], decoded['size'], decoded['display_name'], decoded['container'], decoded['project_id']], [id, 2, 'exported', 'cont', PROJ_A]);
      assert.equal((decoded['driver_info'] as { manifest_id: string }).manifest_id, id);
      const newId = '5f1a2b3c-0000-4000-8000-00000000abcd';
      const url = b64({ ...decoded, id: newId });
      const imp = (body: unknown, who: Who = 'admin') => env.call(who, 'POST', '/backups/import_record', body);
      const good = { 'backup-record': { backup_service: rec.backup_service, backup_url: url } };
      const used = await quotaUsage(env.t.store.db, ADMIN_P);
      await env.quota(ADMIN_P, 'backup_gigabytes', used.backup_gigabytes + 1);
      await env.refused([
        [() => imp(good, 'a'), 403, 'member imports'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service } }), 400, 'no url'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service, backup_url: '%%%' } }), 400, 'not base64'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service, backup_url: b64([1]) } }), 400, 'not an object'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service, backup_url: b64({ size: 1 }) } }), 400, 'no id'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service, backup_url: b64({ id: newId }) } }), 400, 'no size'],
        [() => imp({ 'backup-record': { backup_service: 'cinder.backup.drivers.swift', backup_url: url } }), 400, 'foreign service'],
        [() => imp({ 'backup-record': { backup_service: rec.backup_service, backup_url: rec.backup_url } }), 400, 'id exists'],
        [() => imp(good), 413, 'over backup_gigabytes'],
      ]);
      await env.quota(ADMIN_P, 'backup_gigabytes', null);
      const res = await imp(good);
      assert.equal(res.status, 201, JSON.stringify(res.json));
      assert.deepEqual(keys(res.json['backup']), SUMMARY);
      assert.equal((res.json['backup'] as { id: string }).id, newId);
      const row = await env.row('backups', newId);
      assert.deepEqual([row['status'], row['project_id'], row['size'], row['name'], row['container']], ['creating', ADMIN_P, 2, 'exported', 'cont']);
      const jobs = await env.jobs(newId);
      assert.equal(jobs.length, 1);
      assert.deepEqual([jobs[0]!.kind, jobs[0]!.target], ['import_backup', 'cinder-backup']);
      const sent = (jobs[0]!.payload as { record: Record<string, unknown> }).record;
      assert.deepEqual([sent['id'], (sent['driver_info'] as { manifest_id: string }).manifest_id], [newId, id]);
    });

    it('resets status (admin: available or error) and serves the progress resource', async () => {
      const id = await env.backup('a', { volume_id: await env.volume('a') }, { status: 'creating' });
      const reset = (status: unknown, who: Who = 'admin') => env.call(who, 'POST', `/backups/${id}/action`, { 'os-reset_status': { status } });
      await env.refused([
        [() => reset('error', 'a'), 403, 'member resets'],
        [() => reset('error', 'b'), 404, "another project's backup"],
        [() => reset('creating'), 400, 'not a resettable status'],
        [() => reset(null), 400, 'null status'],
        [() => env.call('admin', 'POST', `/backups/${id}/action`, { 'os-bogus': {} }), 400, 'unknown action'],
        [() => env.call('admin', 'POST', `/backups/${id}/action`, { 'os-reset_status': { status: 'error' }, x: 1 }), 400, 'two actions'],
      ]);
      assert.equal((await reset('ERROR')).status, 202);
      assert.equal((await env.row('backups', id))['status'], 'error');
      assert.equal((await reset('available')).status, 202);
      assert.equal((await env.row('backups', id))['status'], 'available');
      await env.t.store.db.updateTable('backups').set({ bytes_done: 5 * 2 ** 30, bytes_total: 8 * 2 ** 30, bytes_read: 3, tracking: 'allocation-depth', host: 'h1' }).where('id', '=', id).execute();
      const res = await env.call('a', 'GET', `/bulwark-progress/backups/${id}`);
      assert.equal(res.status, 200);
      assert.deepEqual(keys(res.json), ['progress']);
      assert.deepEqual(keys(res.json['progress']), PROGRESS);
      assert.deepEqual(res.json['progress'], { backup_id: id, status: 'available', bytes_done: 5 * 2 ** 30, bytes_total: 8 * 2 ** 30, bytes_read: 3, tracking: 'allocation-depth', host: 'h1' });
      assert.equal((await env.call('admin', 'GET', `/bulwark-progress/backups/${id}`)).status, 200);
      await env.refused([[() => env.call('b', 'GET', `/bulwark-progress/backups/${id}`), 404, "another project's progress"]]);
    });
  });
}
