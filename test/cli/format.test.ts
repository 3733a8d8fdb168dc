// Pure parts of the operator CLI: table/JSON output, argument → request
// mapping, and the client's parsing of Keystone and Cinder answers.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { authRequestBody, credentialsFromEnv, parseFault, pickVolumeEndpoint, Secret, versionAtLeast } from '../../src/cli/client.js';
import { attachedTo, availabilityZoneColumns, limitRows, quotaRows, volumeColumns } from '../../src/cli/columns.js';
import { formatValue, renderJson, renderList, renderShow, renderTable } from '../../src/cli/format.js';
import * as rq from '../../src/cli/requests.js';
import { settle } from '../../src/cli/wait.js';

const env = {
  OS_AUTH_URL: 'http://127.0.0.1:8776/identity/v3/',
  OS_USERNAME: 'admin',
  OS_PASSWORD: 's3cret ',
  OS_PROJECT_NAME: 'admin',
  OS_USER_DOMAIN_NAME: 'Default',
  OS_PROJECT_DOMAIN_NAME: 'Default',
};

describe('cli output', () => {
  it('renders a boxed table with multi-line cells', () => {
    assert.equal(
      renderTable(['ID', 'Attached to'], [['a', 'one\ntwo'], ['bbb', '']]),
      [
        '+-----+-------------+',
        '| ID  | Attached to |',
        '+-----+-------------+',
        '| a   | one         |',
        '|     | two         |',
        '| bbb |             |',
        '+-----+-------------+',
        '',
      ].join('\n'),
    );
  });

  it('an empty list is just the header', () => {
    assert.equal(renderTable(['ID'], []), '+----+\n| ID |\n+----+\n');
  });

  it('formats cells as openstackclient does', () => {
    assert.equal(formatValue(null), '');
    assert.equal(formatValue(false), 'false');
    assert.equal(formatValue(['a', 'b']), 'a, b');
    assert.equal(formatValue({ b: '2', a: 1 }), "a=1, b='2'");
  });

  it('never passes terminal escapes through', () => {
    assert.equal(formatValue('evil\u001b[2Jname'), 'evil?[2Jname');
    assert.ok(!renderShow({ 'k\u001b': 'v' }).includes('\u001b'));
  });

  it('shows a resource as sorted Field/Value rows, expanding the asked keys', () => {
    const out = renderShow({ links: [{ rel: 'self' }], status: 'attached', connection_info: { driver_volume_type: 'nbd', data: { uri: 'nbd+unix:///x' } }, id: 'a1' }, ['connection_info']);
    const fields = out
      .split('\n')
      .filter((l) => l.startsWith('| '))
      .map((l) => l.split('|')[1]!.trim());
    assert.deepEqual(fields, ['Field', 'connection_info.data.uri', 'connection_info.driver_volume_type', 'id', 'status']);
  });

  it('--json prints the raw body', () => {
    assert.deepEqual(JSON.parse(renderJson([{ id: 'x', size: 1 }])), [{ id: 'x', size: 1 }]);
  });

  it('volume list columns, with attachments as openstackclient words them', () => {
    const vol = {
      id: 'v1',
      name: 'data',
      status: 'in-use',
      size: 10,
      volume_type: 'fast',
      bootable: 'false',
      metadata: { k: 'v' },
      'os-vol-tenant-attr:tenant_id': 'p1',
      attachments: [
        { server_id: 's1', device: '/dev/vdb', host_name: 'h1' },
        { server_id: null, device: null, host_name: 'h2', attachment_id: 'a2' },
      ],
    };
    assert.equal(attachedTo(vol), 'Attached to s1 on /dev/vdb\nAttached to h2');
    assert.deepEqual(volumeColumns({}).map((c) => c.header), ['ID', 'Name', 'Status', 'Size', 'Attached to']);
    assert.deepEqual(
      volumeColumns({ long: true, allProjects: true }).map((c) => c.header),
      ['ID', 'Name', 'Status', 'Size', 'Type', 'Bootable', 'Attached to', 'Properties', 'Project'],
    );
    assert.match(renderList(volumeColumns({ long: true }), [vol]), /\| v1 \| data \| in-use \| 10 {3}\| fast \| false {4}\| Attached to s1 on \/dev\/vdb \| k='v' {6}\|/);
  });

  it('quota, limits and zones become rows', () => {
    assert.deepEqual(quotaRows({ id: 'p', volumes: { limit: 10, in_use: 2, reserved: 0 }, gigabytes: 1000 }), [
      ['gigabytes', '', '', '1000'],
      ['volumes', '2', '0', '10'],
    ]);
    assert.deepEqual(limitRows({ rate: [], absolute: { maxTotalVolumes: 10, maxTotalSnapshots: 5 } }), [
      ['maxTotalSnapshots', 5],
      ['maxTotalVolumes', 10],
    ]);
    const status = availabilityZoneColumns()[1]!;
    assert.equal(status.value({ zoneName: 'nova', zoneState: { available: true } }), 'available');
    assert.equal(status.value({ zoneName: 'nova', zoneState: { available: false } }), 'not available');
  });
});

