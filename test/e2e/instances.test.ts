// Servers on Bulwark volumes, end to end: real QEMU (TCG) booting the test
// guest from volumes made from images, attached over NBD by the compute role;
// quiesce/unquiesce through the API checked against the guest agent itself;
// the freeze watchdog thawing a guest nobody thaws; stop/start/delete.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deploy, type Deployment } from '../harness/aio.js';
import { guestUnsupportedReason } from '../harness/guest.js';
import { bootServer, guestFreezeStatus, serverAction, uploadBootImages, waitServer, type BootImages, type BootedServer } from './compute-helpers.js';

const unsupported = guestUnsupportedReason();

describe('servers on Bulwark volumes', { skip: unsupported ?? false, timeout: 600_000 }, () => {
  let d: Deployment;
  let work: string;
  let images: BootImages;
  let server: BootedServer;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-instances-'));
    d = await deploy({ roles: ['api', 'scheduler', 'volume', 'compute'] });
    images = await uploadBootImages(d.member, work);
    server = await bootServer(d, d.member, images, 'vm-a');
  });

  after(async () => {
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('shows the server ACTIVE on its volumes, and the volumes in-use by it', async () => {
    const shown = await d.member.request<{ server: Record<string, unknown> }>('GET', `/compute/v2.1/servers/${server.id}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.server['status'], 'ACTIVE');
    assert.equal(shown.body.server['OS-EXT-STS:power_state'], 1);
    assert.deepEqual(shown.body.server['os-extended-volumes:volumes_attached'], [{ id: server.bootVolumeId }, { id: server.dataVolumeId }]);
    const vol = await d.member.call<{ volume: { status: string; attachments: { server_id: string; device: string }[] } }>('GET', `/volumes/${server.dataVolumeId}`);
    assert.equal(vol.body.volume.status, 'in-use');
    assert.equal(vol.body.volume.attachments[0]?.server_id, server.id);
    assert.equal(vol.body.volume.attachments[0]?.device, '/dev/vdb');
    const list = await d.member.request<{ servers: { id: string }[] }>('GET', '/compute/v2.1/servers/detail');
    assert.deepEqual(list.body.servers.map((x) => x.id), [server.id]);
    const atts = await d.member.request<{ volumeAttachments: { volumeId: string; device: string }[] }>('GET', `/compute/v2.1/servers/${server.id}/os-volume_attachments`);
    assert.deepEqual(atts.body.volumeAttachments.map((a) => [a.volumeId, a.device]), [[server.bootVolumeId, '/dev/vda'], [server.dataVolumeId, '/dev/vdb']]);
  });

  it('another project sees neither the server nor its quiesce state', async () => {
    assert.equal((await d.other.request('GET', `/compute/v2.1/servers/${server.id}`)).status, 404);
    assert.equal((await serverAction(d.other, server.id, { quiesce: {} })).status, 404);
    const list = await d.other.request<{ servers: unknown[] }>('GET', '/compute/v2.1/servers');
    assert.deepEqual(list.body.servers, []);
  });

  it('quiesce freezes the guest and unquiesce thaws it (synchronous)', async () => {
    const frozen = await serverAction(d.member, server.id, { quiesce: { deadline_seconds: 60 } });
    assert.equal(frozen.status, 200, JSON.stringify(frozen.body));
    assert.equal((frozen.body['quiesce'] as Record<string, unknown>)['state'], 'frozen');
    assert.equal(await guestFreezeStatus(d, server.id), 'frozen');
    // A frozen server refuses power actions.
    assert.equal((await serverAction(d.member, server.id, { 'os-stop': null })).status, 409);
    const thawed = await serverAction(d.member, server.id, { unquiesce: {} });
    assert.equal(thawed.status, 200, JSON.stringify(thawed.body));
    assert.equal((thawed.body['quiesce'] as Record<string, unknown>)['state'], 'thawed');
    assert.equal(await guestFreezeStatus(d, server.id), 'thawed');
  });

  it('an asynchronous quiesce is polled; the watchdog thaws at the deadline when nobody does', async () => {
    const started = await serverAction(d.member, server.id, { quiesce: { deadline_seconds: 3, async: true } });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    let state = '';
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const st = await d.member.request<{ quiesce: { state: string } }>('GET', `/compute/v2.1/servers/${server.id}/os-quiesce`);
      state = st.body.quiesce.state;
      if (state === 'frozen') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(state, 'frozen');
    assert.equal(await guestFreezeStatus(d, server.id), 'frozen');
    // Nobody thaws: the detached watchdog does, at the deadline.
    await new Promise((r) => setTimeout(r, 4_000));
    assert.equal(await guestFreezeStatus(d, server.id), 'thawed');
    // The compute role notices and the API says so.
    const until2 = Date.now() + 10_000;
    for (;;) {
      const st = await d.member.request<{ quiesce: { state: string; detail: string | null } }>('GET', `/compute/v2.1/servers/${server.id}/os-quiesce`);
      if (st.body.quiesce.state === 'thawed') {
        assert.match(String(st.body.quiesce.detail), /watchdog/);
        break;
      }
      assert.ok(Date.now() < until2, `state still ${st.body.quiesce.state}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it('bad quiesce input is a 400 and changes nothing', async () => {
    for (const body of [{ quiesce: { deadline_seconds: -1 } }, { quiesce: { deadline_seconds: 10_000 } }, { quiesce: { bogus: 1 } }, { quiesce: 'now' }, { quiesce: {}, unquiesce: {} }, { 'os-reboot': {} }]) {
      const res = await serverAction(d.member, server.id, body);
      assert.equal(res.status, 400, `${JSON.stringify(body)} -> ${res.status} ${JSON.stringify(res.body)}`);
      assert.ok(res.body['badRequest'], JSON.stringify(res.body));
    }
    assert.equal(await guestFreezeStatus(d, server.id), 'thawed');
    assert.equal((await serverAction(d.member, '00000000-0000-0000-0000-000000000000', { quiesce: {} })).status, 404);
  });

  it('bad server create input is a 400 and reserves nothing', async () => {
    const vol = await d.member.call<{ volumes: { id: string; status: string }[] }>('GET', '/volumes/detail');
    const before = vol.body.volumes.map((v) => `${v.id}:${v.status}`).sort();
    const bdm = (uuid: string) => [{ uuid, source_type: 'volume', destination_type: 'volume', boot_index: 0 }];
    const cases: unknown[] = [
      {},
      { server: { name: 'x', flavorRef: '1' } },
      { server: { name: 'x', flavorRef: '99', block_device_mapping_v2: bdm(server.bootVolumeId) } },
      { server: { name: '', flavorRef: '1', block_device_mapping_v2: bdm(server.bootVolumeId) } },
      { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: bdm('not-a-uuid') } },
      { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: bdm('00000000-0000-0000-0000-000000000000') } },
      // In use by vm-a.
      { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: bdm(server.bootVolumeId) } },
      { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: [{ uuid: server.bootVolumeId, source_type: 'image', destination_type: 'volume', boot_index: 0 }] } },
      { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: bdm(server.bootVolumeId), networks: [{ uuid: 'x' }] } },
    ];
    for (const body of cases) {
      const res = await d.member.request('POST', '/compute/v2.1/servers', body);
      assert.equal(res.status, 400, `${JSON.stringify(body)} -> ${res.status} ${JSON.stringify(res.body)}`);
    }
    // A blank volume has no image metadata: not bootable.
    const blank = await d.member.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1 } });
    await d.member.waitFor(`/volumes/${blank.body.volume.id}`, 'volume', ['available']);
    const res = await d.member.request<Record<string, { message: string }>>('POST', '/compute/v2.1/servers', { server: { name: 'x', flavorRef: '1', block_device_mapping_v2: bdm(blank.body.volume.id) } });
    assert.equal(res.status, 400);
    assert.match(res.body['badRequest']!.message, /kernel_id/);
    const after = (await d.member.call<{ volumes: { id: string; status: string }[] }>('GET', '/volumes/detail')).body.volumes.filter((v) => v.id !== blank.body.volume.id).map((v) => `${v.id}:${v.status}`).sort();
    assert.deepEqual(after, before);
    const servers = await d.member.request<{ servers: unknown[] }>('GET', '/compute/v2.1/servers');
    assert.equal(servers.body.servers.length, 1);
  });

  it('volume attachment and flavor routes refuse bad input', async () => {
    const base = `/compute/v2.1/servers/${server.id}/os-volume_attachments`;
    const spare = await d.member.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1 } });
    await d.member.waitFor(`/volumes/${spare.body.volume.id}`, 'volume', ['available']);
    // A running server: Bulwark attaches to stopped servers only.
    assert.equal((await d.member.request('POST', base, { volumeAttachment: { volumeId: spare.body.volume.id } })).status, 409);
    assert.equal((await d.member.request('POST', base, { volumeAttachment: {} })).status, 400);
    assert.equal((await d.member.request('POST', base, { volumeAttachment: { volumeId: 'nope' } })).status, 400);
    assert.equal((await d.member.request('POST', base, { volumeAttachment: { volumeId: spare.body.volume.id }, extra: 1 })).status, 400);
    assert.equal((await d.other.request('POST', base, { volumeAttachment: { volumeId: spare.body.volume.id } })).status, 404);
    assert.equal((await d.member.request('GET', `${base}/00000000-0000-0000-0000-000000000000`)).status, 404);
    assert.equal((await d.member.request('DELETE', `${base}/${server.bootVolumeId}`)).status, 400);
    assert.equal((await d.member.request('DELETE', `${base}/${spare.body.volume.id}`)).status, 404);
    assert.equal((await d.member.request('GET', '/compute/v2.1/flavors/99')).status, 404);
    assert.equal((await d.member.request('GET', '/compute/v2.1/servers', undefined, { 'x-auth-token': 'bogus' })).status, 401);
    const vol = await d.member.call<{ volume: { status: string } }>('GET', `/volumes/${spare.body.volume.id}`);
    assert.equal(vol.body.volume.status, 'available');
    const atts = await d.member.request<{ volumeAttachments: unknown[] }>('GET', base);
    assert.equal(atts.body.volumeAttachments.length, 2);
  });

  it('stop, start and delete; the volumes come back available', async () => {
    assert.equal((await serverAction(d.member, server.id, { 'os-stop': null })).status, 202);
    const stopped = await waitServer(d.member, server.id, ['SHUTOFF']);
    assert.equal(stopped['OS-EXT-STS:power_state'], 4);
    assert.equal((await serverAction(d.member, server.id, { 'os-stop': null })).status, 409);
    assert.equal((await serverAction(d.member, server.id, { 'os-start': null })).status, 202);
    await waitServer(d.member, server.id, ['ACTIVE']);
    assert.equal((await d.member.request('DELETE', `/compute/v2.1/servers/${server.id}`)).status, 204);
    await waitServer(d.member, server.id, ['DELETED']);
    for (const v of [server.bootVolumeId, server.dataVolumeId]) await d.member.waitFor(`/volumes/${v}`, 'volume', ['available']);
  });
});
