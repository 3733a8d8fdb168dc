// QoS specs, volume type encryption, os-hosts, pools, backend capabilities and
// user messages through the Cinder API on every store dialect: tempest's
// field sets, Cinder's status codes and policies, and refusals that write
// nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { recordUserMessage } from '../../src/services/messages.js';
import { ServiceRegistry } from '../../src/services/registry.js';
import { PoolRuntime } from '../../src/roles/volume/pool.js';
import { nowIso, type Store } from '../../src/store/db.js';
import { createLogger } from '../../src/util/log.js';
import { dialects, stopSharedPostgres } from '../harness/stores.js';
import { assertFault, assertFields, buildCinderApp, PROJ_A, PROJ_B, type CinderTestApp, type Reply, type Who } from './cinder-admin-harness.js';

after(stopSharedPostgres);

const QOS_FIELDS = ['id', 'name', 'consumer', 'specs'];
const ENC_SHOW = ['volume_type_id', 'encryption_id', 'key_size', 'provider', 'control_location', 'cipher', 'deleted', 'created_at', 'updated_at', 'deleted_at'];
const ENC_SPEC = ['key_size', 'provider', 'control_location', 'cipher'];
const HOST_FIELDS = ['service-status', 'service', 'zone', 'service-state', 'host_name', 'last-update'];
const RESOURCE_FIELDS = ['volume_count', 'total_volume_gb', 'total_snapshot_gb', 'project', 'host', 'snapshot_count'];
const CAP_FIELDS = ['pool_name', 'volume_backend_name', 'namespace', 'visibility', 'driver_version', 'vendor_name', 'properties', 'storage_protocol', 'replication_targets', 'display_name', 'description'];
const MSG_REQ = ['request_id', 'message_level', 'event_id', 'created_at', 'id', 'user_message'];
const MSG_OPT = ['links', 'guaranteed_until', 'resource_uuid', 'resource_type'];
const POOL_CAPS = ['pool_name', 'total_capacity_gb', 'free_capacity_gb', 'allocated_capacity_gb', 'reserved_percentage', 'QoS_support', 'thin_provisioning_support', 'volume_backend_name', 'vendor_name', 'storage_protocol', 'driver_version', 'timestamp'];

