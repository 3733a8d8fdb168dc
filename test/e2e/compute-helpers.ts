// Shared steps for the compute and protection-plan suites: upload the test
// guest's kernel and initramfs as images, make boot/data volumes from an ext4
// image, boot servers on them through the compute API, talk to their agents,
// and check what a snapshot holds on the host (e2fsck, the writer's records).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ApiSession } from '../harness/aio.js';

/** A deployment in this process or a cluster of role processes: where its instances live. */
export interface HasInstances {
  readonly config: { readonly compute: { readonly instancesDir?: string | undefined } };
}
import { buildGuest, makeExt4Image } from '../harness/guest.js';
import { QgaConnection } from '../../src/drivers/qga/connection.js';
import { fsfreezeStatus } from '../../src/drivers/qga/commands.js';
import { waitForAgent } from '../../src/drivers/vm/index.js';
import { attachLocal, createVolume, detachLocal } from './helpers.js';

const run = promisify(execFile);

export interface BootImages {
  kernelId: string;
  ramdiskId: string;
  /** A raw ext4 image whose metadata boots the test guest with a writer on vdb. */
  rootId: string;
}

export async function uploadImage(s: ApiSession, name: string, file: string, diskFormat: string, containerFormat: string, props: Record<string, string> = {}): Promise<string> {
  const created = await s.request<{ id: string }>('POST', '/image/v2/images', { name, disk_format: diskFormat, container_format: containerFormat, visibility: 'private', ...props });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const put = await s.request('PUT', `/image/v2/images/${id}/file`, readFileSync(file), { 'content-type': 'application/octet-stream' });
  assert.equal(put.status, 204, JSON.stringify(put.body));
  const shown = await s.request<{ status: string }>('GET', `/image/v2/images/${id}`);
  assert.equal(shown.body.status, 'active');
  return id;
}

/** The test guest as three images; `commandLine` decides which disks it mounts and writes. */
export async function uploadBootImages(s: ApiSession, workDir: string, commandLine = 'console=ttyS0 bulwark.data=vdb bulwark.writer=1 bulwark.writer_usleep=5000'): Promise<BootImages> {
  const guest = await buildGuest();
  const kernelId = await uploadImage(s, 'guest-kernel', guest.kernel, 'aki', 'aki');
  const ramdiskId = await uploadImage(s, 'guest-initramfs', guest.initrd, 'ari', 'ari');
  const ext4 = join(workDir, 'ext4.raw');
  await makeExt4Image(ext4, { sizeMiB: 64, format: 'raw' });
  const rootId = await uploadImage(s, 'guest-ext4', ext4, 'raw', 'bare', { kernel_id: kernelId, ramdisk_id: ramdiskId, os_command_line: commandLine });
  rmSync(ext4, { force: true });
  return { kernelId, ramdiskId, rootId };
}

export interface BootedServer {
  id: string;
  bootVolumeId: string;
  dataVolumeId: string;
}

