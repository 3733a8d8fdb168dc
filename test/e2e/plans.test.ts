// Protection plans end to end with real VMs (TCG): two instances in two
// stages, each writing numbered records to its own ext4 data volume. A run's
// snapshots, cloned and checked on the host, are clean without journal
// recovery and hold complete records; a snapshot taken without quiesce is not.
// Faults: a snapshot failing on one storage host mid-group (a full pool),
// and an instance whose guest agent is not running, under both
// require_quiesce settings. Every fault ends with every guest thawed (asked
// of the guest agent itself) and no snapshot of the run left.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deploy, type ApiSession, type Deployment } from '../harness/aio.js';
import { guestUnsupportedReason } from '../harness/guest.js';
import { createVolume } from './helpers.js';
import { bootServer, createPlan, startRun, waitRun, checkSnapshotFilesystem, guestFreezeStatus, qgaSocketOf, uploadBootImages, waitServer, type BootImages, type BootedServer } from './compute-helpers.js';
import { QgaConnection } from '../../src/drivers/qga/connection.js';
import { waitForAgent } from '../../src/drivers/vm/index.js';

const unsupported = guestUnsupportedReason() ?? (process.getuid?.() !== 0 ? 'needs root (mounts a small tmpfs pool)' : null);

interface PlanRun {
  id: string;
  status: string;
  consistency: string | null;
  freeze_window_ms: number | null;
  snapshot_ids: string[];
  error: string | null;
  record: {
    freeze_order: string[];
    thaw_order: string[];
    warnings: string[];
    window: { ms: number | null };
    stages: { instances: { instance_id: string; quiesced: boolean; frozen_ms: number | null }[] }[];
  };
}

async function runPlan(s: ApiSession, planId: string): Promise<PlanRun> {
  return waitRun<PlanRun>(s, await startRun(s, planId), undefined, 120_000);
}

