// Restore points: a plan run that also backs its snapshots up (incremental
// from the second run on) is restored as a unit after its instances are gone:
// every volume restored from its backup, the servers booted stage by stage
// (stage 2 only once stage 1 is ACTIVE), each data volume holding the
// writer's records exactly as they were at the freeze.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deploy, type Deployment } from '../harness/aio.js';
import { guestUnsupportedReason } from '../harness/guest.js';
import { bootServer, checkSnapshotFilesystem, checkVolumeFilesystem, createPlan, startRun, uploadBootImages, waitRun, waitServer, type BootedServer } from './compute-helpers.js';

const unsupported = guestUnsupportedReason();

interface RunView {
  id: string;
  status: string;
  backup_ids: string[];
  snapshot_ids: string[];
  record: {
    backup: { status: string } | null;
    blueprints: { instance_id: string; volumes: { volume_id: string; snapshot_id: string; backup_id: string }[] }[][];
    restore?: { status: string; error: string | null; servers: { stage: number; from_instance_id: string; server_id: string; volume_ids: string[]; active_at: string }[] };
  };
}

describe('restore points: a plan run backed up and restored as a unit', { skip: unsupported ?? false, timeout: 900_000 }, () => {
  let d: Deployment;
  let work: string;
  let a: BootedServer;
  let b: BootedServer;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bulwark-restore-points-'));
    d = await deploy({ roles: ['api', 'scheduler', 'volume', 'compute', 'backup'] });
    const images = await uploadBootImages(d.member, work);
    [a, b] = await Promise.all([bootServer(d, d.member, images, 'db'), bootServer(d, d.member, images, 'web')]);
  });
  after(async () => {
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('backs up every run, restores the last one as a unit in stage order', async () => {
    const s = d.member;
    const planId = await createPlan(s, {
      name: 'app',
      stages: [{ instances: [{ instance_id: a.id }] }, { instances: [{ instance_id: b.id }] }],
      backup: true,
      freeze_deadline_ms: 30_000,
    });
    const trigger = async (): Promise<RunView> => waitRun<RunView>(s, await startRun(s, planId));
    const first = await trigger();
    assert.equal(first.status, 'available', JSON.stringify(first));
    assert.equal(first.record.backup?.status, 'available');
    assert.equal(first.backup_ids.length, 4);
    const second = await trigger();
    assert.equal(second.record.backup?.status, 'available', JSON.stringify(second.record.backup));
    for (const id of second.backup_ids) {
      const bk = await s.call<{ backup: { status: string; is_incremental: boolean; snapshot_id: string } }>('GET', `/backups/${id}`);
      assert.equal(bk.body.backup.status, 'available');
      assert.equal(bk.body.backup.is_incremental, true);
    }
    // What each data volume held at the freeze of the second run.
    const expected = new Map<string, number>();
    for (const bp of second.record.blueprints.flat()) {
      const data = bp.volumes.find((v) => v.volume_id === (bp.instance_id === a.id ? a.dataVolumeId : b.dataVolumeId))!;
      const check = await checkSnapshotFilesystem(s, data.snapshot_id, work);
      assert.ok(check.records.length > 0 && check.recordsComplete);
      expected.set(bp.instance_id, check.records.length);
    }

    // The site is lost: the instances are gone.
    for (const srv of [a, b]) {
      assert.equal((await s.request('DELETE', `/compute/v2.1/servers/${srv.id}`)).status, 204);
      await waitServer(s, srv.id, ['DELETED']);
    }

    const res = await s.call('POST', `/bulwark-plan-runs/${second.id}/restore`, {});
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal((await s.call('POST', `/bulwark-plan-runs/${second.id}/restore`, {})).status, 409);
    const restored = await waitRun<RunView>(s, second.id, (r) => r.record.restore?.status === 'available' || r.record.restore?.status === 'error', 600_000);
    const servers = restored.record.restore!.servers;
    assert.equal(restored.record.restore!.status, 'available', restored.record.restore!.error ?? '');
    assert.deepEqual(servers.map((x) => [x.stage, x.from_instance_id]), [[0, a.id], [1, b.id]]);
    // Stage 2 was created only after stage 1 was ACTIVE.
    const web = await s.request<{ server: { created: string } }>('GET', `/compute/v2.1/servers/${servers[1]!.server_id}`);
    assert.ok(Date.parse(web.body.server.created) >= Date.parse(servers[0]!.active_at) - 1000, `${web.body.server.created} vs ${servers[0]!.active_at}`);
    for (const x of servers) await waitServer(s, x.server_id, ['ACTIVE']);

    // Power the restored servers off and read their data volumes on the host:
    // the records of the freeze are all there, in order.
    for (const x of servers) {
      assert.equal((await s.request('DELETE', `/compute/v2.1/servers/${x.server_id}`)).status, 204);
      await waitServer(s, x.server_id, ['DELETED']);
    }
    for (const x of servers) {
      const dataVolume = x.volume_ids[1]!;
      const check = await checkVolumeFilesystem(s, dataVolume, work);
      const n = expected.get(x.from_instance_id)!;
      assert.ok(check.records.length >= n, `${check.records.length} < ${n}`);
      assert.deepEqual(check.records.slice(0, n), Array.from({ length: n }, (_, i) => i + 1));
    }
  });

  it('bad restore requests', async () => {
    const s = d.member;
    assert.equal((await s.call('POST', '/bulwark-plan-runs/00000000-0000-0000-0000-000000000000/restore', {})).status, 404);
    const runs = await s.call<{ protection_plans: { id: string }[] }>('GET', '/bulwark-protection-plans');
    const planRuns = await s.call<{ plan_runs: { id: string }[] }>('GET', `/bulwark-protection-plans/${runs.body.protection_plans[0]!.id}/runs`);
    const runId = planRuns.body.plan_runs[0]!.id;
    assert.equal((await d.other.call('POST', `/bulwark-plan-runs/${runId}/restore`, {})).status, 404);
    assert.equal((await s.call('POST', `/bulwark-plan-runs/${runId}/restore`, { restore: { bogus: 1 } })).status, 400);
  });
});
