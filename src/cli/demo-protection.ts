// The demo's second chapter, Bulwark's main job: two tiny VMs (the offline
// test guest) booted from Bulwark volumes, each writing numbered records to its
// data volume; a protection plan freezes them in order, snapshots all four
// volumes while both are frozen, thaws in reverse, and the snapshots are
// checked on the host: e2fsck clean, records complete.
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Resource, VolumeClient } from './client.js';
import { pollUntil } from '../util/poll.js';

const run = promisify(execFile);
const REPO = resolve(new URL('../../..', import.meta.url).pathname);

export type Say = (step: string, detail?: string) => void;

function canRunVms(): string | null {
  for (const tool of ['qemu-system-x86_64', 'mke2fs', 'e2fsck', 'debugfs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return null;
}

export async function runProtectionDemo(c: VolumeClient, apiUrl: string, workDir: string, say: Say): Promise<void> {
  const missing = canRunVms();
  if (missing) {
    say('Skipping the VM chapter', missing);
    return;
  }
  say('Building the tiny test guest', 'Debian cloud kernel + busybox + qemu-ga, offline from Debian packages (cached)');
  const built = await run('bash', [join(REPO, 'scripts/guest/build-guest.sh')], { maxBuffer: 16 * 1024 * 1024 });
  const get = (key: string) => new RegExp(`^${key}=(.+)$`, 'm').exec(built.stdout)?.[1]?.trim() ?? '';
  const kernel = get('BULWARK_GUEST_KERNEL');
  const initrd = get('BULWARK_GUEST_INITRD');

  const image = `${apiUrl}/image/v2/images`;
  const upload = async (name: string, file: string, diskFormat: string, containerFormat: string, props: Record<string, string> = {}): Promise<string> => {
    const created = (await c.callUrl('POST', image, { name, disk_format: diskFormat, container_format: containerFormat, ...props })) as Resource;
    const id = String(created['id']);
    await c.callUrl('PUT', `${image}/${id}/file`, readFileSync(file));
    return id;
  };
  const kernelId = await upload('guest-kernel', kernel, 'aki', 'aki');
  const ramdiskId = await upload('guest-initramfs', initrd, 'ari', 'ari');
  const ext4 = join(workDir, 'guest-ext4.raw');
  await run('qemu-img', ['create', '-q', '-f', 'raw', ext4, '64M']);
  await run('mke2fs', ['-q', '-F', '-t', 'ext4', ext4]);
  const rootId = await upload('guest-ext4', ext4, 'raw', 'bare', {
    kernel_id: kernelId,
    ramdisk_id: ramdiskId,
    os_command_line: 'console=ttyS0 bulwark.data=vdb bulwark.writer=1 bulwark.writer_usleep=5000',
  });
  rmSync(ext4, { force: true });
  say('Uploaded images', `kernel ${kernelId}, initramfs ${ramdiskId}, ext4 disk ${rootId} (Glance v2)`);

  const volume = async (name: string): Promise<string> => {
    const v = (await c.call({ method: 'POST', path: '/volumes', body: { volume: { name, size: 1, imageRef: rootId } } })) as { volume: Resource };
    const id = String(v.volume['id']);
    await pollUntil(`volume ${name}`, 120_000, async () => ((await c.getOne(`/volumes/${id}`, 'volume'))['status'] === 'available' ? true : null));
    return id;
  };
  const compute = `${apiUrl}/compute/v2.1`;
  const servers: { id: string; name: string; data: string }[] = [];
  for (const name of ['app', 'db']) {
    const boot = await volume(`${name}-boot`);
    const data = await volume(`${name}-data`);
    const created = (await c.callUrl('POST', `${compute}/servers`, {
      server: {
        name,
        flavorRef: 'm1.tiny',
        block_device_mapping_v2: [
          { uuid: boot, source_type: 'volume', destination_type: 'volume', boot_index: 0 },
          { uuid: data, source_type: 'volume', destination_type: 'volume', boot_index: -1 },
        ],
      },
    })) as { server: Resource };
    servers.push({ id: String(created.server['id']), name, data });
  }
  for (const srv of servers) {
    await pollUntil(`server ${srv.name}`, 180_000, async () => {
      const s = ((await c.callUrl('GET', `${compute}/servers/${srv.id}`)) as { server: Resource }).server;
      if (s['status'] === 'ERROR') throw new Error(`server ${srv.name} failed: ${JSON.stringify(s['fault'])}`);
      return s['status'] === 'ACTIVE' ? true : null;
    });
  }
  say('Booted two VMs from Bulwark volumes', servers.map((s) => `${s.name} ${s.id}`).join(', ') + ' (QEMU, disks over NBD, each writing records)');
  // Give the guests a moment to boot and write.
  await new Promise((r) => setTimeout(r, 8_000));

  const plan = (await c.call({
    method: 'POST',
    path: '/bulwark-protection-plans',
    body: {
      protection_plan: {
        name: 'two-tier-app',
        stages: [{ instances: [{ instance_id: servers[0]!.id }] }, { instances: [{ instance_id: servers[1]!.id }] }],
        require_quiesce: true,
        freeze_deadline_ms: 30_000,
      },
    },
  })) as { protection_plan: Resource };
  const planId = String(plan.protection_plan['id']);
  say('Protection plan', `${planId}: stage 1 app, stage 2 db; freeze in that order, thaw in reverse`);
  const started = (await c.call({ method: 'POST', path: `/bulwark-protection-plans/${planId}/runs`, body: {} })) as { plan_run: Resource };
  const runId = String(started.plan_run['id']);
  const runRow = await pollUntil('plan run', 120_000, async () => {
    const r = await c.getOne(`/bulwark-plan-runs/${runId}`, 'plan_run');
    return r['status'] === 'available' || r['status'] === 'error' ? r : null;
  });
  if (runRow['status'] !== 'available') throw new Error(`the plan run failed: ${String(runRow['error'])}`);
  const record = runRow['record'] as {
    freeze_order: string[];
    thaw_order: string[];
    snapshot_ms: number;
    window: { ms: number };
    stages: { instances: { instance_id: string; frozen_ms: number }[] }[];
  };
  const nameOf = (id: string) => servers.find((s) => s.id === id)?.name ?? id;
  say('Plan run', `${runId}: ${String(runRow['consistency'])}-consistent`);
  process.stdout.write(`  freeze order ${record.freeze_order.map(nameOf).join(' → ')}, thaw order ${record.thaw_order.map(nameOf).join(' → ')}\n`);
  for (const st of record.stages) for (const i of st.instances) process.stdout.write(`  ${nameOf(i.instance_id).padEnd(4)} frozen ${i.frozen_ms.toFixed(1)} ms\n`);
  process.stdout.write(`  snapshot of 4 volumes ${record.snapshot_ms.toFixed(1)} ms; group freeze window ${record.window.ms.toFixed(1)} ms\n`);

  // Check the data volumes' snapshots on the host, as a restore would see them.
  const snapshotIds = runRow['snapshot_ids'] as string[];
  for (const srv of servers) {
    const snaps = (await Promise.all(snapshotIds.map((id) => c.getOne(`/snapshots/${id}`, 'snapshot')))).filter((s) => s['volume_id'] === srv.data);
    const clone = (await c.call({ method: 'POST', path: '/volumes', body: { volume: { name: `${srv.name}-data-check`, snapshot_id: snaps[0]!['id'] } } })) as { volume: Resource };
    const cloneId = String(clone.volume['id']);
    await pollUntil('clone', 60_000, async () => ((await c.getOne(`/volumes/${cloneId}`, 'volume'))['status'] === 'available' ? true : null));
    const conn = (await c.call({ method: 'POST', path: `/volumes/${cloneId}/action`, body: { 'os-initialize_connection': { connector: { host: 'demo' } } } })) as {
      connection_info: { data: { socket_path: string; export_name: string } };
    };
    const file = join(workDir, `${cloneId}.raw`);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///${conn.connection_info.data.export_name}?socket=${conn.connection_info.data.socket_path}`, file]);
    const fsck = await run('e2fsck', ['-fn', file]).then((r) => ({ ok: true, out: r.stdout }), (e: { stdout?: string }) => ({ ok: false, out: e.stdout ?? '' }));
    const recs = (await run('debugfs', ['-R', 'cat /records.log', file], { maxBuffer: 64 * 1024 * 1024 }).then((r) => r.stdout, () => '')).split('\n').filter(Boolean);
    rmSync(file, { force: true });
    const contiguous = recs.every((l, i) => l.startsWith(`seq ${i + 1} `));
    const clean = fsck.ok && !/recovery/i.test(fsck.out);
    say(`Snapshot of ${srv.name}-data`, `e2fsck ${clean ? 'clean, no journal recovery ✓' : 'NOT clean ✗'}; ${recs.length} records, ${contiguous ? 'complete ✓' : 'gaps ✗'}`);
    await c.call({ method: 'POST', path: `/volumes/${cloneId}/action`, body: { 'os-terminate_connection': { connector: { host: 'demo' } } } });
    if (!clean || !contiguous) throw new Error('a quiesced snapshot did not check clean');
  }

  for (const srv of servers) await c.callUrl('DELETE', `${compute}/servers/${srv.id}`);
  for (const srv of servers) {
    await pollUntil(`delete ${srv.name}`, 60_000, async () => {
      const list = (await c.callUrl('GET', `${compute}/servers`)) as { servers: Resource[] };
      return list.servers.some((s) => s['id'] === srv.id) ? null : true;
    });
  }
  say('Deleted the VMs', 'their volumes and the plan run\'s snapshots stay');
}