async function withApp(dialect: (typeof dialects)[number], label: string, fn: (t: CinderTestApp) => Promise<void>): Promise<void> {
  const t = await buildCinderApp(dialect, label);
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

/** Every table these routes write, to prove a refused request wrote nothing. */
async function tables(store: Store): Promise<string> {
  const out: Record<string, string[]> = {};
  for (const t of ['volume_types', 'qos_specs', 'volume_type_encryption', 'messages', 'volumes'] as const) {
    out[t] = (await store.db.selectFrom(t).selectAll().execute()).map((r) => JSON.stringify(r)).sort();
  }
  return JSON.stringify(out);
}

async function refused(t: CinderTestApp, status: number, cases: [string, () => Promise<Reply>][]): Promise<void> {
  for (const [what, send] of cases) {
    const before = await tables(t.store);
    assertFault(await send(), status, what);
    assert.equal(await tables(t.store), before, `${what} changed nothing`);
  }
}

async function newType(t: CinderTestApp, name: string, extra_specs: Record<string, string> = {}): Promise<string> {
  const res = await t.call('admin', 'POST', '/types', { volume_type: { name, extra_specs } });
  assert.equal(res.status, 200);
  return (res.json['volume_type'] as { id: string }).id;
}

async function addVolume(store: Store, v: { id: string; project: string; size: number; host: string | null }): Promise<void> {
  const type = await store.db.selectFrom('volume_types').select('id').where('name', '=', '__DEFAULT__').executeTakeFirstOrThrow();
  await store.db
    .insertInto('volumes')
    .values({ id: v.id, project_id: v.project, user_id: 'u', name: null, description: null, size: v.size, status: 'available', attach_status: 'detached', migration_status: null, volume_type_id: type.id, availability_zone: 'nova', host: v.host, bootable: 0, multiattach: 0, snapshot_id: null, source_volid: null, group_id: null, metadata: '{}', active_layer_id: null, error_reason: null, created_at: nowIso(), updated_at: null, launched_at: null, image_metadata: null })
    .execute();
}

const obj = (r: Reply, key: string) => r.json[key] as Record<string, unknown>;
const list = (r: Reply, key: string) => r.json[key] as Record<string, unknown>[];

for (const dialect of dialects) {
  describe(`admin extras on ${dialect}`, () => {
    it('manages QoS specs, their keys and their volume types', async () => {
      await withApp(dialect, 'qos', async (t) => {
        const created = await t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: ' gold ', consumer: 'front-end', read_iops_sec: '2000' } });
        assert.equal(created.status, 200);
        assertFields(created.json, ['qos_specs', 'links']);
        const gold = obj(created, 'qos_specs');
        assertFields(gold, QOS_FIELDS, [], 'qos_specs');
        assert.deepEqual([gold['name'], gold['consumer'], gold['specs']], ['gold', 'front-end', { read_iops_sec: '2000' }]);
        const id = gold['id'] as string;
        assert.deepEqual(list(created, 'links').map((l) => l['rel']), ['self', 'bookmark']);
        for (const consumer of ['back-end', 'both']) assert.equal(obj(await t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: consumer, consumer } }), 'qos_specs')['consumer'], consumer);
        assert.equal(obj(await t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: 'plain' } }), 'qos_specs')['consumer'], 'back-end', 'default consumer');

        const all = await t.call('admin', 'GET', '/qos-specs');
        assertFields(all.json, ['qos_specs']);
        for (const q of list(all, 'qos_specs')) assertFields(q, QOS_FIELDS, [], 'list item');
        assert.ok(list(all, 'qos_specs').some((q) => JSON.stringify(q) === JSON.stringify(gold)), 'the created body is listed as is');
        const paged = await t.call('admin', 'GET', '/qos-specs?limit=1&sort=name:asc');
        assert.deepEqual(list(paged, 'qos_specs').map((q) => q['name']), ['back-end']);
        assert.ok(paged.json['qos_specs_links'], 'a full page links the next');
        assert.deepEqual(list(await t.call('admin', 'GET', '/qos-specs?name=gold'), 'qos_specs').map((q) => q['id']), [id]);
        assertFields((await t.call('admin', 'GET', `/qos-specs/${id}`)).json, ['qos_specs', 'links']);

        const set = await t.call('admin', 'PUT', `/qos-specs/${id}`, { qos_specs: { iops_bytes: '500', consumer: 'both' } });
        assert.deepEqual([set.status, set.json], [200, { qos_specs: { iops_bytes: '500', consumer: 'both' } }]);
        const shown = obj(await t.call('admin', 'GET', `/qos-specs/${id}`), 'qos_specs');
        assert.deepEqual([shown['consumer'], shown['specs']], ['both', { read_iops_sec: '2000', iops_bytes: '500' }]);
        assert.equal((await t.call('admin', 'PUT', `/qos-specs/${id}/delete_keys`, { keys: ['iops_bytes'] })).status, 202);
        assert.deepEqual(obj(await t.call('admin', 'GET', `/qos-specs/${id}`), 'qos_specs')['specs'], { read_iops_sec: '2000' });

        const types = [await newType(t, 't1'), await newType(t, 't2'), await newType(t, 't3')];
        for (const ty of types) assert.equal((await t.call('admin', 'GET', `/qos-specs/${id}/associate?vol_type_id=${ty}`)).status, 202);
        assert.equal((await t.call('admin', 'GET', `/qos-specs/${id}/associate?vol_type_id=${types[0]}`)).status, 202, 'again is a no-op');
        const assoc = await t.call('admin', 'GET', `/qos-specs/${id}/associations`);
        assertFields(assoc.json, ['qos_associations']);
        for (const a of list(assoc, 'qos_associations')) assertFields(a, ['association_type', 'id', 'name'], [], 'association');
        assert.deepEqual(list(assoc, 'qos_associations').map((a) => [a['association_type'], a['name']]), [['volume_type', 't1'], ['volume_type', 't2'], ['volume_type', 't3']]);
        assert.equal(obj(await t.call('admin', 'GET', `/types/${types[0]}`), 'volume_type')['qos_specs_id'], id);
        assert.equal('qos_specs_id' in obj(await t.call('a', 'GET', `/types/${types[0]}`), 'volume_type'), false, 'admin-only field');
        const otherId = list(await t.call('admin', 'GET', '/qos-specs?name=plain'), 'qos_specs')[0]!['id'] as string;

        await refused(t, 400, [
          ['no name', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { consumer: 'both' } })],
          ['blank name', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: '   ' } })],
          ['bad consumer', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: 'x', consumer: 'sideways' } })],
          ['numeric value', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: 'x', iops: 5 } })],
          ['extra top key', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: 'x' }, more: 1 })],
          ['bad key', () => t.call('admin', 'PUT', `/qos-specs/${id}`, { qos_specs: { 'bad*key': '1' } })],
          ['bad consumer on set', () => t.call('admin', 'PUT', `/qos-specs/${id}`, { qos_specs: { consumer: 'up', a: '1' } })],
          ['keys not a list', () => t.call('admin', 'PUT', `/qos-specs/${id}/delete_keys`, { keys: 'read_iops_sec' })],
          ['no vol_type_id', () => t.call('admin', 'GET', `/qos-specs/${id}/associate`)],
          ['type holds other specs', () => t.call('admin', 'GET', `/qos-specs/${otherId}/associate?vol_type_id=${types[0]}`)],
          ['in use', () => t.call('admin', 'DELETE', `/qos-specs/${id}`)],
          ['bad force', () => t.call('admin', 'DELETE', `/qos-specs/${id}?force=perhaps`)],
        ]);
        await refused(t, 409, [['duplicate name', () => t.call('admin', 'POST', '/qos-specs', { qos_specs: { name: 'gold' } })]]);
        const nope = '00000000-0000-4000-8000-000000000000';
        await refused(t, 404, [
          ['show', () => t.call('admin', 'GET', `/qos-specs/${nope}`)],
          ['set', () => t.call('admin', 'PUT', `/qos-specs/${nope}`, { qos_specs: { a: '1' } })],
          ['missing key, all or nothing', () => t.call('admin', 'PUT', `/qos-specs/${id}/delete_keys`, { keys: ['read_iops_sec', 'nope'] })],
          ['associations', () => t.call('admin', 'GET', `/qos-specs/${nope}/associations`)],
          ['associate unknown type', () => t.call('admin', 'GET', `/qos-specs/${id}/associate?vol_type_id=${nope}`)],
          ['disassociate unknown specs', () => t.call('admin', 'GET', `/qos-specs/${nope}/disassociate?vol_type_id=${types[0]}`)],
          ['delete', () => t.call('admin', 'DELETE', `/qos-specs/${nope}`)],
        ]);
        await refused(t, 403, [
          ['member list', () => t.call('a', 'GET', '/qos-specs')],
          ['member create', () => t.call('a', 'POST', '/qos-specs', { qos_specs: { name: 'm' } })],
          ['member show', () => t.call('a', 'GET', `/qos-specs/${id}`)],
          ['member set', () => t.call('a', 'PUT', `/qos-specs/${id}`, { qos_specs: { a: '1' } })],
          ['member associate', () => t.call('a', 'GET', `/qos-specs/${id}/associate?vol_type_id=${types[0]}`)],
          ['member delete', () => t.call('a', 'DELETE', `/qos-specs/${id}?force=true`)],
        ]);

        assert.equal((await t.call('admin', 'GET', `/qos-specs/${id}/disassociate?vol_type_id=${types[0]}`)).status, 202);
        assert.equal(list(await t.call('admin', 'GET', `/qos-specs/${id}/associations`), 'qos_associations').length, 2);
        assert.equal((await t.call('admin', 'GET', `/qos-specs/${id}/disassociate_all`)).status, 202);
        assert.deepEqual(list(await t.call('admin', 'GET', `/qos-specs/${id}/associations`), 'qos_associations'), []);
        await t.call('admin', 'GET', `/qos-specs/${id}/associate?vol_type_id=${types[1]}`);
        assert.equal((await t.call('admin', 'DELETE', `/qos-specs/${id}?force=True`)).status, 202, 'force disassociates first');
        assertFault(await t.call('admin', 'GET', `/qos-specs/${id}`), 404, 'gone');
        assert.equal(obj(await t.call('admin', 'GET', `/types/${types[1]}`), 'volume_type')['qos_specs_id'], null);
        assert.equal((await t.call('admin', 'DELETE', `/qos-specs/${otherId}?force=False`)).status, 202, 'unused specs delete without force');
      });
    });

    it('stores volume type encryption and refuses volumes of encrypted types', async () => {
      await withApp(dialect, 'encryption', async (t) => {
        const ty = await newType(t, 'secret');
        const spec = { provider: 'LuksEncryptor', key_size: 256, cipher: 'aes-xts-plain64', control_location: 'front-end' };
        assert.deepEqual((await t.call('admin', 'GET', `/types/${ty}/encryption`)).json, {}, 'none yet');
        const created = await t.call('admin', 'POST', `/types/${ty}/encryption`, { encryption: { ...spec, key_size: '256' } });
        assert.equal(created.status, 200);
        assertFields(created.json, ['encryption']);
        assertFields(obj(created, 'encryption'), ['volume_type_id', 'encryption_id'], ENC_SPEC, 'created');
        assert.deepEqual({ ...obj(created, 'encryption'), encryption_id: 'x' }, { ...spec, volume_type_id: ty, encryption_id: 'x' });
        const shown = await t.call('admin', 'GET', `/types/${ty}/encryption`);
        assertFields(shown.json, [], ENC_SHOW, 'show');
        for (const [k, v] of Object.entries(spec)) assert.equal(shown.json[k], v, k);
        assert.equal(shown.json['deleted'], false);

        const update = { key_size: 128, provider: 'SomeProvider', cipher: 'aes-xts-plain64', control_location: 'back-end' };
        const upd = await t.call('admin', 'PUT', `/types/${ty}/encryption/provider`, { encryption: update });
        assert.deepEqual([upd.status, upd.json], [200, { encryption: update }]);
        assertFields(obj(upd, 'encryption'), [], ENC_SPEC, 'updated');
        const after = (await t.call('admin', 'GET', `/types/${ty}/encryption`)).json;
        for (const [k, v] of Object.entries(update)) assert.equal(after[k], v, k);
        assert.deepEqual((await t.call('admin', 'GET', `/types/${ty}/encryption/cipher`)).json, { cipher: 'aes-xts-plain64' });

        const vol = await t.call('a', 'POST', '/volumes', { volume: { size: 1, volume_type: 'secret' } });
        assertFault(vol, 400, 'encrypted type');
        assert.match(JSON.stringify(vol.json), /encrypted volume types are not supported by this deployment/);
        const plain = await newType(t, 'used');
        assert.equal((await t.call('a', 'POST', '/volumes', { volume: { size: 1, volume_type: 'used' } })).status, 202);
        const post = (type: string, body: unknown, who: Who = 'admin') => () => t.call(who, 'POST', `/types/${type}/encryption`, body);
        const nope = '00000000-0000-4000-8000-000000000000';
        const bare = await newType(t, 'bare');
        await refused(t, 400, [
          ['exists', post(ty, { encryption: spec })],
          ['type in use', post(plain, { encryption: spec })],
          ['no provider', post(ty, { encryption: { control_location: 'front-end' } })],
          ['bad location', post(ty, { encryption: { ...spec, control_location: 'middle' } })],
          ['bad key_size', post(ty, { encryption: { ...spec, key_size: 'big' } })],
          ['negative key_size', post(ty, { encryption: { ...spec, key_size: -1 } })],
          ['unknown field', post(ty, { encryption: { ...spec, colour: 'red' } })],
          ['no wrapper', post(ty, spec)],
          ['update in use', () => t.call('admin', 'PUT', `/types/${plain}/encryption/provider`, { encryption: { provider: 'p' } })],
          ['delete in use', () => t.call('admin', 'DELETE', `/types/${plain}/encryption/provider`)],
        ]);
        await refused(t, 404, [
          ['unknown type', post(nope, { encryption: spec })],
          ['show unknown type', () => t.call('admin', 'GET', `/types/${nope}/encryption`)],
          ['unknown key', () => t.call('admin', 'GET', `/types/${ty}/encryption/colour`)],
          ['update without specs', () => t.call('admin', 'PUT', `/types/${bare}/encryption/provider`, { encryption: { provider: 'p' } })],
          ['delete without specs', () => t.call('admin', 'DELETE', `/types/${nope}/encryption/provider`)],
        ]);
        await refused(t, 403, [
          ['member show', () => t.call('a', 'GET', `/types/${ty}/encryption`)],
          ['member create', post(ty, { encryption: spec }, 'a')],
          ['member delete', () => t.call('a', 'DELETE', `/types/${ty}/encryption/provider`)],
        ]);
        assert.equal((await t.call('admin', 'DELETE', `/types/${ty}/encryption/provider`)).status, 202);
        assert.deepEqual((await t.call('admin', 'GET', `/types/${ty}/encryption`)).json, {});
        assert.equal((await t.call('a', 'POST', '/volumes', { volume: { size: 1, volume_type: 'secret' } })).status, 202, 'plain again');
        const gone = await newType(t, 'gone');
        await t.call('admin', 'POST', `/types/${gone}/encryption`, { encryption: spec });
        assert.equal((await t.call('admin', 'DELETE', `/types/${gone}`)).status, 202);
        assert.equal((await t.store.db.selectFrom('volume_type_encryption').select('volume_type_id').where('volume_type_id', '=', gone).execute()).length, 0, 'deleted with its type');
      });
    });

    it('lists hosts and shows a volume host usage', async () => {
      await withApp(dialect, 'hosts', async (t) => {
        const reg = ServiceRegistry.fromConfig(t.store, t.config);
        await reg.register('cinder-volume', 'node1@pool1', 'nova', {});
        await reg.register('cinder-scheduler', 'node1', 'nova');
        await reg.register('cinder-backup', 'node3', 'az2');
        const stale = new ServiceRegistry(t.store, { heartbeatIntervalMs: 60_000, serviceDownAfterMs: 60_000, now: () => Date.now() - 120_000 });
        await stale.register('cinder-volume', 'node2@pool2', 'az2');
        await stale.stop();
        await t.store.db.updateTable('services').set({ disabled: 1 }).where('host', '=', 'node3').execute();
        await reg.stop();
        await addVolume(t.store, { id: 'v1', project: PROJ_A, size: 2, host: 'node1@pool1#pool1' });
        await addVolume(t.store, { id: 'v2', project: PROJ_A, size: 3, host: 'node1@pool1#pool1' });
        await addVolume(t.store, { id: 'v3', project: PROJ_B, size: 1, host: 'node1@pool1#pool1' });
        await addVolume(t.store, { id: 'v4', project: PROJ_B, size: 7, host: 'node2@pool2#pool2' });
        await t.store.db.insertInto('snapshots').values({ id: 's1', project_id: PROJ_A, user_id: 'u', volume_id: 'v1', name: null, description: null, size: 2, status: 'available', progress: '100%', layer_id: null, group_snapshot_id: null, metadata: '{}', created_at: nowIso(), updated_at: null }).execute();

        const hosts = await t.call('admin', 'GET', '/os-hosts');
        assert.equal(hosts.status, 200);
        assertFields(hosts.json, ['hosts']);
        for (const h of list(hosts, 'hosts')) assertFields(h, HOST_FIELDS, [], 'host');
        const byName = Object.fromEntries(list(hosts, 'hosts').map((h) => [h['host_name'], h]));
        assert.deepEqual(Object.keys(byName).sort(), ['node1', 'node1@pool1', 'node2@pool2'], 'disabled services are left out');
        assert.deepEqual([byName['node1@pool1']!['service'], byName['node1@pool1']!['service-status'], byName['node2@pool2']!['service-status']], ['cinder-volume', 'available', 'unavailable']);
        assert.deepEqual(list(await t.call('admin', 'GET', '/os-hosts?zone=az2'), 'hosts').map((h) => h['host_name']), ['node2@pool2']);

        const shown = await t.call('admin', 'GET', '/os-hosts/node1@pool1');
        assert.equal(shown.status, 200);
        assertFields(shown.json, ['host']);
        const res = list(shown, 'host').map((r) => {
          assertFields(r, ['resource']);
          assertFields(r['resource'], RESOURCE_FIELDS, [], 'resource');
          const x = r['resource'] as Record<string, string>;
          return [x['project'], x['volume_count'], x['total_volume_gb'], x['snapshot_count'], x['total_snapshot_gb']];
        });
        assert.deepEqual(res, [['(total)', '3', '6', '1', '2'], [PROJ_A, '2', '5', '1', '2'], [PROJ_B, '1', '1', '0', '0']]);
        await refused(t, 404, [
          ['unknown host', () => t.call('admin', 'GET', '/os-hosts/nowhere@x')],
          ['not a volume host', () => t.call('admin', 'GET', '/os-hosts/node3')],
        ]);
        await refused(t, 403, [
          ['member list', () => t.call('a', 'GET', '/os-hosts')],
          ['member show', () => t.call('a', 'GET', '/os-hosts/node1@pool1')],
        ]);
      });
    });

    it('reports pools and backend capabilities from what the volume role registers', async () => {
      await withApp(dialect, 'pools', async (t) => {
        const dir = mkdtempSync(join(tmpdir(), 'bulwark-pool-'));
        try {
          mkdirSync(join(dir, 'layers'));
          writeFileSync(join(dir, 'layers', 'l1.qcow2'), Buffer.alloc(1 << 20, 7));
          const runtime = new PoolRuntime({ store: t.store, pool: { name: 'fast', path: dir, capacityGiB: 10, cache: 'auto' }, hostname: 'node1', qsdBinary: 'qemu-storage-daemon', qmpTimeoutMs: 1000, nbdTcp: { host: '127.0.0.1', port: 0 }, log: createLogger('test', 'silent') });
          const caps = runtime.capabilities();
          const pool = (caps['pools'] as Record<string, unknown>[])[0]!;
          assert.deepEqual([pool['pool_name'], pool['total_capacity_gb'], pool['allocated_capacity_gb'], pool['free_capacity_gb']], ['fast', 10, 0.01, 9.99], 'usage is what the files hold');
          const reg = ServiceRegistry.fromConfig(t.store, t.config);
          await reg.register('cinder-volume', runtime.serviceHost, 'nova', caps);
          await reg.register('cinder-volume', 'node1@frozen', 'nova', { ...caps, pools: [{ ...pool, pool_name: 'frozen' }] });
          await reg.stop();
          await t.store.db.updateTable('services').set({ frozen: 1 }).where('host', '=', 'node1@frozen').execute();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        const brief = await t.call('admin', 'GET', '/scheduler-stats/get_pools');
        assert.deepEqual([brief.status, brief.json], [200, { pools: [{ name: 'node1@fast#fast' }] }], 'frozen backends are not offered');
        const detail = await t.call('admin', 'GET', '/scheduler-stats/get_pools?detail=True');
        const p = list(detail, 'pools')[0]!;
        assertFields(p, ['name', 'capabilities']);
        const c = p['capabilities'] as Record<string, unknown>;
        for (const k of POOL_CAPS) assert.ok(k in c, `pool capability ${k}`);
        assert.deepEqual([c['vendor_name'], c['volume_backend_name'], c['storage_protocol'], c['driver_version'], c['reserved_percentage'], c['QoS_support']], ['Bulwark', 'fast', 'nbd', '1.0', 0, false]);
        assert.match(String(c['timestamp']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);

        const ty = await newType(t, 'elsewhere', { vendor_name: 'Other' });
        const names = async (q: string, v: string) => list(await t.call('admin', 'GET', `/scheduler-stats/get_pools${q}`, undefined, v), 'pools').map((x) => x['name']);
        assert.deepEqual(await names('?name=nope', '3.27'), ['node1@fast#fast'], 'no filters before 3.28');
        assert.deepEqual(await names('?name=nope', '3.28'), []);
        assert.deepEqual(await names('?storage_protocol=nbd', '3.28'), ['node1@fast#fast'], 'capability filters before 3.31');
        assert.deepEqual(await names(`?volume_type=${ty}`, '3.35'), [], 'the type asks for another vendor');
        assert.deepEqual(await names('?volume_type=__DEFAULT__', '3.35'), ['node1@fast#fast']);
        await refused(t, 400, [
          ['unknown filter', () => t.call('admin', 'GET', '/scheduler-stats/get_pools?storage_protocol=nbd', undefined, '3.31')],
          ['bad detail', () => t.call('admin', 'GET', '/scheduler-stats/get_pools?detail=lots')],
        ]);
        assertFault(await t.call('admin', 'GET', '/scheduler-stats/get_pools?volume_type=nope', undefined, '3.35'), 404, 'unknown type');

        const cap = await t.call('admin', 'GET', '/capabilities/node1@fast');
        assert.equal(cap.status, 200);
        assertFields(cap.json, CAP_FIELDS, [], 'capabilities');
        assert.equal(cap.json['namespace'], 'OS::Storage::Capabilities::node1@fast');
        assert.deepEqual(['vendor_name', 'volume_backend_name', 'storage_protocol'].map((k) => cap.json[k]), ['vendor_name', 'volume_backend_name', 'storage_protocol'].map((k) => c[k]), 'same as get_pools');
        for (const prop of Object.values(obj(cap, 'properties'))) assertFields(prop, ['type', 'description', 'title'], [], 'property');
        assertFault(await t.call('admin', 'GET', '/capabilities/node9@x'), 404, 'unknown backend');
        await refused(t, 403, [
          ['member pools', () => t.call('a', 'GET', '/scheduler-stats/get_pools')],
          ['member capabilities', () => t.call('a', 'GET', '/capabilities/node1@fast')],
        ]);
      });
    });

    it('records user messages and serves them to their project', async () => {
      await withApp(dialect, 'messages', async (t) => {
        const base = Date.now();
        const vol = '3e0c46d5-6b0b-4d1f-9d3f-3c7d3a0e0a01';
        const rec = (project: string, i: number, uuid: string | null = vol) =>
          t.store.transaction((trx) => recordUserMessage(trx, { projectId: project, resourceType: 'VOLUME', resourceUuid: uuid, action: 'SCHEDULE_ALLOCATE_VOLUME', detail: i === 2 ? 'UNKNOWN_ERROR' : 'NO_BACKEND_AVAILABLE', now: base + i * 1000 }));
        await t.store.transaction((trx) => recordUserMessage(trx, { projectId: PROJ_A, action: 'ATTACH_VOLUME', now: base - 40 * 86_400_000 }));
        const m0 = await rec(PROJ_A, 0);
        assert.deepEqual([m0.event_id, m0.user_message], ['VOLUME_VOLUME_001_003', 'schedule allocate volume:Could not find any available weighted backend.']);
        await rec(PROJ_A, 1, null);
        await rec(PROJ_A, 2);
        await rec(PROJ_B, 3);
        assert.equal((await t.store.db.selectFrom('messages').select('id').execute()).length, 4, 'the expired message was reaped');

        assertFault(await t.call('a', 'GET', '/messages', undefined, '3.0'), 404, 'before 3.3');
        const mine = await t.call('a', 'GET', '/messages', undefined, '3.3');
        assert.equal(mine.status, 200);
        assertFields(mine.json, ['messages']);
        for (const m of list(mine, 'messages')) assertFields(m, MSG_REQ, MSG_OPT, 'message');
        assert.equal(list(mine, 'messages').length, 3, 'only its own project');
        const noUuid = list(mine, 'messages').find((m) => !('resource_uuid' in m));
        assert.ok(noUuid, 'resource_uuid is left out when empty');
        assert.equal(list(await t.call('admin', 'GET', '/messages', undefined, '3.3'), 'messages').length, 4, 'admin sees every project');
        assert.equal(list(await t.call('reader', 'GET', '/messages', undefined, '3.3'), 'messages').length, 3);

        const page = await t.call('a', 'GET', '/messages?limit=2&sort=created_at:asc', undefined, '3.5');
        assert.deepEqual(list(page, 'messages').map((m) => m['id']), [m0.id, list(mine, 'messages')[1]!['id']]);
        assert.ok(page.json['messages_links']);
        const filtered = await t.call('a', 'GET', '/messages?event_id=VOLUME_VOLUME_001_001', undefined, '3.5');
        assert.deepEqual(list(filtered, 'messages').map((m) => m['user_message']), ['schedule allocate volume:An unknown error occurred.']);
        assert.equal(list(await t.call('a', 'GET', '/messages?event_id=nope', undefined, '3.4'), 'messages').length, 3, 'filters from 3.5');
        assertFault(await t.call('a', 'GET', '/messages?colour=red', undefined, '3.34'), 400, 'unknown filter');

        const one = await t.call('reader', 'GET', `/messages/${m0.id}`, undefined, '3.3');
        assertFields(one.json, ['message']);
        assertFields(obj(one, 'message'), MSG_REQ, MSG_OPT, 'shown');
        assert.deepEqual([obj(one, 'message')['resource_type'], obj(one, 'message')['resource_uuid'], obj(one, 'message')['message_level']], ['VOLUME', vol, 'ERROR']);
        await refused(t, 404, [
          ['other project', () => t.call('b', 'GET', `/messages/${m0.id}`, undefined, '3.3')],
          ['other project delete', () => t.call('b', 'DELETE', `/messages/${m0.id}`, undefined, '3.3')],
          ['unknown', () => t.call('a', 'GET', '/messages/00000000-0000-4000-8000-000000000000', undefined, '3.3')],
        ]);
        await refused(t, 403, [['reader delete', () => t.call('reader', 'DELETE', `/messages/${m0.id}`, undefined, '3.3')]]);
        const del = await t.call('a', 'DELETE', `/messages/${m0.id}`, undefined, '3.3');
        assert.deepEqual([del.status, del.body], [204, undefined]);
        assertFault(await t.call('a', 'GET', `/messages/${m0.id}`, undefined, '3.3'), 404, 'deleted');
      });
    });
  });
}
