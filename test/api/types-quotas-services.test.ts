// Quota sets and classes, limits, os-services, availability zones and
// extensions through the Cinder API on every store dialect (volume types are
// in volume-types.test.ts): tempest's field sets, Cinder's status codes, the
// rows written, quota enforcement on POST /volumes, and refusals that change
// nothing.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { enforceQuota } from '../../src/services/quotas.js';
import { ServiceRegistry } from '../../src/services/registry.js';
import { dialects, stopSharedPostgres } from '../harness/stores.js';
import { ADMIN_P, assertFault, assertFields, buildCinderApp, countRows, PROJ_A, PROJ_B, snapshotTables, type CinderTestApp, type Reply } from './cinder-admin-harness.js';

after(stopSharedPostgres);

const QUOTA_REQ = ['id', 'volumes', 'snapshots', 'backups', 'per_volume_gigabytes', 'gigabytes', 'backup_gigabytes', 'groups'];
const LIMIT_KEYS = ['totalSnapshotsUsed', 'maxTotalBackups', 'maxTotalVolumeGigabytes', 'maxTotalSnapshots', 'maxTotalBackupGigabytes', 'totalBackupGigabytesUsed', 'maxTotalVolumes', 'totalVolumesUsed', 'totalBackupsUsed', 'totalGigabytesUsed'];
const SERVICE_REQ = ['binary', 'disabled_reason', 'host', 'state', 'status', 'updated_at', 'zone'];
const SERVICE_OPT = ['frozen', 'replication_status', 'active_backend_id', 'backend_state'];

