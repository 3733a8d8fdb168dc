// Issue 2 benchmark: snapshot time vs volume size, NBD throughput of an attached
// volume next to qemu-img convert of the same image, and API create+delete
// round trips per second. Prints figures; asserts nothing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from '../src/drivers/nbd/client.js';
import { deploy, type ApiSession } from '../test/harness/aio.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function create(s: ApiSession, body: Record<string, unknown>): Promise<string> {
  const r = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: body });
  if (r.status !== 202) throw new Error(JSON.stringify(r.body));
  await s.waitFor(`/volumes/${r.body.volume.id}`, 'volume', ['available'], 120_000);
  return r.body.volume.id;
}

async function attach(s: ApiSession, id: string): Promise<NbdClient> {
  const r = await s.call<{ connection_info: { data: { socket_path: string; export_name: string } } }>('POST', `/volumes/${id}/action`, { 'os-initialize_connection': { connector: { host: 'testhost' } } });
  return NbdClient.connectUnix(r.body.connection_info.data.socket_path, r.body.connection_info.data.export_name);
}

async function snapshotMs(s: ApiSession, volumeId: string): Promise<number> {
  const t0 = performance.now();
  const r = await s.call<{ snapshot: { id: string } }>('POST', '/snapshots', { snapshot: { volume_id: volumeId, force: true } });
  await s.waitFor(`/snapshots/${r.body.snapshot.id}`, 'snapshot', ['available']);
  return performance.now() - t0;
}

/** Sequential I/O with `depth` requests in flight of `chunk` bytes each. */
async function sequential(nbd: NbdClient, total: number, chunk: number, depth: number, write: boolean): Promise<number> {
  const data = Buffer.alloc(chunk, 0x5c);
  for (let i = 0; i < chunk; i += 4096) data.writeUInt32LE(i, i);
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < total) {
      const off = next;
      next += chunk;
      if (write) await nbd.write(off, data);
      else await nbd.read(off, chunk);
    }
  };
  await Promise.all(Array.from({ length: depth }, lane));
  if (write) await nbd.flush();
  return total / MiB / ((performance.now() - t0) / 1000);
}

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now();
  execFileSync(cmd, args, { stdio: 'ignore' });
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const d = await deploy();
  const s = d.member;
  const admin = d.admin;
  // Room for the 64 GiB volume in the member's quota.
  await admin.call('PUT', `/os-quota-sets/${s.projectId}`, { quota_set: { gigabytes: 1000, volumes: 1000, snapshots: 1000 } });
  const out: string[] = [];
  try {
    // 1. Snapshot time must not grow with size.
    const small = await create(s, { size: 1, name: 'bench-1g' });
    const big = await create(s, { size: 64, name: 'bench-64g' });
    const nbdSmall = await attach(s, small);
    await sequential(nbdSmall, GiB, 4 * MiB, 4, true); // fully written 1 GiB
    const nbdBig = await attach(s, big);
    for (let g = 0; g < 64; g += 8) await nbdBig.write(g * GiB, Buffer.alloc(MiB, 1)); // sparse
    await nbdBig.flush();
    const snapSmall: number[] = [];
    const snapBig: number[] = [];
    for (let i = 0; i < 5; i++) {
      snapSmall.push(await snapshotMs(s, small));
      snapBig.push(await snapshotMs(s, big));
    }
    out.push(`snapshot (API request to available, median of 5): 1 GiB ${median(snapSmall).toFixed(1)} ms, 64 GiB sparse ${median(snapBig).toFixed(1)} ms`);

    // 2. Sequential NBD throughput vs qemu-img convert of the same image.
    const tput = await create(s, { size: 1, name: 'bench-tput' });
    const nbd = await attach(s, tput);
    const w = await sequential(nbd, GiB, 4 * MiB, 4, true);
    const r = await sequential(nbd, GiB, 4 * MiB, 4, false);
    const w16 = await sequential(nbd, GiB, 2 * MiB, 16, true);
    const r16 = await sequential(nbd, GiB, 2 * MiB, 16, false);
    await nbd.close();
    const layerPath = (await d.roles.store.db.selectFrom('volumes').innerJoin('layers', 'layers.id', 'volumes.active_layer_id').select('layers.path').where('volumes.id', '=', tput).executeTakeFirstOrThrow()).path;
    // Baseline output on tmpfs, so the baseline measures qemu-img, not this disk.
    const scratch = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'bulwark-bench-'));
    // Baselines on the same image file: read it all (qcow2 -> raw) and write it all (raw -> qcow2).
    const readMs = timed('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', layerPath, join(scratch, 'copy.raw')]);
    const writeMs = timed('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(scratch, 'copy.raw'), join(scratch, 'copy.qcow2')]);
    const info = await attachInfo(s, tput);
    const nbdcopyMs = timed('nbdcopy', [`nbd+unix:///${info.export}?socket=${info.socket}`, 'null:']);
    const sizeMiB = statSync(join(scratch, 'copy.raw')).size / MiB;
    rmSync(scratch, { recursive: true, force: true });
    out.push(`NBD sequential, Bulwark's client, 4 MiB x4 in flight: write ${w.toFixed(0)} MiB/s, read ${r.toFixed(0)} MiB/s`);
    out.push(`NBD sequential, Bulwark's client, 2 MiB x16 in flight: write ${w16.toFixed(0)} MiB/s, read ${r16.toFixed(0)} MiB/s`);
    out.push(`nbdcopy read of the attached volume: ${(sizeMiB / (nbdcopyMs / 1000)).toFixed(0)} MiB/s`);
    out.push(`baseline qemu-img convert of the same image (output on tmpfs): read (qcow2->raw) ${(sizeMiB / (readMs / 1000)).toFixed(0)} MiB/s, write (raw->qcow2) ${(sizeMiB / (writeMs / 1000)).toFixed(0)} MiB/s`);

    // 3. API create+delete round trips.
    const n = 40;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const id = await create(s, { size: 1 });
      await s.call('DELETE', `/volumes/${id}`);
      await s.waitFor(`/volumes/${id}`, 'volume', ['deleted']);
    }
    const rt = n / ((performance.now() - t0) / 1000);
    out.push(`API create->available + delete->gone round trips: ${rt.toFixed(1)} per second (sequential, ${n} rounds)`);
  } finally {
    await d.stop();
  }
  console.log(out.join('\n'));
}

async function attachInfo(s: ApiSession, id: string): Promise<{ socket: string; export: string }> {
  const r = await s.call<{ connection_info: { data: { socket_path: string; export_name: string } } }>('POST', `/volumes/${id}/action`, { 'os-initialize_connection': { connector: { host: 'testhost' } } });
  return { socket: r.body.connection_info.data.socket_path, export: r.body.connection_info.data.export_name };
}

await main();
