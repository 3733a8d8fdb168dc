// Every volume, volume-action and attachment route, given bad input, answers the
// right 4xx in Cinder's fault shape and leaves nothing behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deploy, type ApiResponse, type Deployment } from '../harness/aio.js';
import { createSnapshot, createVolume } from './helpers.js';

const UNKNOWN = '00000000-0000-4000-8000-000000000000';
const FAULTS: Record<number, string> = { 400: 'badRequest', 403: 'forbidden', 404: 'itemNotFound', 406: 'notAcceptable', 413: 'overLimit' };

function expectFault(res: ApiResponse, status: number, what: string): void {
  assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
  const fault = (res.body as Record<string, { code: number; message: string }>)[FAULTS[status]!];
  assert.ok(fault, `${what}: fault body ${JSON.stringify(res.body)}`);
  assert.equal(fault.code, status);
  assert.ok(fault.message.length > 0);
}

describe('bad input on volume routes', () => {
  let d: Deployment;
  let vol: string;
  let otherVol: string;

  async function counts(): Promise<{ volumes: number; jobs: number; attachments: number; snapshots: number }> {
    const db = d.roles.store.db;
    const n = async (t: 'volumes' | 'jobs' | 'attachments' | 'snapshots') => Number((await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    return { volumes: await n('volumes'), jobs: await n('jobs'), attachments: await n('attachments'), snapshots: await n('snapshots') };
  }

  before(async () => {
    d = await deploy();
    vol = await createVolume(d.member, { size: 1, name: 'mine' });
    otherVol = await createVolume(d.other, { size: 1, name: 'theirs' });
  });
  after(async () => d?.stop());

  it('create: missing or wrong fields, unknown sources, other projects, quota', async () => {
    const s = d.member;
    const before = await counts();
    const cases: [unknown, number, string][] = [
      [undefined, 400, 'no body'],
      ['not json', 400, 'malformed JSON'],
      [{}, 400, 'no volume key'],
      [{ volume: {} }, 400, 'no size and no source'],
      [{ volume: { size: 'big' } }, 400, 'size not a number'],
      [{ volume: { size: 0 } }, 400, 'size zero'],
      [{ volume: { size: -1 } }, 400, 'negative size'],
      [{ volume: { size: 1.5 } }, 400, 'fractional size'],
      [{ volume: { size: 1, name: 5 } }, 400, 'name not a string'],
      [{ volume: { size: 1, colour: 'red' } }, 400, 'unknown field'],
      [{ volume: { size: 1, metadata: { k: 1 } } }, 400, 'metadata value not a string'],
      [{ volume: { size: 1, volume_type: 'nope' } }, 404, 'unknown type'],
      [{ volume: { size: 1, availability_zone: 'mars' } }, 400, 'unknown zone'],
      [{ volume: { snapshot_id: UNKNOWN } }, 404, 'unknown snapshot'],
      [{ volume: { source_volid: UNKNOWN } }, 404, 'unknown source volume'],
      [{ volume: { source_volid: otherVol } }, 404, "another project's volume"],
      [{ volume: { source_volid: 'not-a-uuid' } }, 400, 'source not a uuid'],
      [{ volume: { size: 1, group_id: UNKNOWN } }, 404, 'unknown group'],
      [{ volume: { size: 100_000 } }, 413, 'over the gigabytes quota'],
    ];
    for (const [body, status, what] of cases) expectFault(await s.call('POST', '/volumes', body), status, what);
    expectFault(await s.call('POST', '/volumes', { volume: { source_volid: vol, size: 0 } }), 400, 'clone smaller than source');
    assert.deepEqual(await counts(), before, 'refused creates leave nothing behind');
  });

  it('show, update, delete, metadata: unknown ids, other projects, bad bodies, wrong states', async () => {
    const s = d.member;
    const before = await counts();
    expectFault(await s.call('GET', `/volumes/${UNKNOWN}`), 404, 'show unknown');
    expectFault(await s.call('GET', `/volumes/${otherVol}`), 404, "show another project's");
    expectFault(await s.call('PUT', `/volumes/${otherVol}`, { volume: { name: 'x' } }), 404, "update another project's");
    expectFault(await s.call('PUT', `/volumes/${vol}`, { volume: {} }), 400, 'update with nothing');
    expectFault(await s.call('PUT', `/volumes/${vol}`, { volume: { size: 5 } }), 400, 'update a read-only field');
    expectFault(await s.call('DELETE', `/volumes/${UNKNOWN}`), 404, 'delete unknown');
    expectFault(await s.call('DELETE', `/volumes/${otherVol}`), 404, "delete another project's");
    expectFault(await s.call('DELETE', `/volumes/${vol}?cascade=maybe`), 400, 'cascade not a boolean');
    expectFault(await s.call('GET', `/volumes/${vol}/metadata/missing`), 404, 'unknown metadata key');
    expectFault(await s.call('PUT', `/volumes/${vol}/metadata/a`, { meta: { b: '1' } }), 400, 'metadata key mismatch');
    expectFault(await s.call('POST', `/volumes/${vol}/metadata`, { metadata: 'x' }), 400, 'metadata not an object');
    expectFault(await s.call('GET', '/volumes?sort=name:sideways'), 400, 'bad sort direction');
    expectFault(await s.call('GET', '/volumes?sort=colour:asc'), 400, 'bad sort key');
    expectFault(await s.call('GET', '/volumes?limit=-1'), 400, 'bad limit');
    expectFault(await s.call('GET', `/volumes?marker=${UNKNOWN}`), 404, 'unknown marker');
    expectFault(await s.call('GET', '/volumes?colour=red'), 400, 'unknown filter (>= 3.34)');
    expectFault(await s.withVersion('3.99').call('GET', '/volumes'), 406, 'microversion too new');
    expectFault(await s.call('GET', '/volumes', undefined, d.other.projectId), 400, "another project's URL");
    const snap = await createSnapshot(s, vol);
    expectFault(await s.call('DELETE', `/volumes/${vol}`), 400, 'delete with snapshots and no cascade');
    assert.equal((await s.call<{ volume: { status: string } }>('GET', `/volumes/${vol}`)).body.volume.status, 'available', 'a refused delete changes nothing');
    await s.call('DELETE', `/snapshots/${snap}`);
    await s.waitFor(`/snapshots/${snap}`, 'snapshot', ['deleted']);
    const after = await counts();
    assert.equal(after.volumes, before.volumes);
    assert.equal(after.attachments, before.attachments);
  });

  it('actions: unknown action, bad arguments, wrong state, admin-only', async () => {
    const s = d.member;
    const act = (body: unknown, id = vol) => s.call('POST', `/volumes/${id}/action`, body);
    expectFault(await act({}), 400, 'empty action');
    expectFault(await act({ 'os-fly': {} }), 400, 'unknown action');
    expectFault(await act({ 'os-extend': {} }), 400, 'extend without size');
    expectFault(await act({ 'os-extend': { new_size: 'x' } }), 400, 'extend size not a number');
    expectFault(await act({ 'os-extend': { new_size: 1 } }), 400, 'extend to the same size');
    expectFault(await act({ 'os-extend': { new_size: 100_000 } }), 413, 'extend over quota');
    expectFault(await act({ 'os-extend': { new_size: 2 } }, otherVol), 404, "extend another project's");
    const conn = await act({ 'os-initialize_connection': { connector: { host: 'testhost' } } });
    assert.equal(conn.status, 200);
    expectFault(await act({ 'os-extend': { new_size: 2 } }), 400, 'extend a connected volume');
    assert.equal((await act({ 'os-terminate_connection': { connector: { host: 'testhost' } } })).status, 202);
    expectFault(await act({ 'os-reset_status': { status: 'available' } }), 403, 'reset status is admin-only');
    expectFault(await act({ 'os-force_delete': {} }), 403, 'force delete is admin-only');
    expectFault(await d.admin.call('POST', `/volumes/${vol}/action`, { 'os-reset_status': { status: 'sleeping' } }), 400, 'reset to an unknown status');
    expectFault(await act({ revert: { snapshot_id: UNKNOWN } }), 400, 'revert to a snapshot of nothing');
    expectFault(await s.withVersion('3.39').call('POST', `/volumes/${vol}/action`, { revert: { snapshot_id: UNKNOWN } }), 400, 'revert before 3.40');
    expectFault(await act({ 'os-set_bootable': { bootable: 'perhaps' } }), 400, 'bootable not a boolean');
    expectFault(await act({ 'os-retype': { new_type: 'nope' } }), 404, 'retype to an unknown type');
    expectFault(await act({ 'os-initialize_connection': {} }), 400, 'connection without connector');
    expectFault(await act({ 'os-attach': { mountpoint: '/dev/vdb' } }), 400, 'attach without instance or host');
    expectFault(await act({ 'os-detach': {} }), 400, 'detach a volume that is not attached');
    expectFault(await act({ 'os-begin_detaching': {} }), 400, 'begin detaching an available volume');
    const v = (await s.call<{ volume: { status: string } }>('GET', `/volumes/${vol}`)).body.volume;
    assert.equal(v.status, 'available', 'refused actions leave the volume as it was');
  });

  it('attachments: unknown volume, other project, bad connector, old microversion', async () => {
    const s = d.member;
    const before = await counts();
    expectFault(await s.withVersion('3.26').call('GET', '/attachments'), 404, 'attachments before 3.27');
    expectFault(await s.call('POST', '/attachments', {}), 400, 'no attachment key');
    expectFault(await s.call('POST', '/attachments', { attachment: { volume_uuid: UNKNOWN } }), 404, 'unknown volume');
    expectFault(await s.call('POST', '/attachments', { attachment: { volume_uuid: otherVol } }), 404, "another project's volume");
    expectFault(await s.call('POST', '/attachments', { attachment: { volume_uuid: vol, connector: 'x' } }), 400, 'connector not an object');
    expectFault(await s.call('POST', '/attachments', { attachment: { volume_uuid: vol, mode: 'rx' } }), 400, 'bad mode');
    expectFault(await s.call('GET', `/attachments/${UNKNOWN}`), 404, 'show unknown attachment');
    expectFault(await s.call('DELETE', `/attachments/${UNKNOWN}`), 404, 'delete unknown attachment');
    expectFault(await s.call('PUT', `/attachments/${UNKNOWN}`, { attachment: { connector: {} } }), 404, 'update unknown attachment');
    assert.deepEqual(await counts(), before, 'refused attachment calls leave nothing behind');
  });
});