async function withApp(dialect: (typeof dialects)[number], label: string, fn: (t: CinderTestApp) => Promise<void>): Promise<void> {
  const t = await buildCinderApp(dialect, label, { quotas: { volumes: 10, gigabytes: 100 } });
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

async function refused(t: CinderTestApp, status: number, cases: [string, () => Promise<Reply>][]): Promise<void> {
  for (const [what, send] of cases) {
    const before = await snapshotTables(t.store);
    assertFault(await send(), status, what);
    assert.equal(await snapshotTables(t.store), before, `${what} changed nothing`);
  }
}

const quotaSet = (r: Reply) => r.json['quota_set'] as Record<string, number>;
const newVolume = (t: CinderTestApp, size: number, type?: string) => t.call('a', 'POST', '/volumes', { volume: { size, ...(type ? { volume_type: type } : {}) } });

for (const dialect of dialects) {
  describe(`quotas and limits on ${dialect}`, () => {
    it('shows quota sets, defaults and usage with per-type keys', async () => {
      await withApp(dialect, 'quota_show', async (t) => {
        await t.call('admin', 'POST', '/types', { volume_type: { name: 'gold' } });
        const own = await t.call('a', 'GET', `/os-quota-sets/${PROJ_A}`);
        assert.equal(own.status, 200);
        assertFields(own.json, ['quota_set']);
        const typeKeys = ['volumes', 'gigabytes', 'snapshots'].flatMap((p) => [`${p}___DEFAULT__`, `${p}_gold`]);
        assertFields(quotaSet(own), QUOTA_REQ, typeKeys, 'quota_set');
        for (const k of typeKeys) assert.equal(quotaSet(own)[k], -1, `${k} unlimited by default`);
        assert.deepEqual([quotaSet(own)['id'], quotaSet(own)['volumes'], quotaSet(own)['gigabytes']], [PROJ_A, 10, 100]);
        assert.equal((await t.call('reader', 'GET', `/os-quota-sets/${PROJ_A}`)).status, 200, 'readers read their own');
        assert.equal((await t.call('admin', 'GET', `/os-quota-sets/${PROJ_B}`)).status, 200, 'admin reads any');

        assert.equal((await newVolume(t, 3, 'gold')).status, 202);
        const usage = quotaSet(await t.call('admin', 'GET', `/os-quota-sets/${PROJ_A}?usage=True`)) as unknown as Record<string, unknown>;
        assertFields(usage, QUOTA_REQ, typeKeys, 'usage set');
        for (const [k, v] of Object.entries(usage)) if (k !== 'id') assertFields(v, ['reserved', 'limit', 'in_use'], ['allocated'], k);
        assert.deepEqual(usage['volumes'], { limit: 10, in_use: 1, reserved: 0 });
        assert.deepEqual(usage['gigabytes_gold'], { limit: -1, in_use: 3, reserved: 0 });

        const defaults = await t.call('a', 'GET', `/os-quota-sets/${PROJ_A}/defaults`);
        assertFields(quotaSet(defaults), QUOTA_REQ, typeKeys, 'defaults');
        await refused(t, 403, [
          ['other project', () => t.call('a', 'GET', `/os-quota-sets/${PROJ_B}`)],
          ['other defaults', () => t.call('a', 'GET', `/os-quota-sets/${PROJ_B}/defaults`)],
        ]);
        await refused(t, 400, [['bad usage flag', () => t.call('a', 'GET', `/os-quota-sets/${PROJ_A}?usage=lots`)]]);
      });
    });

    it('updates, validates and resets quota sets', async () => {
      await withApp(dialect, 'quota_update', async (t) => {
        const put = (body: unknown, who: 'admin' | 'a' = 'admin') => () => t.call(who, 'PUT', `/os-quota-sets/${PROJ_A}`, body);
        const res = await put({ quota_set: { gigabytes: 1009, volumes: '11', snapshots: 11, backups: 11, backup_gigabytes: 1009, per_volume_gigabytes: 1009, tenant_id: PROJ_A } })();
        assert.equal(res.status, 200);
        assertFields(quotaSet(res), QUOTA_REQ.filter((k) => k !== 'id'), ['volumes___DEFAULT__', 'gigabytes___DEFAULT__', 'snapshots___DEFAULT__'], 'update');
        assert.deepEqual([quotaSet(res)['volumes'], quotaSet(res)['gigabytes']], [11, 1009]);
        const rows = await t.store.db.selectFrom('quotas').selectAll().where('project_id', '=', PROJ_A).orderBy('resource').execute();
        assert.deepEqual(rows.map((r) => [r.resource, r.hard_limit]), [['backup_gigabytes', 1009], ['backups', 11], ['gigabytes', 1009], ['per_volume_gigabytes', 1009], ['snapshots', 11], ['volumes', 11]]);

        assert.equal((await newVolume(t, 5)).status, 202);
        await refused(t, 400, [
          ['no body', put(undefined)],
          ['no quota_set', put({ volumes: 1 })],
          ['empty quota_set', put({ quota_set: {} })],
          ['quota_set not object', put({ quota_set: [1] })],
          ['unknown key', put({ quota_set: { volumes: 5, bananas: 1 } })],
          ['below -1', put({ quota_set: { volumes: -2 } })],
          ['not an integer', put({ quota_set: { volumes: 'many' } })],
          ['fraction', put({ quota_set: { volumes: 1.5 } })],
          ['boolean', put({ quota_set: { volumes: true } })],
          ['too big', put({ quota_set: { volumes: 2 ** 31 } })],
          ['extra top key', put({ quota_set: { volumes: 5 }, x: 1 })],
          // A valid key next to one below usage: neither is written.
          ['below usage', put({ quota_set: { snapshots: 3, gigabytes: 4 } })],
          ['volumes below usage', put({ quota_set: { volumes: 0 } })],
        ]);
        assert.equal((await put({ quota_set: { gigabytes: 5, volumes: -1, per_volume_gigabytes: 1 } })()).status, 200, 'equal to usage, unlimited and per-volume are fine');
        await refused(t, 403, [
          ['member update', put({ quota_set: { volumes: 50 } }, 'a')],
          ['member delete', () => t.call('a', 'DELETE', `/os-quota-sets/${PROJ_A}`)],
        ]);
        const del = await t.call('admin', 'DELETE', `/os-quota-sets/${PROJ_A}`);
        assert.equal(del.status, 200);
        assert.equal(await countRows(t.store, 'quotas'), 0);
        assert.equal(quotaSet(await t.call('a', 'GET', `/os-quota-sets/${PROJ_A}`))['volumes'], 10, 'back to the default');
      });
    });

    it('enforces limits on POST /volumes with 413 and no row', async () => {
      await withApp(dialect, 'quota_enforce', async (t) => {
        assert.equal((await t.call('admin', 'PUT', `/os-quota-sets/${PROJ_A}`, { quota_set: { volumes: 1, gigabytes: -1 } })).status, 200);
        assert.equal((await newVolume(t, 1)).status, 202);
        const over = await newVolume(t, 1);
        assertFault(over, 413, 'volumes quota');
        assert.equal(over.headers['retry-after'], '0');
        assert.equal(await countRows(t.store, 'volumes'), 1);
        assert.equal((await t.call('b', 'POST', '/volumes', { volume: { size: 1 } })).status, 202, 'other projects unaffected');

        await t.call('admin', 'PUT', `/os-quota-sets/${PROJ_A}`, { quota_set: { volumes: -1, gigabytes: 3 } });
        assertFault(await newVolume(t, 3), 413, 'gigabytes quota');
        assert.equal((await newVolume(t, 2)).status, 202);
        await t.call('admin', 'PUT', `/os-quota-sets/${PROJ_A}`, { quota_set: { gigabytes: -1, per_volume_gigabytes: 4 } });
        assertFault(await newVolume(t, 5), 413, 'per-volume limit');
        assert.equal(await countRows(t.store, 'volumes'), 3);

        const limits = await t.call('a', 'GET', '/limits');
        assert.equal(limits.status, 200);
        assertFields(limits.json, ['limits']);
        assertFields(limits.json['limits'], ['rate', 'absolute']);
        const abs = (limits.json['limits'] as { absolute: Record<string, number>; rate: unknown[] }).absolute;
        assertFields(abs, LIMIT_KEYS, [], 'absolute');
        assert.deepEqual([abs['maxTotalVolumes'], abs['maxTotalVolumeGigabytes'], abs['totalVolumesUsed'], abs['totalGigabytesUsed'], abs['totalBackupsUsed']], [-1, -1, 2, 3, 0]);
        const forB = (await t.call('admin', 'GET', `/limits?project_id=${PROJ_B}`, undefined, '3.39')).json['limits'] as { absolute: Record<string, number> };
        assert.equal(forB.absolute['totalVolumesUsed'], 1, 'admin asks about another project from 3.39');
        const ownAdmin = (await t.call('admin', 'GET', `/limits?project_id=${PROJ_B}`)).json['limits'] as { absolute: Record<string, number> };
        assert.equal(ownAdmin.absolute['totalVolumesUsed'], 0, 'before 3.39 project_id is ignored');
      });
    });

    it('enforces per-volume-type limits', async () => {
      await withApp(dialect, 'quota_per_type', async (t) => {
        await t.call('admin', 'POST', '/types', { volume_type: { name: 'gold' } });
        const gold = await t.store.db.selectFrom('volume_types').selectAll().where('name', '=', 'gold').executeTakeFirstOrThrow();
        assert.equal((await t.call('admin', 'PUT', `/os-quota-sets/${PROJ_A}`, { quota_set: { volumes_gold: 1 } })).status, 200);
        assert.equal((await newVolume(t, 1, 'gold')).status, 202);
        await assert.rejects(
          t.store.transaction((trx) => enforceQuota(trx, t.config, PROJ_A, { volumes: 1, gigabytes: 1 }, 1, gold.id)),
          (err: { status?: number; message?: string }) => err.status === 413 && /volumes_gold/.test(err.message ?? ''),
        );
        // Without a type only the global limits apply.
        await t.store.transaction((trx) => enforceQuota(trx, t.config, PROJ_A, { volumes: 1, gigabytes: 1 }, 1));
        // Renaming the type carries its limits along.
        assert.equal((await t.call('admin', 'PUT', `/types/${gold.id}`, { volume_type: { name: 'aurum' } })).status, 200);
        assert.equal(quotaSet(await t.call('a', 'GET', `/os-quota-sets/${PROJ_A}`))['volumes_aurum'], 1);
      });
    });

    it('enforces per-type limits on POST /volumes', async () => {
      await withApp(dialect, 'quota_per_type_api', async (t) => {
        await t.call('admin', 'POST', '/types', { volume_type: { name: 'gold' } });
        await t.call('admin', 'PUT', `/os-quota-sets/${PROJ_A}`, { quota_set: { volumes_gold: 1 } });
        assert.equal((await newVolume(t, 1, 'gold')).status, 202);
        assertFault(await newVolume(t, 1, 'gold'), 413, 'volumes_gold');
        assert.equal(await countRows(t.store, 'volumes'), 1);
      });
    });

    it('shows and updates quota classes', async () => {
      await withApp(dialect, 'quota_classes', async (t) => {
        await t.call('admin', 'POST', '/types', { volume_type: { name: 'gold' } });
        const shown = await t.call('admin', 'GET', '/os-quota-class-sets/default');
        assert.equal(shown.status, 200);
        const cls = shown.json['quota_class_set'] as Record<string, unknown>;
        const typeKeys = ['volumes', 'gigabytes', 'snapshots'].flatMap((p) => [`${p}___DEFAULT__`, `${p}_gold`]);
        assertFields(cls, ['id', 'volumes', 'snapshots', 'backups', 'per_volume_gigabytes', 'gigabytes', 'backup_gigabytes'], ['groups', ...typeKeys], 'class set');
        assert.equal(cls['id'], 'default');
        const upd = await t.call('admin', 'PUT', '/os-quota-class-sets/default', { quota_class_set: { volumes: 12, snapshots: '13', volumes_gold: 4 } });
        assert.equal(upd.status, 200);
        const body = upd.json['quota_class_set'] as Record<string, number>;
        assert.equal('id' in body, false);
        assert.deepEqual([body['volumes'], body['snapshots'], body['volumes_gold']], [12, 13, 4]);
        const defaults = quotaSet(await t.call('a', 'GET', `/os-quota-sets/${PROJ_A}/defaults`));
        assert.deepEqual([defaults['volumes'], defaults['volumes_gold']], [12, 4], 'defaults follow the default class');
        assert.equal(quotaSet(await t.call('admin', 'GET', `/os-quota-sets/${ADMIN_P}`))['snapshots'], 13);
        assert.equal(await countRows(t.store, 'quota_classes'), 3);
        const put = (body: unknown) => () => t.call('admin', 'PUT', '/os-quota-class-sets/default', body);
        await refused(t, 400, [
          ['no body', put(undefined)],
          ['no wrapper', put({ volumes: 1 })],
          ['unknown key', put({ quota_class_set: { volumes: 1, bananas: 2 } })],
          ['negative string', put({ quota_class_set: { volumes: '-1' } })],
          ['below -1', put({ quota_class_set: { volumes: -5 } })],
          ['not a number', put({ quota_class_set: { volumes: 'x' } })],
          ['too big', put({ quota_class_set: { volumes: 2 ** 31 } })],
        ]);
        await refused(t, 403, [
          ['member show', () => t.call('a', 'GET', '/os-quota-class-sets/default')],
          ['member update', () => t.call('a', 'PUT', '/os-quota-class-sets/default', { quota_class_set: { volumes: 1 } })],
        ]);
      });
    });
  });

  describe(`services, zones and extensions on ${dialect}`, () => {
    async function seed(t: CinderTestApp): Promise<ServiceRegistry> {
      const reg = ServiceRegistry.fromConfig(t.store, t.config);
      await reg.register('cinder-volume', 'node1@pool1', 'nova', { pool_name: 'pool1', free_capacity_gb: 10 });
      await reg.register('cinder-scheduler', 'node1', 'nova');
      // node2 stopped beating two minutes ago.
      const stale = new ServiceRegistry(t.store, { heartbeatIntervalMs: 1000, serviceDownAfterMs: 60_000, now: () => Date.now() - 120_000 });
      await stale.register('cinder-volume', 'node2@pool1', 'az2', {});
      await stale.stop();
      return reg;
    }

    it('lists services with tempest fields per microversion and filters', async () => {
      await withApp(dialect, 'services_list', async (t) => {
        const reg = await seed(t);
        try {
          const v30 = await t.call('admin', 'GET', '/os-services');
          assert.equal(v30.status, 200);
          assertFields(v30.json, ['services']);
          const services = v30.json['services'] as Record<string, unknown>[];
          for (const s of services) assertFields(s, SERVICE_REQ, SERVICE_OPT, String(s['host']));
          const byHost = Object.fromEntries(services.map((s) => [`${s['binary']} ${s['host']}`, s]));
          assert.deepEqual(Object.keys(byHost).sort(), ['cinder-scheduler node1', 'cinder-volume node1@pool1', 'cinder-volume node2@pool1']);
          assert.equal(byHost['cinder-volume node1@pool1']!['state'], 'up');
          assert.equal(byHost['cinder-volume node2@pool1']!['state'], 'down');
          assert.equal(byHost['cinder-volume node1@pool1']!['frozen'], false);
          assert.equal('frozen' in byHost['cinder-scheduler node1']!, false, 'replication fields only on volume services');
          assert.match(String(byHost['cinder-scheduler node1']!['updated_at']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);

          const v349 = (await t.call('admin', 'GET', '/os-services', undefined, '3.49')).json['services'] as Record<string, unknown>[];
          for (const s of v349) assertFields(s, [...SERVICE_REQ, 'cluster'], SERVICE_OPT, `3.49 ${String(s['host'])}`);
          assert.deepEqual(v349.filter((s) => s['binary'] === 'cinder-volume').map((s) => s['backend_state']).sort(), ['down', 'up']);

          const hosts = async (q: string) => ((await t.call('admin', 'GET', `/os-services${q}`)).json['services'] as Record<string, string>[]).map((s) => `${s['binary']} ${s['host']}`).sort();
          assert.deepEqual(await hosts('?host=node1'), ['cinder-scheduler node1', 'cinder-volume node1@pool1']);
          assert.deepEqual(await hosts('?binary=cinder-volume&host=node2'), ['cinder-volume node2@pool1']);
          assert.deepEqual(await hosts('?host=node1@pool1'), ['cinder-volume node1@pool1']);
          assert.deepEqual(await hosts('?binary=cinder-backup'), []);
          await refused(t, 403, [['member list', () => t.call('a', 'GET', '/os-services')]]);
        } finally {
          await reg.stop();
        }
      });
    });

    it('enables, disables, freezes and thaws with Cinder validation', async () => {
      await withApp(dialect, 'services_update', async (t) => {
        const reg = await seed(t);
        try {
          const put = (action: string, body: unknown, who: 'admin' | 'a' = 'admin') => () => t.call(who, 'PUT', `/os-services/${action}`, body);
          const row = () => t.store.db.selectFrom('services').selectAll().where('host', '=', 'node1@pool1').executeTakeFirstOrThrow();

          const logged = await put('disable-log-reason', { host: 'node1@pool1', binary: 'cinder-volume', disabled_reason: 'maintenance' })();
          assert.equal(logged.status, 200);
          assertFields(logged.json, ['disabled', 'status', 'host', 'service', 'binary', 'disabled_reason']);
          assert.deepEqual([logged.json['status'], logged.json['disabled_reason']], ['disabled', 'maintenance']);
          assert.deepEqual([(await row()).disabled, (await row()).disabled_reason], [1, 'maintenance']);
          const listed = ((await t.call('admin', 'GET', '/os-services?host=node1@pool1')).json['services'] as Record<string, unknown>[])[0]!;
          assert.deepEqual([listed['status'], listed['disabled_reason']], ['disabled', 'maintenance']);

          const enabled = await put('enable', { host: 'node1@pool1', binary: 'cinder-volume' })();
          assertFields(enabled.json, ['disabled', 'status', 'host', 'service', 'binary', 'disabled_reason']);
          assert.deepEqual([enabled.json['disabled'], (await row()).disabled, (await row()).disabled_reason], [false, 0, null]);
          const disabled = await put('disable', { host: 'node1', service: 'cinder-scheduler' })();
          assertFields(disabled.json, ['disabled', 'status', 'host', 'service', 'binary']);
          assert.equal(disabled.json['binary'], '');

          await refused(t, 404, [
            ['invalid host', put('enable', { host: 'invalid_host', binary: 'cinder-volume' })],
            ['invalid binary', put('disable', { host: 'node1@pool1', binary: 'invalid_binary' })],
            ['unknown action', put('reboot', { host: 'node1' })],
          ]);
          await refused(t, 400, [
            ['null reason', put('disable-log-reason', { host: 'node1@pool1', binary: 'cinder-volume', disabled_reason: null })],
            ['blank reason', put('disable-log-reason', { host: 'node1@pool1', binary: 'cinder-volume', disabled_reason: '  ' })],
            ['no host', put('disable', { binary: 'cinder-volume' })],
            ['no binary', put('disable', { host: 'node1@pool1' })],
            ['bad host chars', put('disable', { host: 'node 1', binary: 'cinder-volume' })],
            ['unknown field', put('enable', { host: 'node1@pool1', binary: 'cinder-volume', force: true })],
            ['no body', put('enable', undefined)],
            ['freeze invalid host', put('freeze', { host: 'invalid_host' })],
            ['thaw invalid host', put('thaw', { host: 'invalid_host' })],
            ['freeze no host', put('freeze', {})],
            ['host and cluster (3.26)', () => t.call('admin', 'PUT', '/os-services/freeze', { host: 'node1@pool1', cluster: 'c1' }, '3.26')],
            ['unknown cluster (3.26)', () => t.call('admin', 'PUT', '/os-services/freeze', { cluster: 'c1' }, '3.26')],
            ['thaw unfrozen', put('thaw', { host: 'node1@pool1' })],
          ]);
          await refused(t, 403, [
            ['member disable', put('disable', { host: 'node1@pool1', binary: 'cinder-volume' }, 'a')],
            ['member freeze', put('freeze', { host: 'node1@pool1' }, 'a')],
          ]);

          const frozen = await put('freeze', { host: 'node1@pool1' })();
          assert.deepEqual([frozen.status, frozen.body], [200, undefined]);
          assert.equal((await row()).frozen, 1);
          await refused(t, 400, [['freeze twice', put('freeze', { host: 'node1@pool1' })]]);
          assert.equal((await put('thaw', { host: 'node1@pool1' })()).status, 200);
          assert.equal((await row()).frozen, 0);
          // Re-registering (a role restart) keeps the admin's disabled flag.
          await reg.register('cinder-scheduler', 'node1', 'nova');
          const sched = await t.store.db.selectFrom('services').selectAll().where('binary', '=', 'cinder-scheduler').executeTakeFirstOrThrow();
          assert.equal(sched.disabled, 1);
        } finally {
          await reg.stop();
        }
      });
    });

    it('registry heartbeats, lists live services and stops', async () => {
      await withApp(dialect, 'services_registry', async (t) => {
        let now = 1_000_000;
        const reg = new ServiceRegistry(t.store, { heartbeatIntervalMs: 60_000, serviceDownAfterMs: 10_000, now: () => now });
        await reg.register('cinder-volume', 'n@p', 'nova', { total_capacity_gb: 5 });
        const live = await reg.listUp('cinder-volume');
        assert.equal(live.length, 1);
        assert.deepEqual([live[0]!.host, live[0]!.capabilities, live[0]!.disabled], ['n@p', { total_capacity_gb: 5 }, false]);
        now += 20_000;
        assert.deepEqual(await reg.listUp('cinder-volume'), [], 'stale after serviceDownAfterMs');
        await reg.heartbeat();
        assert.equal((await reg.listUp('cinder-volume')).length, 1, 'a beat revives it');
        await reg.updateCapabilities('cinder-volume', 'n@p', { total_capacity_gb: 7 });
        assert.deepEqual((await reg.listUp('cinder-volume'))[0]!.capabilities, { total_capacity_gb: 7 });
        await reg.stop();
        assert.equal(await countRows(t.store, 'services'), 1, 'rows stay after stop');
      });
    });

    it('lists availability zones and extensions', async () => {
      await withApp(dialect, 'zones_ext', async (t) => {
        const none = await t.call('a', 'GET', '/os-availability-zone');
        assert.deepEqual(none.json, { availabilityZoneInfo: [{ zoneName: 'nova', zoneState: { available: true } }] });
        const reg = ServiceRegistry.fromConfig(t.store, t.config);
        try {
          await reg.register('cinder-volume', 'x@p', 'az2', {});
          await t.call('admin', 'PUT', '/os-services/disable', { host: 'x@p', binary: 'cinder-volume' });
          const zones = (await t.call('a', 'GET', '/os-availability-zone')).json['availabilityZoneInfo'] as { zoneName: string; zoneState: { available: boolean } }[];
          assert.deepEqual(zones.sort((a, b) => a.zoneName.localeCompare(b.zoneName)), [
            { zoneName: 'az2', zoneState: { available: false } },
            { zoneName: 'nova', zoneState: { available: true } },
          ]);
        } finally {
          await reg.stop();
        }
        const ext = await t.call('a', 'GET', '/extensions');
        assertFields(ext.json, ['extensions']);
        const list = ext.json['extensions'] as Record<string, unknown>[];
        for (const e of list) assertFields(e, ['updated', 'links', 'alias', 'name', 'description'], ['namespace'], String(e['alias']));
        assert.ok(list.some((e) => e['name'] === 'Hosts'), "tempest's api_extensions=all looks for Hosts");
        assert.equal(((await t.call('a', 'GET', '/extensions/os-quota-sets')).json['extension'] as Record<string, unknown>)['name'], 'Quotas');
        assertFault(await t.call('a', 'GET', '/extensions/nope'), 404, 'unknown extension');
      });
    });
  });
}
