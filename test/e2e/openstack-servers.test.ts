// Debian's openstackclient drives Bulwark's compute and image APIs: the test
// guest uploaded as images, a volume made from one, a server booted from it
// (real QEMU under TCG), listed, shown, stopped, started and deleted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';
import { OPENSTACK, oscEnv } from '../harness/osc.js';
import { buildGuest, guestUnsupportedReason, makeExt4Image } from '../harness/guest.js';

const run = promisify(execFile);
const skip = !existsSync(OPENSTACK) ? 'python3-openstackclient is not installed' : guestUnsupportedReason();

describe('openstackclient server and image commands', { skip: skip ?? false, timeout: 600_000 }, () => {
  let d: Deployment;
  let work: string;
  const env = (): NodeJS.ProcessEnv => oscEnv(d.url);
  const osc = async (args: string[]): Promise<unknown> => {
    const { stdout } = await run(OPENSTACK, [...args, '-f', 'json'], { env: env(), timeout: 120_000 });
    return stdout.trim() ? JSON.parse(stdout) : null;
  };
  const plain = async (args: string[]): Promise<string> => (await run(OPENSTACK, args, { env: env(), timeout: 120_000 })).stdout;
  const waitFor = async (args: string[], field: string, want: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 600; i++) {
      const o = (await osc(args)) as Record<string, unknown>;
      if (o[field] === want) return o;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${args.join(' ')}: ${field} never became ${want}`);
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-osc-servers-'));
    d = await deploy({ roles: ['api', 'scheduler', 'volume', 'compute'] });
  });
  after(async () => {
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('image create/list/delete, volume from image, server create/list/show/stop/start/delete', async () => {
    const guest = await buildGuest();
    const kernel = (await osc(['image', 'create', '--file', guest.kernel, '--disk-format', 'aki', '--container-format', 'aki', 'osc-kernel'])) as Record<string, string>;
    const ramdisk = (await osc(['image', 'create', '--file', guest.initrd, '--disk-format', 'ari', '--container-format', 'ari', 'osc-initrd'])) as Record<string, string>;
    const ext4 = join(work, 'root.raw');
    await makeExt4Image(ext4, { sizeMiB: 64 });
    await osc([
      'image', 'create', '--file', ext4, '--disk-format', 'raw', '--container-format', 'bare',
      '--property', `kernel_id=${kernel['id']}`, '--property', `ramdisk_id=${ramdisk['id']}`, '--property', 'os_command_line=console=ttyS0 bulwark.data=vda bulwark.writer=1',
      'osc-root',
    ]);
    // osc prints the record it created before the upload; ask again.
    assert.equal(((await osc(['image', 'show', 'osc-root'])) as Record<string, unknown>)['status'], 'active');
    const images = (await osc(['image', 'list'])) as { Name: string; Status: string }[];
    assert.deepEqual(images.map((i) => i.Name).sort(), ['osc-initrd', 'osc-kernel', 'osc-root']);

    await osc(['volume', 'create', '--image', 'osc-root', '--size', '1', 'osc-boot']);
    const vol = await waitFor(['volume', 'show', 'osc-boot'], 'status', 'available');
    assert.equal(vol['bootable'], 'true');

    const flavors = (await osc(['flavor', 'list'])) as { Name: string }[];
    assert.ok(flavors.some((f) => f.Name === 'm1.tiny'));
    const server = (await osc(['server', 'create', '--flavor', 'm1.tiny', '--volume', 'osc-boot', '--wait', 'osc-vm'])) as Record<string, unknown>;
    assert.equal(server['status'], 'ACTIVE');
    const list = (await osc(['server', 'list'])) as { Name: string; Status: string; Image: string }[];
    assert.deepEqual(list.map((s) => [s.Name, s.Status]), [['osc-vm', 'ACTIVE']]);
    const shown = (await osc(['server', 'show', 'osc-vm'])) as Record<string, unknown>;
    assert.match(JSON.stringify(shown['volumes_attached']), new RegExp(String(vol['id'])));
    assert.equal(shown['flavor'], 'm1.tiny (1)');
    const inUse = (await osc(['volume', 'show', 'osc-boot'])) as Record<string, unknown>;
    assert.equal(inUse['status'], 'in-use');

    await plain(['server', 'stop', 'osc-vm']);
    await waitFor(['server', 'show', 'osc-vm'], 'status', 'SHUTOFF');
    await plain(['server', 'start', 'osc-vm']);
    await waitFor(['server', 'show', 'osc-vm'], 'status', 'ACTIVE');
    await plain(['server', 'delete', '--wait', 'osc-vm']);
    assert.deepEqual(await osc(['server', 'list']), []);
    await waitFor(['volume', 'show', 'osc-boot'], 'status', 'available');

    await plain(['image', 'delete', 'osc-root']);
    const left = (await osc(['image', 'list'])) as { Name: string }[];
    assert.deepEqual(left.map((i) => i.Name).sort(), ['osc-initrd', 'osc-kernel']);
  });
});
