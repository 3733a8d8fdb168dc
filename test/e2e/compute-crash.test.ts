// kill -9 while guests are frozen, with every role in its own process:
// - the compute role dies right after a freeze: the detached watchdog thaws
//   the guest at its deadline, and the restarted role re-attaches to the
//   still-running QEMU and reports the thaw;
// - the compute role dies in the middle of booting a server: the restarted
//   role takes its job back and finishes the boot on the QEMU already running;
// - the plan orchestrator (scheduler) dies in the middle of a run with stage 1
//   frozen: stage 1 is thawed by the deadline (asked of the guest agent), and
//   the orchestrator that takes the run over fails it and leaves no snapshot.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiSession } from '../harness/aio.js';
import { guestUnsupportedReason } from '../harness/guest.js';
import { makeCluster, type Cluster, type RoleProcess } from '../harness/processes.js';
import { QgaConnection } from '../../src/drivers/qga/connection.js';
import { bootServer, createPlan, guestFreezeStatus, qgaSocketOf, serverAction, startRun, uploadBootImages, waitRun, waitServer, type BootedServer, type HasInstances } from './compute-helpers.js';

const unsupported = guestUnsupportedReason();

async function quiesceState(s: ApiSession, id: string): Promise<{ state: string; detail: string | null }> {
  const res = await s.request<{ quiesce: { state: string; detail: string | null } }>('GET', `/compute/v2.1/servers/${id}/os-quiesce`);
  return res.body.quiesce;
}

describe('compute and orchestrator killed while guests are frozen', { skip: unsupported ?? false, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let work: string;
  let s: ApiSession;
  let d: HasInstances;
  let a: BootedServer;
  let b: BootedServer;
  let compute: RoleProcess;
  let scheduler: RoleProcess;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-compute-crash-'));
    cluster = await makeCluster({ extra: { compute: { shutdownGraceMs: 500 } } });
    d = { config: { compute: { instancesDir: join(cluster.dir, 'instances') } } };
    await cluster.start('api');
    scheduler = await cluster.start('scheduler');
    await cluster.start('volume');
    compute = await cluster.start('compute');
    s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
    const images = await uploadBootImages(s, work);
    [a, b] = await Promise.all([bootServer(d, s, images, 'db'), bootServer(d, s, images, 'front')]);
  });

  after(async () => {
    await cluster?.stopAll();
    rmSync(work, { recursive: true, force: true });
    if (cluster) rmSync(cluster.dir, { recursive: true, force: true });
  });

  it('compute killed after a freeze: the watchdog thaws at the deadline; the restarted role re-attaches', async () => {
    const frozen = await serverAction(s, a.id, { quiesce: { deadline_seconds: 3 } });
    assert.equal(frozen.status, 200, JSON.stringify(frozen.body));
    await cluster.kill9(compute);
    assert.equal(await guestFreezeStatus(d, a.id), 'frozen');
    await new Promise((r) => setTimeout(r, 3_500));
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
    compute = await cluster.start('compute');
    // Still the same running VM, and the row catches up with the watchdog's thaw.
    const shown = await s.request<{ server: { status: string } }>('GET', `/compute/v2.1/servers/${a.id}`);
    assert.equal(shown.body.server.status, 'ACTIVE');
    const until = Date.now() + 15_000;
    for (;;) {
      const q = await quiesceState(s, a.id);
      if (q.state === 'thawed') break;
      assert.ok(Date.now() < until, `quiesce state still ${q.state}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The re-attached role can freeze and thaw it again.
    assert.equal((await serverAction(s, a.id, { quiesce: { deadline_seconds: 30 } })).status, 200);
    assert.equal(await guestFreezeStatus(d, a.id), 'frozen');
    assert.equal((await serverAction(s, a.id, { unquiesce: {} })).status, 200);
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
  });

  it('compute killed while it boots a server: the restarted role finishes the boot with one QEMU', async () => {
    const images = await uploadBootImages(s, work, 'console=ttyS0');
    const boot = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: 1, imageRef: images.rootId } });
    await s.waitFor(`/volumes/${boot.body.volume.id}`, 'volume', ['available']);
    const created = await s.request<{ server: { id: string } }>('POST', '/compute/v2.1/servers', {
      server: { name: 'interrupted', flavorRef: '1', block_device_mapping_v2: [{ uuid: boot.body.volume.id, source_type: 'volume', destination_type: 'volume', boot_index: 0 }] },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const id = created.body.server.id;
    // Kill it as soon as its QEMU exists (mid-spawn: attachments made, row still BUILD).
    const pidFile = join(d.config.compute.instancesDir!, id, 'qemu.pid');
    const until = Date.now() + 60_000;
    while (!existsSync(pidFile)) {
      assert.ok(Date.now() < until, 'QEMU never started');
      await new Promise((r) => setTimeout(r, 5));
    }
    await cluster.kill9(compute);
    compute = await cluster.start('compute');
    await waitServer(s, id, ['ACTIVE']);
    const qemus = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${id}/qemu.pid`);
      } catch {
        return false;
      }
    });
    assert.equal(qemus.length, 1, `QEMU processes for the server: ${qemus.join(',')}`);
    const vol = await s.call<{ volume: { status: string } }>('GET', `/volumes/${boot.body.volume.id}`);
    assert.equal(vol.body.volume.status, 'in-use');
    assert.equal((await s.request('DELETE', `/compute/v2.1/servers/${id}`)).status, 204);
    await waitServer(s, id, ['DELETED']);
  });

  it('orchestrator killed mid-run with stage 1 frozen: thawed by the deadline, the run fails cleanly', async () => {
    // b's agent is stopped for good, so stage 2 waits for it while stage 1 is frozen.
    const conn = await QgaConnection.connect(qgaSocketOf(d, b.id), { timeoutMs: 10_000 });
    await conn.execute('guest-exec', { path: '/bin/sh', arg: ['-c', 'mkdir -p /run && touch /run/no-agent && killall qemu-ga'] }).catch(() => undefined);
    await conn.close();
    await new Promise((r) => setTimeout(r, 1_000));

    const planId = await createPlan(s, {
      name: 'crashy',
      stages: [{ instances: [{ instance_id: a.id, volume_ids: [a.dataVolumeId] }] }, { instances: [{ instance_id: b.id, volume_ids: [b.dataVolumeId] }] }],
      require_quiesce: true,
      freeze_deadline_ms: 4_000,
    });
    const runId = await startRun(s, planId);
    const until = Date.now() + 30_000;
    while ((await quiesceState(s, a.id)).state !== 'frozen') {
      assert.ok(Date.now() < until, 'stage 1 never froze');
      await new Promise((r) => setTimeout(r, 5));
    }
    const killedAt = Date.now();
    await cluster.kill9(scheduler);
    assert.equal(await guestFreezeStatus(d, a.id), 'frozen');
    // Nobody orchestrates now: the deadline (4 s from the run's start) thaws it.
    await new Promise((r) => setTimeout(r, Math.max(0, 5_000 - (Date.now() - killedAt))));
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');

    // The next orchestrator takes the run over once its lease has expired, and fails it.
    scheduler = await cluster.start('scheduler');
    const run = await waitRun<{ status: string; error: string | null }>(s, runId, undefined, 60_000);
    assert.equal(run.status, 'error');
    assert.match(String(run.error), /orchestrator|quiesce/);
    const snaps = await s.call<{ snapshots: { status: string; metadata: Record<string, string> }[] }>('GET', '/snapshots/detail');
    assert.ok(!snaps.body.snapshots.some((x) => x.metadata['bulwark_plan_run_id'] === runId && x.status === 'available'));
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
  });
});