describe('cli requests', () => {
  it('volume create maps the flags to Cinder fields and sends only those given', () => {
    assert.deepEqual(rq.volumeCreate({ size: 2, name: 'n', type: 'fast', property: ['a=b=c'] }), {
      method: 'POST',
      path: '/volumes',
      body: { volume: { size: 2, name: 'n', volume_type: 'fast', metadata: { a: 'b=c' } } },
    });
    const fromSnap = rq.volumeCreate({ snapshot: 's', group: 'g', description: 'd' });
    assert.deepEqual(fromSnap.body, { volume: { description: 'd', snapshot_id: 's', group_id: 'g' } });
    assert.equal(fromSnap.min, '3.13');
    assert.throws(() => rq.volumeCreate({ name: 'x' }), /--size is required/);
    assert.throws(() => rq.volumeCreate({ snapshot: 's', source: 'v' }), /at most one/);
  });

  it('volume delete, extend, revert and set', () => {
    assert.deepEqual(rq.volumeDelete('v', { cascade: true, force: true }), { method: 'DELETE', path: '/volumes/v', query: { cascade: 'true', force: 'true' }, min: '3.23', what: 'volume delete --force' });
    assert.deepEqual(rq.volumeDelete('v', {}), { method: 'DELETE', path: '/volumes/v', query: {} });
    assert.deepEqual(rq.volumeExtend('v', 5).body, { 'os-extend': { new_size: 5 } });
    assert.deepEqual(rq.volumeRevert('v', 's'), { method: 'POST', path: '/volumes/v/action', body: { revert: { snapshot_id: 's' } }, min: '3.40', what: 'volume revert' });
    assert.deepEqual(rq.volumeSet('v', { name: 'n', property: ['k=v'] }), [
      { method: 'PUT', path: '/volumes/v', body: { volume: { name: 'n' } } },
      { method: 'POST', path: '/volumes/v/metadata', body: { metadata: { k: 'v' } } },
    ]);
    assert.throws(() => rq.volumeSet('v', {}), /nothing to set/);
    assert.throws(() => rq.parseProperties(['novalue']), /KEY=VALUE/);
  });

  it('lists, with all_tenants and detail', () => {
    assert.deepEqual(rq.list('volumes', { detail: true, allProjects: true }), { method: 'GET', path: '/volumes/detail', query: { all_tenants: '1' } });
    assert.deepEqual(rq.list('attachments'), { method: 'GET', path: '/attachments', min: '3.27', what: 'attachments' });
    assert.deepEqual(rq.item('GET', 'group_snapshots', 'a/b'), { method: 'GET', path: '/group_snapshots/a%2Fb', min: '3.14', what: 'group snapshots' });
    assert.equal(rq.listKey('types'), 'volume_types');
    assert.deepEqual(rq.typeListQuery({ all: true }), { is_public: 'None' });
  });

  it('snapshots and types', () => {
    assert.deepEqual(rq.snapshotCreate({ volume: 'v', name: 's', force: true }).body, { snapshot: { volume_id: 'v', name: 's', force: true } });
    assert.deepEqual(rq.typeCreate({ name: 't', private: true, property: ['volume_backend_name=p1'] }).body, {
      volume_type: { name: 't', extra_specs: { volume_backend_name: 'p1' }, 'os-volume-type-access:is_public': false },
    });
  });

  it('groups, group types and group snapshots', () => {
    assert.deepEqual(rq.groupTypeCreate({ name: 'gt' }), { method: 'POST', path: '/group_types', body: { group_type: { name: 'gt', is_public: true } }, min: '3.11', what: 'group types' });
    assert.deepEqual(rq.groupCreate({ groupType: 'gt', volumeType: ['a', 'b'], name: 'g' }), {
      method: 'POST',
      path: '/groups',
      body: { group: { group_type: 'gt', volume_types: ['a', 'b'], name: 'g' } },
      min: '3.13',
      what: 'groups',
    });
    assert.throws(() => rq.groupCreate({ groupType: 'gt', volumeType: [] }), /--volume-type/);
    assert.deepEqual(rq.groupDelete('g', { deleteVolumes: true }), { method: 'POST', path: '/groups/g/action', body: { delete: { 'delete-volumes': true } }, min: '3.13', what: 'groups' });
    assert.deepEqual(rq.groupDelete('g', {}).body, { delete: { 'delete-volumes': false } });
    assert.deepEqual(rq.groupCreateFromSrc({ groupSnapshot: 'gs', name: 'n' }), {
      method: 'POST',
      path: '/groups/action',
      body: { 'create-from-src': { name: 'n', group_snapshot_id: 'gs' } },
      min: '3.14',
      what: 'group create-from-src',
    });
    assert.throws(() => rq.groupCreateFromSrc({ groupSnapshot: 'a', sourceGroup: 'b' }), /exactly one/);
    assert.throws(() => rq.groupCreateFromSrc({}), /exactly one/);
    assert.deepEqual(rq.groupSnapshotCreate({ group: 'g', name: 'n' }).body, { group_snapshot: { group_id: 'g', name: 'n' } });
  });

  it('attachments', () => {
    assert.deepEqual(rq.attachmentCreate({ volume: 'v', instance: 'i', connectorHost: 'h' }), {
      method: 'POST',
      path: '/attachments',
      body: { attachment: { volume_uuid: 'v', instance_uuid: 'i', connector: { host: 'h' } } },
      min: '3.27',
      what: 'attachments',
    });
    assert.equal(rq.attachmentCreate({ volume: 'v', mode: 'ro' }).min, '3.54');
    assert.throws(() => rq.attachmentCreate({ volume: 'v', mode: 'rx' }), /rw or ro/);
    assert.deepEqual(rq.attachmentComplete('a'), { method: 'POST', path: '/attachments/a/action', body: { 'os-complete': null }, min: '3.44', what: 'attachment complete' });
  });

  it('quota and services', () => {
    assert.deepEqual(rq.quotaShow('p'), { method: 'GET', path: '/os-quota-sets/p', query: { usage: 'true' } });
    assert.deepEqual(rq.serviceList({ service: 'cinder-volume' }).query, { binary: 'cinder-volume' });
  });
});