/** Snapshots a failed run may have left: none may be available. */
async function runSnapshotsLeft(s: ApiSession, runId: string): Promise<{ id: string; status: string }[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const list = await s.call<{ snapshots: { id: string; status: string; metadata: Record<string, string> }[] }>('GET', '/snapshots/detail');
    const mine = list.body.snapshots.filter((x) => x.metadata['bulwark_plan_run_id'] === runId);
    if (mine.every((x) => x.status !== 'deleting') || Date.now() > deadline) return mine;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the guest agent inside the guest for good (guest-exec). */
async function killAgent(d: Deployment, serverId: string): Promise<void> {
  const conn = await QgaConnection.connect(qgaSocketOf(d, serverId), { timeoutMs: 10_000 });
  try {
    // The guest's init restarts the agent unless /run/no-agent exists.
    await conn.execute('guest-exec', { path: '/bin/sh', arg: ['-c', 'mkdir -p /run && touch /run/no-agent && killall qemu-ga'] }).catch(() => undefined);
  } finally {
    await conn.close().catch(() => undefined);
  }
  // guest-exec returns before its command has run: wait until the agent no longer answers.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answered = await QgaConnection.connect(qgaSocketOf(d, serverId), { timeoutMs: 1_500 }).then(
      async (c) => {
        await c.close();
        return true;
      },
      () => false,
    );
    if (!answered) return;
    assert.ok(Date.now() < deadline, 'the guest agent still answers after killall');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('protection plans with ordered quiesce', { skip: unsupported ?? false, timeout: 900_000 }, () => {
  let d: Deployment;
  let work: string;
  let smallPool: string;
  let images: BootImages;
  let a: BootedServer;
  let b: BootedServer;
  let bSmallVolume: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-plans-'));
    smallPool = join(work, 'small-pool');
    mkdirSync(smallPool);
    // A pool on a 64 MiB tmpfs: filled on purpose to make one host's snapshot fail.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', smallPool]);
    const dataDir = join(work, 'data');
    d = await deploy({
      dataDir,
      roles: ['api', 'scheduler', 'volume', 'compute'],
      overrides: { volume: { pools: [{ name: 'default', path: join(dataDir, 'pools/default'), capacityGiB: 1024 }, { name: 'small', path: smallPool, capacityGiB: 8 }] } },
    });
    images = await uploadBootImages(d.member, work);
    [a, b] = await Promise.all([bootServer(d, d.member, images, 'app-db'), bootServer(d, d.member, images, 'app-front')]);
    // A volume of b on the small pool (a type that asks for it), attached while b is stopped.
    const type = await d.admin.call<{ volume_type: { id: string } }>('POST', '/types', { volume_type: { name: 'small', extra_specs: { pool_name: 'small' } } });
    assert.equal(type.status, 200, JSON.stringify(type.body));
    bSmallVolume = await createVolume(d.member, { size: 1, volume_type: 'small', name: 'front-small' });
    const vol = await d.member.call<{ volume: Record<string, unknown> }>('GET', `/volumes/${bSmallVolume}`);
    assert.match(String(vol.body.volume['os-vol-host-attr:host'] ?? ''), /#small$|^$/);
    await d.member.request('POST', `/compute/v2.1/servers/${b.id}/action`, { 'os-stop': null });
    await waitServer(d.member, b.id, ['SHUTOFF']);
    const att = await d.member.request('POST', `/compute/v2.1/servers/${b.id}/os-volume_attachments`, { volumeAttachment: { volumeId: bSmallVolume } });
    assert.equal(att.status, 200, JSON.stringify(att.body));
    await d.member.request('POST', `/compute/v2.1/servers/${b.id}/action`, { 'os-start': null });
    await waitServer(d.member, b.id, ['ACTIVE']);
    await waitForAgent(qgaSocketOf(d, b.id), 120_000);
  });

  after(async () => {
    await d?.stop();
    try {
      execFileSync('umount', ['-l', smallPool]);
    } catch {
      // already gone
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('two stages: freeze in order, one group snapshot, thaw in reverse; clones are clean with complete records', async () => {
    const planId = await createPlan(d.member, {
      name: 'app',
      stages: [{ instances: [{ instance_id: a.id, volume_ids: [a.dataVolumeId] }] }, { instances: [{ instance_id: b.id, volume_ids: [b.dataVolumeId] }] }],
      require_quiesce: true,
      freeze_deadline_ms: 30_000,
    });
    const runId = await startRun(d.member, planId);
    // While the guests freeze, another job lands on the same storage host: it
    // must wait for the run's snapshots (the run holds the host), not run
    // between the prepare and the snapshot and stretch the freeze.
    const db = d.roles.store.db;
    const runJob = (kind: string) => db.selectFrom('jobs').selectAll().where('resource_id', '=', runId).where('kind', '=', kind).executeTakeFirst();
    let prepared = await runJob('prepare_snapshot_set');
    for (const deadline = Date.now() + 60_000; prepared?.state !== 'done'; prepared = await runJob('prepare_snapshot_set')) {
      assert.ok(Date.now() < deadline && prepared?.state !== 'failed', `the run's prepare job: ${JSON.stringify(prepared)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const competitor = await d.roles.jobs.enqueue(db, { kind: 'extend_volume', target: prepared.target, resourceId: 'not-a-volume', payload: { newSize: 2 } });
    const run = await waitRun<PlanRun>(d.member, runId, undefined, 120_000);
    assert.equal(run.status, 'available', JSON.stringify(run));
    const taken = await runJob('snapshot_set');
    const other = await db.selectFrom('jobs').selectAll().where('id', '=', competitor).executeTakeFirstOrThrow();
    assert.ok(taken && competitor < taken.id, 'the other job was queued before the run asked for its snapshots');
    assert.ok(other.state === 'done' && Date.parse(other.updated_at!) >= Date.parse(taken.updated_at!), `the other job ran after the snapshots (${other.updated_at} vs ${taken.updated_at})`);
    assert.deepEqual(await db.selectFrom('job_holds').selectAll().execute(), [], 'the run let go of its hold');
    assert.equal(run.consistency, 'application');
    assert.deepEqual(run.record.freeze_order, [a.id, b.id]);
    assert.deepEqual(run.record.thaw_order, [b.id, a.id]);
    assert.ok(run.freeze_window_ms !== null && run.freeze_window_ms > 0 && run.freeze_window_ms < 30_000, String(run.freeze_window_ms));
    assert.equal(run.snapshot_ids.length, 2);
    for (const sid of run.snapshot_ids) {
      const snap = await d.member.call<{ snapshot: { status: string } }>('GET', `/snapshots/${sid}`);
      assert.equal(snap.body.snapshot.status, 'available');
      const check = await checkSnapshotFilesystem(d.member, sid, work);
      assert.equal(check.fsckCode, 0, check.fsckOutput);
      assert.doesNotMatch(check.fsckOutput, /recovery/i);
      assert.ok(check.records.length > 0, 'the writer wrote records before the freeze');
      assert.ok(check.recordsComplete, `records not complete: last ${check.records.slice(-3).join(',')}`);
    }
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
    assert.equal(await guestFreezeStatus(d, b.id), 'thawed');

    // The same check on a snapshot taken without quiesce: the journal needs recovery.
    const snap = await d.member.call<{ snapshot: { id: string } }>('POST', '/snapshots', { snapshot: { volume_id: a.dataVolumeId, force: true } });
    await d.member.waitFor(`/snapshots/${snap.body.snapshot.id}`, 'snapshot', ['available']);
    const crash = await checkSnapshotFilesystem(d.member, snap.body.snapshot.id, work);
    // e2fsck -n cannot replay a journal; it says so (and checks the stale image).
    assert.match(crash.fsckOutput, /journal recovery/i, `an unquiesced snapshot of a mounted ext4 should need journal recovery:\n${crash.fsckOutput}`);
  });

  it('a snapshot failing on one storage host mid-group: all thawed, no snapshot of the run left', async () => {
    const planId = await createPlan(d.member, {
      name: 'split',
      stages: [{ instances: [{ instance_id: a.id, volume_ids: [a.dataVolumeId] }] }, { instances: [{ instance_id: b.id, volume_ids: [b.dataVolumeId, bSmallVolume] }] }],
      require_quiesce: true,
      freeze_deadline_ms: 20_000,
    });
    // Fill the small pool so that its overlay cannot be created.
    const filler = join(smallPool, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=100'], { stdio: 'ignore' });
    } catch {
      // ENOSPC is the point
    }
    try {
      const run = await runPlan(d.member, planId);
      assert.equal(run.status, 'error', JSON.stringify(run));
      assert.match(String(run.error), /snapshot/i);
      assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
      assert.equal(await guestFreezeStatus(d, b.id), 'thawed');
      const left = await runSnapshotsLeft(d.member, run.id);
      assert.ok(left.every((x) => x.status !== 'available'), JSON.stringify(left));
      const plainList = await d.member.call<{ snapshots: { id: string }[] }>('GET', '/snapshots');
      assert.ok(!plainList.body.snapshots.some((x) => run.snapshot_ids.includes(x.id) && left.find((l) => l.id === x.id)?.status === 'available'));
    } finally {
      rmSync(filler, { force: true });
    }
  });

  it('an instance whose agent is not running: crash-consistent when allowed, a failed run when quiesce is required', async () => {
    await killAgent(d, b.id);
    const lenient = await createPlan(d.member, {
      name: 'lenient',
      stages: [{ instances: [{ instance_id: a.id, volume_ids: [a.dataVolumeId] }] }, { instances: [{ instance_id: b.id, volume_ids: [b.dataVolumeId] }] }],
      require_quiesce: false,
      freeze_deadline_ms: 20_000,
    });
    const ok = await runPlan(d.member, lenient);
    assert.equal(ok.status, 'available', JSON.stringify(ok));
    assert.equal(ok.consistency, 'mixed');
    assert.deepEqual(ok.record.freeze_order, [a.id]);
    const bRecord = ok.record.stages[1]!.instances[0]!;
    assert.equal(bRecord.quiesced, false);
    assert.ok(ok.record.warnings.some((w) => w.includes(b.id)), JSON.stringify(ok.record.warnings));
    assert.equal(ok.snapshot_ids.length, 2);

    const strict = await createPlan(d.member, {
      name: 'strict',
      stages: [{ instances: [{ instance_id: a.id, volume_ids: [a.dataVolumeId] }] }, { instances: [{ instance_id: b.id, volume_ids: [b.dataVolumeId] }] }],
      require_quiesce: true,
      freeze_deadline_ms: 20_000,
    });
    const failed = await runPlan(d.member, strict);
    assert.equal(failed.status, 'error');
    assert.match(String(failed.error), /quiesce failed/);
    assert.equal(await guestFreezeStatus(d, a.id), 'thawed');
    assert.deepEqual(await runSnapshotsLeft(d.member, failed.id), []);
  });
});