export async function waitServer(s: ApiSession, id: string, want: readonly string[], timeoutMs = 120_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await s.request<{ server: Record<string, unknown> }>('GET', `/compute/v2.1/servers/${id}`);
    if (res.status === 404 && want.includes('DELETED')) return {};
    const status = String(res.body.server?.['status']);
    if (want.includes(status) && res.body.server['OS-EXT-STS:task_state'] === null) return res.body.server;
    if (status === 'ERROR' && !want.includes('ERROR')) throw new Error(`server ${id} went to ERROR: ${JSON.stringify(res.body.server['fault'])}`);
    if (Date.now() > deadline) throw new Error(`server ${id} still ${status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Boot volume and data volume from the ext4 image, a server on them, its agent answering. */
export async function bootServer(d: HasInstances, s: ApiSession, images: BootImages, name: string): Promise<BootedServer> {
  const bootVolumeId = await createVolume(s, { size: 1, imageRef: images.rootId, name: `${name}-boot` });
  const dataVolumeId = await createVolume(s, { size: 1, imageRef: images.rootId, name: `${name}-data` });
  const res = await s.request<{ server: { id: string } }>('POST', '/compute/v2.1/servers', {
    server: {
      name,
      flavorRef: '1',
      block_device_mapping_v2: [
        { uuid: bootVolumeId, source_type: 'volume', destination_type: 'volume', boot_index: 0, delete_on_termination: false },
        { uuid: dataVolumeId, source_type: 'volume', destination_type: 'volume', boot_index: -1, delete_on_termination: false },
      ],
    },
  });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  const id = res.body.server.id;
  await waitServer(s, id, ['ACTIVE']);
  await waitForAgent(qgaSocketOf(d, id), 120_000);
  return { id, bootVolumeId, dataVolumeId };
}

export function qgaSocketOf(d: HasInstances, serverId: string): string {
  return join(d.config.compute.instancesDir!, serverId, 'qga.sock');
}

/** The guest's own answer, straight from its agent (one short connection). */
export async function guestFreezeStatus(d: HasInstances, serverId: string): Promise<string> {
  const conn = await QgaConnection.connect(qgaSocketOf(d, serverId), { timeoutMs: 10_000 });
  try {
    return await fsfreezeStatus(conn);
  } finally {
    await conn.close();
  }
}

export async function serverAction(s: ApiSession, id: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return s.request('POST', `/compute/v2.1/servers/${id}/action`, body);
}

export interface FilesystemCheck {
  /** e2fsck -fn exit code: 0 clean. */
  fsckCode: number;
  fsckOutput: string;
  /** The writer's record numbers found in /records.log. */
  records: number[];
  /** Every line well formed and the numbers contiguous from 1. */
  recordsComplete: boolean;
}

/** Clones a snapshot into a volume, copies it to a file over NBD, and checks the filesystem on the host. */
export async function checkSnapshotFilesystem(s: ApiSession, snapshotId: string, workDir: string): Promise<FilesystemCheck> {
  const cloneId = await createVolume(s, { size: 1, snapshot_id: snapshotId });
  return checkVolumeFilesystem(s, cloneId, workDir);
}

/** Copies an available volume to a file over NBD and checks the filesystem on the host. */
export async function checkVolumeFilesystem(s: ApiSession, volumeId: string, workDir: string): Promise<FilesystemCheck> {
  const target = await attachLocal(s, volumeId);
  const file = join(workDir, `${volumeId}.raw`);
  try {
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///${target.exportName}?socket=${target.socketPath}`, file]);
  } finally {
    await detachLocal(s, volumeId);
  }
  const fsck = await run('e2fsck', ['-fn', file]).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: typeof e.code === 'number' ? e.code : 99, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );
  const cat = await run('debugfs', ['-R', 'cat /records.log', file], { maxBuffer: 256 * 1024 * 1024 }).then((r) => r.stdout, () => '');
  rmSync(file, { force: true });
  const lines = cat.split('\n').filter((l) => l.length > 0);
  const records: number[] = [];
  let wellFormed = true;
  for (const l of lines) {
    const m = /^seq (\d+) \d+(\.\d+)?$/.exec(l);
    if (!m) wellFormed = false;
    else records.push(Number(m[1]));
  }
  const contiguous = records.every((n, i) => n === i + 1);
  return { fsckCode: fsck.code, fsckOutput: fsck.out, records, recordsComplete: wellFormed && contiguous && (cat === '' || cat.endsWith('\n')) };
}

// ---- protection plans ----

export async function createPlan(s: ApiSession, body: Record<string, unknown>): Promise<string> {
  const res = await s.call<{ protection_plan: { id: string } }>('POST', '/bulwark-protection-plans', { protection_plan: body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.protection_plan.id;
}

export async function startRun(s: ApiSession, planId: string): Promise<string> {
  const res = await s.call<{ plan_run: { id: string } }>('POST', `/bulwark-protection-plans/${planId}/runs`, {});
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res.body.plan_run.id;
}

/** Polls a run until `done` says so (by default: available or error). */
export async function waitRun<T extends { status: string }>(s: ApiSession, runId: string, done: (r: T) => boolean = (r) => r.status === 'available' || r.status === 'error', timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = (await s.call<{ plan_run: T }>('GET', `/bulwark-plan-runs/${runId}`)).body.plan_run;
    if (done(r)) return r;
    assert.ok(Date.now() < deadline, `run ${runId} still ${r.status} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
