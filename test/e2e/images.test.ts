// Debian's python3-openstackclient against Bulwark's image service and Cinder's
// image operations: upload, list, show, set, a volume made from the image, the
// volume uploaded back as an image, and byte-for-byte checks of both copies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';
import { OPENSTACK, oscEnv } from '../harness/osc.js';

const run = promisify(execFile);

describe('openstack image commands', { skip: !existsSync(OPENSTACK) && 'python3-openstackclient is not installed' }, () => {
  let d: Deployment;
  let work: string;
  const env = (): NodeJS.ProcessEnv => oscEnv(d.url);
  const osc = async (args: string[]): Promise<Record<string, unknown>> => {
    const { stdout } = await run(OPENSTACK, [...args, '-f', 'json'], { env: env(), timeout: 120_000 });
    return (stdout.trim() ? JSON.parse(stdout) : {}) as Record<string, unknown>;
  };
  const oscPlain = async (args: string[]): Promise<string> => (await run(OPENSTACK, args, { env: env(), timeout: 120_000 })).stdout;
  const waitStatus = async (what: string[], want: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 600; i++) {
      const o = await osc(what);
      if (o['status'] === want) return o;
      if (String(o['status']).startsWith('error') || o['status'] === 'killed') throw new Error(`${what.join(' ')} went to ${String(o['status'])}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what.join(' ')} never became ${want}`);
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-osc-img-'));
    d = await deploy();
  });
  after(async () => {
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('image create/list/show/set/save/delete and volume create --image, byte for byte', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024);
    randomBytes(700 * 1024).copy(data, 0);
    randomBytes(300 * 1024).copy(data, data.length - 300 * 1024);
    const src = join(work, 'disk.raw');
    writeFileSync(src, data);

    const created = await osc(['image', 'create', '--file', src, '--disk-format', 'raw', '--container-format', 'bare', '--property', 'os_command_line=console=ttyS0', 'osc-img']);
    assert.equal(created['name'], 'osc-img');
    const shown = await waitStatus(['image', 'show', 'osc-img'], 'active');
    assert.equal(shown['checksum'], createHash('md5').update(data).digest('hex'));
    assert.equal(shown['size'], data.length);
    assert.equal(shown['disk_format'], 'raw');
    const list = (await osc(['image', 'list'])) as unknown as Record<string, unknown>[];
    assert.ok(list.some((i) => i['Name'] === 'osc-img' && i['Status'] === 'active'));
    await oscPlain(['image', 'set', '--property', 'kernel_id=k-123', 'osc-img']);
    const props = JSON.stringify((await osc(['image', 'show', 'osc-img']))['properties']);
    assert.match(props, /k-123/);
    assert.match(props, /console=ttyS0/);

    await oscPlain(['image', 'save', '--file', join(work, 'saved.raw'), 'osc-img']);
    assert.ok(readFileSync(join(work, 'saved.raw')).equals(data), 'image save returns the uploaded bytes');

    await osc(['volume', 'create', '--image', 'osc-img', '--size', '1', 'osc-img-vol']);
    const vol = await waitStatus(['volume', 'show', 'osc-img-vol'], 'available');
    assert.equal(String(vol['bootable']), 'true');
    assert.match(JSON.stringify(vol['volume_image_metadata']), /k-123/);

    // The volume's own data (its qcow2 layer, read shared while QSD holds it) equals the image.
    const layer = await d.roles.store.db.selectFrom('layers').innerJoin('volumes', 'volumes.active_layer_id', 'layers.id').select('layers.path').where('volumes.id', '=', String(vol['id'])).executeTakeFirstOrThrow();
    await run('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', src, layer.path]);

    // And the volume uploaded back as an image (os-volume_upload_image) downloads as the volume's content.
    await osc(['image', 'create', '--volume', 'osc-img-vol', '--disk-format', 'qcow2', '--container-format', 'bare', 'osc-from-vol']);
    const back = await waitStatus(['image', 'show', 'osc-from-vol'], 'active');
    assert.equal(back['disk_format'], 'qcow2');
    await waitStatus(['volume', 'show', 'osc-img-vol'], 'available');
    const out = join(work, 'from-vol.qcow2');
    await oscPlain(['image', 'save', '--file', out, 'osc-from-vol']);
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', out, layer.path, '-U']);
    await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, out]);

    await oscPlain(['volume', 'delete', 'osc-img-vol']);
    await oscPlain(['image', 'delete', 'osc-img', 'osc-from-vol']);
    const left = (await osc(['image', 'list'])) as unknown as unknown[];
    assert.deepEqual(left, []);
  });
});
