// A compute host that is not the storage host: its VMs reach their volumes
// over NBD on TCP with TLS-PSK through the pool's gateway (the key in a 0600
// file, never in QEMU's command line), and a plan run quiesces and snapshots
// them like local ones.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiSession } from '../harness/aio.js';
import { guestUnsupportedReason } from '../harness/guest.js';
import { freePort } from '../harness/ports.js';
import { makeCluster, type Cluster } from '../harness/processes.js';
import { bootServer, createPlan, guestFreezeStatus, startRun, uploadBootImages, waitRun, type HasInstances } from './compute-helpers.js';

const unsupported = guestUnsupportedReason();

describe('a compute host apart from the storage host', { skip: unsupported ?? false, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let work: string;
  let s: ApiSession;
  let d: HasInstances;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-compute-remote-'));
    cluster = await makeCluster({ extra: { compute: { shutdownGraceMs: 500 }, volume: { nbdTcp: { host: '127.0.0.1', port: await freePort() } } } });
    d = { config: { compute: { instancesDir: join(cluster.dir, 'instances') } } };
    await cluster.start('api');
    await cluster.start('scheduler');
    await cluster.start('volume');
    await cluster.start('compute', ['--host-name', 'computehost']);
    s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
  });
  after(async () => {
    await cluster?.stopAll();
    rmSync(work, { recursive: true, force: true });
    if (cluster) rmSync(cluster.dir, { recursive: true, force: true });
  });

  it('boots over NBD+TLS, keeps the key out of argv, and is protected by a plan', async () => {
    const images = await uploadBootImages(s, work);
    const srv = await bootServer(d, s, images, 'remote');
    const admin = await ApiSession.login(cluster.url, 'admin', 'admin-pw', 'admin');
    const shown = await admin.request<{ server: Record<string, unknown> }>('GET', `/compute/v2.1/servers/${srv.id}`);
    assert.equal(shown.body.server['OS-EXT-SRV-ATTR:host'], 'computehost');
    const pid = Number(readFileSync(join(d.config.compute.instancesDir!, srv.id, 'qemu.pid'), 'utf8').trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    assert.match(cmdline, /server\.type=inet/);
    assert.match(cmdline, /tls-creds-psk/);
    const vol = await s.call<{ volume: { attachments: { host_name: string }[] } }>('GET', `/volumes/${srv.dataVolumeId}`);
    assert.equal(vol.body.volume.attachments[0]?.host_name, 'computehost');
    // The key is in a 0600 file of the instance; it must not be in QEMU's argv.
    const tlsDir = join(d.config.compute.instancesDir!, srv.id, 'tls');
    for (const disk of readdirSync(tlsDir)) {
      const key = readFileSync(join(tlsDir, disk, 'keys.psk'), 'utf8').trim().split(':')[1]!;
      assert.ok(key.length >= 32 && !cmdline.includes(key));
    }

    const planId = await createPlan(s, { name: 'remote', stages: [{ instances: [{ instance_id: srv.id }] }], freeze_deadline_ms: 30_000 });
    const run = await waitRun<{ status: string; consistency: string; snapshot_ids: string[]; error: string | null }>(s, await startRun(s, planId));
    assert.equal(run.status, 'available', String(run.error));
    assert.equal(run.consistency, 'application');
    assert.equal(run.snapshot_ids.length, 2);
    assert.equal(await guestFreezeStatus(d, srv.id), 'thawed');
  });
});