describe('cli client parsing', () => {
  it('reads the openrc variables, with defaults, and never shows the password', () => {
    const c = credentialsFromEnv(env);
    assert.equal(c.authUrl, 'http://127.0.0.1:8776/identity/v3');
    assert.equal(c.password.reveal(), 's3cret ');
    assert.equal(c.volumeApiVersion, '3.64');
    assert.equal(credentialsFromEnv({ ...env, OS_VOLUME_API_VERSION: '3' }).volumeApiVersion, '3.0');
    assert.ok(!JSON.stringify(c).includes('s3cret'));
    assert.ok(!inspect(c).includes('s3cret'));
    assert.ok(!`${c.password}`.includes('s3cret'));
    assert.throws(() => credentialsFromEnv({ OS_AUTH_URL: 'x' }), /OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME not set/);
    assert.throws(() => credentialsFromEnv({ ...env, OS_VOLUME_API_VERSION: 'v3' }), /3 or 3\.N/);
    assert.throws(() => credentialsFromEnv({ ...env, OS_AUTH_URL: 'localhost:5000' }), /not an http\(s\) URL/);
  });

  it('asks keystone for a project-scoped token by name', () => {
    assert.deepEqual(authRequestBody(credentialsFromEnv(env)), {
      auth: {
        identity: { methods: ['password'], password: { user: { name: 'admin', domain: { name: 'Default' }, password: 's3cret ' } } },
        scope: { project: { name: 'admin', domain: { name: 'Default' } } },
      },
    });
  });

  it('picks the public volumev3 endpoint', () => {
    const catalog = [
      { type: 'identity', endpoints: [{ interface: 'public', url: 'http://x/identity/v3', region: 'RegionOne' }] },
      {
        type: 'volumev3',
        endpoints: [
          { interface: 'internal', url: 'http://internal/v3/p', region: 'RegionOne' },
          { interface: 'public', url: 'http://x/v3/p/', region: 'RegionOne' },
        ],
      },
    ];
    assert.equal(pickVolumeEndpoint(catalog, null), 'http://x/v3/p');
    assert.equal(pickVolumeEndpoint(catalog, 'RegionTwo'), null);
    assert.equal(pickVolumeEndpoint([{ type: 'block-storage', endpoints: [{ interface: 'public', url: 'http://b/v3/p' }] }], null), 'http://b/v3/p');
    assert.equal(pickVolumeEndpoint('nope', null), null);
  });

  it('reads Cinder and Keystone fault bodies', () => {
    const f = parseFault(400, JSON.stringify({ badRequest: { code: 400, message: 'Invalid input received: size' } }));
    assert.equal(f.message, 'Invalid input received: size (HTTP 400)');
    assert.equal(parseFault(404, JSON.stringify({ itemNotFound: { code: 404, message: 'Volume x could not be found.' } })).message, 'Volume x could not be found. (HTTP 404)');
    assert.equal(parseFault(401, JSON.stringify({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } })).status, 401);
    assert.equal(parseFault(502, '<html>Bad Gateway</html>').message, '<html>Bad Gateway</html> (HTTP 502)');
  });

  it('compares microversions numerically', () => {
    assert.ok(versionAtLeast('3.64', '3.40'));
    assert.ok(!versionAtLeast('3.9', '3.11'));
    assert.ok(versionAtLeast('3.11', '3.11'));
  });

  it('Secret hides itself everywhere', () => {
    const s = new Secret('tok');
    assert.equal(String(s), '***');
    assert.equal(JSON.stringify({ s }), '{"s":"***"}');
    assert.equal(inspect(s), 'Secret(***)');
  });

  it('--wait knows final statuses', () => {
    assert.equal(settle('creating', 'ready'), null);
    assert.equal(settle('available', 'ready'), 'ok');
    assert.equal(settle('in-use', 'ready'), 'ok');
    assert.equal(settle('error_extending', 'ready'), 'failed');
    assert.equal(settle('deleting', 'gone'), null);
    assert.equal(settle('error_deleting', 'gone'), 'failed');
  });
});
