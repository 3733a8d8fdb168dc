// The Glance v2 image service and Cinder's image operations on a real
// all-in-one deployment: every route, the inspection that refuses data not
// matching its declared format (or naming host files), visibility between
// projects, and volumes made from / uploaded to images, byte for byte.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type ApiSession, type Deployment } from '../harness/aio.js';

const run = promisify(execFile);
const MAX = 4 * 1024 * 1024;
const MISSING = '00000000-0000-4000-8000-000000000000';

interface Res {
  status: number;
  body: Record<string, unknown>;
  bytes: Buffer;
}

describe('image service (Glance v2) and Cinder image operations', () => {
  let d: Deployment;
  let work: string;

  const img = async (who: ApiSession, method: string, path: string, body?: unknown, contentType?: string): Promise<Res> => {
    const headers: Record<string, string> = { 'x-auth-token': who.token };
    let payload: Buffer | string | undefined;
    if (Buffer.isBuffer(body)) {
      payload = body;
      headers['content-type'] = contentType ?? 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = contentType ?? 'application/json';
    }
    const res = await fetch(`${d.url}/image${path}`, { method, headers, ...(payload !== undefined ? { body: payload as unknown as BodyInit } : {}) });
    const bytes = Buffer.from(await res.arrayBuffer());
    const isJson = (res.headers.get('content-type') ?? '').includes('json');
    return { status: res.status, body: isJson && bytes.length > 0 ? (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>) : {}, bytes };
  };
  const patch = (who: ApiSession, id: string, ops: unknown) => img(who, 'PATCH', `/v2/images/${id}`, ops, 'application/openstack-images-v2.1-json-patch');
  const create = async (who: ApiSession, body: Record<string, unknown>): Promise<string> => {
    const r = await img(who, 'POST', '/v2/images', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return String(r.body['id']);
  };
  const imagesDir = () => d.config.images.directory!;
  const dataFiles = () => readdirSync(imagesDir());
  const waitImage = async (who: ApiSession, id: string, want: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 600; i++) {
      const r = await img(who, 'GET', `/v2/images/${id}`);
      if (r.body['status'] === want) return r.body;
      if (r.body['status'] === 'killed') throw new Error(`image ${id} was killed`);
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`image ${id} never became ${want}`);
  };
  const qcow2 = async (name: string, args: string[] = []): Promise<Buffer> => {
    const p = join(work, name);
    await run('qemu-img', ['create', '-f', 'qcow2', ...args, p, '1M']);
    return readFileSync(p);
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-img-'));
    d = await deploy({ overrides: { images: { maxSizeBytes: MAX } } });
  });
  after(async () => {
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('creates, uploads, shows, lists, downloads and deletes an image', async () => {
    const data = randomBytes(1024 * 1024 + 123);
    const id = await create(d.member, { name: 'raw-one', disk_format: 'raw', container_format: 'bare', kernel_id: 'k-1', os_command_line: 'console=ttyS0', tags: ['a'] });
    let shown = (await img(d.member, 'GET', `/v2/images/${id}`)).body;
    assert.equal(shown['status'], 'queued');
    assert.equal(shown['kernel_id'], 'k-1');
    assert.equal(shown['visibility'], 'shared');
    assert.deepEqual(shown['tags'], ['a']);
    const emptyDownload = await img(d.member, 'GET', `/v2/images/${id}/file`);
    assert.equal(emptyDownload.status, 204);
    const up = await img(d.member, 'PUT', `/v2/images/${id}/file`, data);
    assert.equal(up.status, 204, JSON.stringify(up.body));
    shown = (await img(d.member, 'GET', `/v2/images/${id}`)).body;
    assert.equal(shown['status'], 'active');
    assert.equal(shown['size'], data.length);
    assert.equal(shown['virtual_size'], data.length);
    assert.equal(shown['checksum'], createHash('md5').update(data).digest('hex'));
    assert.equal(shown['os_hash_algo'], 'sha512');
    assert.equal(shown['os_hash_value'], createHash('sha512').update(data).digest('hex'));
    const down = await img(d.member, 'GET', `/v2/images/${id}/file`);
    assert.equal(down.status, 200);
    assert.ok(down.bytes.equals(data), 'the download is byte-identical to the upload');

    const list = await img(d.member, 'GET', '/v2/images');
    assert.equal(list.status, 200);
    assert.equal(list.body['first'], '/v2/images');
    assert.equal(list.body['schema'], '/v2/schemas/images');
    assert.ok((list.body['images'] as { id: string }[]).some((i) => i.id === id));
    const byName = (await img(d.member, 'GET', '/v2/images?name=raw-one')).body['images'] as { id: string }[];
    assert.deepEqual(byName.map((i) => i.id), [id]);
    assert.equal(((await img(d.member, 'GET', '/v2/images?status=queued')).body['images'] as unknown[]).length, 0);
    assert.equal(((await img(d.member, 'GET', '/v2/images?visibility=public')).body['images'] as unknown[]).length, 0);
    assert.equal(((await img(d.member, 'GET', '/v2/images?kernel_id=k-1')).body['images'] as unknown[]).length, 1);
    assert.equal((await img(d.member, 'GET', '/v2/images?limit=x')).status, 400);
    assert.equal((await img(d.member, 'GET', `/v2/images?marker=${MISSING}`)).status, 400);
    assert.equal((await img(d.member, 'GET', '/v2/schemas/image')).body['name'], 'image');
    assert.equal((await img(d.member, 'GET', '/v2/schemas/images')).body['name'], 'images');
    assert.equal((await img(d.member, 'GET', '/')).status, 300, 'the version document stays');

    assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 204);
    assert.equal((await img(d.member, 'GET', `/v2/images/${id}`)).status, 404);
    assert.deepEqual(dataFiles(), [], 'the data file is gone with the image');
  });

  it('pages through the list with limit and marker', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await create(d.member, { name: `page-${i}` }));
    const first = await img(d.member, 'GET', '/v2/images?limit=2&sort_key=name&sort_dir=asc');
    const got = (first.body['images'] as { name: string }[]).map((i) => i.name);
    assert.deepEqual(got, ['page-0', 'page-1']);
    assert.match(String(first.body['next']), /^\/v2\/images\?.*marker=/);
    const second = await img(d.member, 'GET', String(first.body['next']));
    assert.deepEqual((second.body['images'] as { name: string }[]).map((i) => i.name), ['page-2']);
    assert.equal(second.body['next'], undefined);
    for (const id of ids) assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 204);
  });

  it('refuses bad create bodies and unknown images', async () => {
    const before = (await img(d.admin, 'GET', '/v2/images')).body['images'] as unknown[];
    assert.equal((await img(d.member, 'POST', '/v2/images', { disk_format: 'vmdk' })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { container_format: 'ovf' })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { disk_format: 'raw', container_format: 'aki' })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { status: 'active' })).status, 403);
    assert.equal((await img(d.member, 'POST', '/v2/images', { size: 5 })).status, 403);
    assert.equal((await img(d.member, 'POST', '/v2/images', { visibility: 'public' })).status, 403);
    assert.equal((await img(d.member, 'POST', '/v2/images', { visibility: 'everyone' })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { min_disk: -1 })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { id: 'not-a-uuid' })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', { kernel_id: 7 })).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', [1])).status, 400);
    assert.equal((await img(d.member, 'POST', '/v2/images', '{bad', 'application/json')).status, 400);
    const fixed = '11111111-2222-4333-8444-555555555555';
    await create(d.member, { id: fixed, name: 'fixed' });
    assert.equal((await img(d.member, 'POST', '/v2/images', { id: fixed })).status, 409);
    assert.equal((await img(d.member, 'DELETE', `/v2/images/${fixed}`)).status, 204);
    assert.deepEqual((await img(d.admin, 'GET', '/v2/images')).body['images'], before, 'nothing was created');

    for (const [m, p, b] of [['GET', `/v2/images/${MISSING}`], ['GET', `/v2/images/${MISSING}/file`], ['DELETE', `/v2/images/${MISSING}`], ['GET', '/v2/images/nope'], ['PUT', `/v2/images/${MISSING}/file`, Buffer.from('x')]] as const) {
      assert.equal((await img(d.member, m, p, b)).status, 404, `${m} ${p}`);
    }
    assert.equal((await patch(d.member, MISSING, [{ op: 'replace', path: '/name', value: 'x' }])).status, 404);
    const anon = await fetch(`${d.url}/image/v2/images`);
    assert.equal(anon.status, 401);
  });

  it('keeps private images to their project and shows public ones to all', async () => {
    const priv = await create(d.member, { name: 'alpha-private', visibility: 'private' });
    assert.equal((await img(d.other, 'GET', `/v2/images/${priv}`)).status, 404);
    assert.equal((await img(d.other, 'DELETE', `/v2/images/${priv}`)).status, 404);
    assert.equal((await patch(d.other, priv, [{ op: 'replace', path: '/name', value: 'x' }])).status, 404);
    assert.ok(!((await img(d.other, 'GET', '/v2/images')).body['images'] as { id: string }[]).some((i) => i.id === priv));
    assert.equal((await img(d.admin, 'GET', `/v2/images/${priv}`)).status, 200, 'admin sees every image');

    const pub = await create(d.admin, { name: 'everyone', visibility: 'public', disk_format: 'raw', container_format: 'bare' });
    assert.equal((await img(d.other, 'GET', `/v2/images/${pub}`)).status, 200);
    assert.ok(((await img(d.other, 'GET', '/v2/images')).body['images'] as { id: string }[]).some((i) => i.id === pub));
    assert.equal((await img(d.other, 'DELETE', `/v2/images/${pub}`)).status, 403);
    assert.equal((await img(d.other, 'PUT', `/v2/images/${pub}/file`, Buffer.from('x'))).status, 403);
    assert.equal((await patch(d.other, pub, [{ op: 'replace', path: '/name', value: 'mine' }])).status, 403);
    assert.equal((await img(d.admin, 'DELETE', `/v2/images/${pub}`)).status, 204);
    assert.equal((await img(d.member, 'DELETE', `/v2/images/${priv}`)).status, 204);
  });

  it('refuses data that does not match the declared format, and qcow2 naming host files', async () => {
    const plain = await qcow2('plain.qcow2');
    const withBacking = await qcow2('backed.qcow2', ['-b', join(work, 'plain.qcow2'), '-F', 'qcow2']);
    writeFileSync(join(work, 'external.raw'), Buffer.alloc(0));
    const withDataFile = await qcow2('ext.qcow2', ['-o', `data_file=${join(work, 'external.raw')}`]);
    const cases: [string, Buffer, RegExp][] = [
      ['raw', plain, /qcow2, not raw/],
      ['qcow2', randomBytes(65536), /not qcow2/],
      ['qcow2', withBacking, /backing file/],
      ['qcow2', withDataFile, /external data file/],
    ];
    for (const [fmt, data, why] of cases) {
      const id = await create(d.member, { name: `bad-${fmt}`, disk_format: fmt, container_format: 'bare' });
      const r = await img(d.member, 'PUT', `/v2/images/${id}/file`, data);
      assert.equal(r.status, 400, `${fmt}: ${JSON.stringify(r.body)}`);
      assert.match(JSON.stringify(r.body), why);
      const shown = (await img(d.member, 'GET', `/v2/images/${id}`)).body;
      assert.equal(shown['status'], 'queued', 'a refused upload leaves the image queued');
      assert.equal(shown['size'], null);
      assert.deepEqual(dataFiles(), [], 'nothing of the refused data stays on disk');
      assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 204);
    }
    // The same qcow2 is fine when declared as what it is.
    const ok = await create(d.member, { name: 'good-qcow2', disk_format: 'qcow2', container_format: 'bare' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${ok}/file`, plain)).status, 204);
    const shown = (await img(d.member, 'GET', `/v2/images/${ok}`)).body;
    assert.equal(shown['virtual_size'], 1024 * 1024);
    assert.equal(shown['size'], plain.length);
    // Kernels are opaque blobs.
    const kernel = await create(d.member, { name: 'vmlinuz', disk_format: 'aki', container_format: 'aki' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${kernel}/file`, randomBytes(1000))).status, 204);
    for (const id of [ok, kernel]) assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 204);
  });

  it('refuses a second upload (409), an oversized one (413) and uploads before formats are set', async () => {
    const noFormat = await create(d.member, { name: 'no-format' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${noFormat}/file`, Buffer.from('abc'))).status, 400);
    const id = await create(d.member, { name: 'once', disk_format: 'raw', container_format: 'bare' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${id}/file`, Buffer.from('abc'), 'text/plain')).status, 415);
    assert.equal((await img(d.member, 'PUT', `/v2/images/${id}/file`, Buffer.alloc(MAX + 1))).status, 413);
    assert.equal((await img(d.member, 'GET', `/v2/images/${id}`)).body['status'], 'queued');
    assert.deepEqual(dataFiles(), []);
    // Without a Content-Length the limit still holds while streaming.
    const chunked = await fetch(`${d.url}/image/v2/images/${id}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': d.member.token, 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(1024 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.deepEqual(dataFiles(), []);
    assert.equal((await img(d.member, 'PUT', `/v2/images/${id}/file`, Buffer.from('abc'))).status, 204);
    assert.equal((await img(d.member, 'PUT', `/v2/images/${id}/file`, Buffer.from('def'))).status, 409);
    assert.equal((await img(d.member, 'GET', `/v2/images/${id}/file`)).bytes.toString(), 'abc');
    for (const x of [id, noFormat]) assert.equal((await img(d.member, 'DELETE', `/v2/images/${x}`)).status, 204);
  });

  it('updates with JSON patch and protects protected images', async () => {
    const id = await create(d.member, { name: 'patchme', protected: true, ramdisk_id: 'r-1' });
    let r = await patch(d.member, id, [
      { op: 'replace', path: '/name', value: 'patched' },
      { op: 'add', path: '/os_command_line', value: 'console=ttyS0' },
      { op: 'replace', path: '/ramdisk_id', value: 'r-2' },
      { op: 'add', path: '/min_ram', value: 64 },
    ]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['name'], 'patched');
    assert.equal(r.body['os_command_line'], 'console=ttyS0');
    assert.equal(r.body['ramdisk_id'], 'r-2');
    assert.equal(r.body['min_ram'], 64);
    r = await patch(d.member, id, [{ op: 'remove', path: '/ramdisk_id' }]);
    assert.equal(r.status, 200);
    assert.equal(r.body['ramdisk_id'], undefined);
    assert.equal((await patch(d.member, id, [{ op: 'remove', path: '/ramdisk_id' }])).status, 409);
    assert.equal((await patch(d.member, id, [{ op: 'replace', path: '/nothing', value: 'x' }])).status, 409);
    assert.equal((await patch(d.member, id, [{ op: 'replace', path: '/status', value: 'active' }])).status, 403);
    assert.equal((await patch(d.member, id, [{ op: 'remove', path: '/name' }])).status, 403);
    assert.equal((await patch(d.member, id, [{ op: 'move', path: '/name' }])).status, 400);
    assert.equal((await patch(d.member, id, { op: 'replace' })).status, 400);
    assert.equal((await img(d.member, 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: '/name', value: 'x' }])).status, 415);
    assert.equal((await img(d.member, 'GET', `/v2/images/${id}`)).body['name'], 'patched', 'refused patches change nothing');

    assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 403);
    assert.equal((await img(d.member, 'GET', `/v2/images/${id}`)).status, 200);
    assert.equal((await patch(d.member, id, [{ op: 'replace', path: '/protected', value: false }])).status, 200);
    assert.equal((await img(d.member, 'DELETE', `/v2/images/${id}`)).status, 204);
  });

  it('makes volumes from images and images from volumes, byte for byte', async () => {
    // A raw image with data at both ends and a hole in the middle.
    const data = Buffer.alloc(3 * 1024 * 1024);
    randomBytes(512 * 1024).copy(data, 0);
    randomBytes(512 * 1024).copy(data, data.length - 512 * 1024);
    writeFileSync(join(work, 'source.raw'), data);
    const id = await create(d.member, { name: 'bootable', disk_format: 'raw', container_format: 'bare', kernel_id: 'kern', ramdisk_id: 'rd', os_command_line: 'root=/dev/vda' });
    const queued = await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: id } });
    assert.equal(queued.status, 400, 'a queued image cannot fill a volume');
    assert.equal((await img(d.member, 'PUT', `/v2/images/${id}/file`, data)).status, 204);

    const before = (await d.member.call<{ volumes: unknown[] }>('GET', '/volumes')).body.volumes.length;
    assert.equal((await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: MISSING } })).status, 400);
    const privOther = await create(d.other, { name: 'beta-private', visibility: 'private', disk_format: 'raw', container_format: 'bare' });
    assert.equal((await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: privOther } })).status, 400);
    const kernel = await create(d.member, { name: 'kern', disk_format: 'aki', container_format: 'aki' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${kernel}/file`, randomBytes(100))).status, 204);
    assert.equal((await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: kernel } })).status, 400, 'a kernel is not a disk');
    assert.equal((await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: id, snapshot_id: MISSING } })).status, 404);
    assert.equal((await d.member.call<{ volumes: unknown[] }>('GET', '/volumes')).body.volumes.length, before, 'refused creates leave no volume');

    // A qcow2 image whose virtual size exceeds the volume is refused.
    const big = join(work, 'big.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', big, '2G']);
    const bigId = await create(d.member, { name: 'big', disk_format: 'qcow2', container_format: 'bare' });
    assert.equal((await img(d.member, 'PUT', `/v2/images/${bigId}/file`, readFileSync(big))).status, 204);
    const tooSmall = await d.member.call('POST', '/volumes', { volume: { size: 1, imageRef: bigId } });
    assert.equal(tooSmall.status, 400);
    assert.match(JSON.stringify(tooSmall.body), /larger than volume size/);

    const made = await d.member.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, imageRef: id, name: 'from-image' } });
    assert.equal(made.status, 202, JSON.stringify(made.body));
    const volId = made.body.volume.id;
    const vol = await d.member.waitFor(`/volumes/${volId}`, 'volume', ['available'], 60_000);
    assert.equal(vol['bootable'], 'true');
    const meta = vol['volume_image_metadata'] as Record<string, string>;
    assert.equal(meta['image_id'], id);
    assert.equal(meta['kernel_id'], 'kern');
    assert.equal(meta['ramdisk_id'], 'rd');
    assert.equal(meta['os_command_line'], 'root=/dev/vda');
    assert.equal(meta['disk_format'], 'raw');
    assert.equal(meta['checksum'], createHash('md5').update(data).digest('hex'));

    // The volume's own layer holds the image (qcow2, read shared: QSD has it open).
    const layer = await d.roles.store.db.selectFrom('layers').innerJoin('volumes', 'volumes.active_layer_id', 'layers.id').select('layers.path').where('volumes.id', '=', volId).executeTakeFirstOrThrow();
    await run('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', join(work, 'source.raw'), layer.path]);

    // Image metadata actions.
    const act = (body: unknown) => d.member.call<Record<string, unknown>>('POST', `/volumes/${volId}/action`, body);
    assert.equal((await act({ 'os-set_image_metadata': { metadata: { hw_disk_bus: 'virtio' } } })).status, 200);
    assert.equal(((await act({ 'os-show_image_metadata': {} })).body['metadata'] as Record<string, string>)['hw_disk_bus'], 'virtio');
    assert.equal((await act({ 'os-unset_image_metadata': { key: 'hw_disk_bus' } })).status, 200);
    assert.equal((await act({ 'os-unset_image_metadata': { key: 'hw_disk_bus' } })).status, 404);

    // And back: upload the volume as qcow2; it reads back as the volume's data.
    assert.equal((await act({ 'os-volume_upload_image': { image_name: 'x', disk_format: 'vmdk' } })).status, 400);
    assert.equal((await act({ 'os-volume_upload_image': { image_name: 'x', visibility: 'public' } })).status, 403);
    const up = await act({ 'os-volume_upload_image': { image_name: 'from-volume', disk_format: 'qcow2', container_format: 'bare' } });
    assert.equal(up.status, 202, JSON.stringify(up.body));
    const info = up.body['os-volume_upload_image'] as Record<string, unknown>;
    assert.equal(info['status'], 'uploading');
    assert.equal((info['volume_type'] as Record<string, unknown>)['name'], '__DEFAULT__');
    assert.equal((await act({ 'os-volume_upload_image': { image_name: 'again' } })).status, 400, 'an uploading volume cannot upload again');
    const newImage = String(info['image_id']);
    const active = await waitImage(d.member, newImage, 'active');
    assert.equal(active['disk_format'], 'qcow2');
    assert.equal(active['virtual_size'], 1024 ** 3);
    assert.equal(active['kernel_id'], 'kern', 'image properties travel with the volume');
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['available']);
    const down = await img(d.member, 'GET', `/v2/images/${newImage}/file`);
    assert.equal(createHash('md5').update(down.bytes).digest('hex'), active['checksum']);
    writeFileSync(join(work, 'uploaded.qcow2'), down.bytes);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', join(work, 'source.raw'), join(work, 'uploaded.qcow2')]);

    assert.equal((await d.member.call('DELETE', `/volumes/${volId}`)).status, 202);
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['deleted'], 60_000);
    for (const x of [id, kernel, bigId, newImage]) assert.equal((await img(d.member, 'DELETE', `/v2/images/${x}`)).status, 204);
    assert.equal((await img(d.other, 'DELETE', `/v2/images/${privOther}`)).status, 204);
    assert.deepEqual(dataFiles(), []);
  });

  it('uploads an in-use volume from a frozen point in time (force)', async () => {
    const made = await d.member.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, name: 'busy' } });
    const volId = made.body.volume.id;
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['available']);
    const act = (body: unknown) => d.member.call<Record<string, unknown>>('POST', `/volumes/${volId}/action`, body);
    assert.equal((await act({ 'os-attach': { host_name: 'h1', mountpoint: '/dev/vdb' } })).status, 202);
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['in-use']);
    assert.equal((await act({ 'os-volume_upload_image': { image_name: 'busy-img' } })).status, 400, 'in-use needs force');
    const up = await act({ 'os-volume_upload_image': { image_name: 'busy-img', force: true, disk_format: 'qcow2' } });
    assert.equal(up.status, 202, JSON.stringify(up.body));
    const imageId = String((up.body['os-volume_upload_image'] as Record<string, unknown>)['image_id']);
    await waitImage(d.member, imageId, 'active');
    const inUse = await d.member.waitFor(`/volumes/${volId}`, 'volume', ['in-use']);
    const attachmentId = (inUse['attachments'] as { attachment_id: string }[])[0]!.attachment_id;
    const pins = await d.roles.store.db.selectFrom('layer_pins').selectAll().where('owner_id', '=', imageId).execute();
    assert.deepEqual(pins, [], 'the frozen layer is released');
    assert.equal((await img(d.member, 'DELETE', `/v2/images/${imageId}`)).status, 204);
    const detached = await act({ 'os-detach': { attachment_id: attachmentId } });
    assert.equal(detached.status, 202, JSON.stringify(detached.body));
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['available']);
    assert.equal((await d.member.call('DELETE', `/volumes/${volId}`)).status, 202);
    await d.member.waitFor(`/volumes/${volId}`, 'volume', ['deleted'], 60_000);
  });
});
