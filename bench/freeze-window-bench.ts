// The group freeze window of protection-plan runs (first freeze sent to last
// thaw answered) for plans of 1, 2 and 4 instances under TCG, each instance
// with two volumes (boot + data, the data volume written by the guest's
// record writer). Plans of 2 and 4 have two stages. Each plan runs several
// times; the median and the worst are printed.
//
// Baseline, same invocation: the same guests frozen and thawed directly over
// their guest agents in the same stage order, with no snapshot and no job
// hops: the floor the orchestration is measured against.
//
//   node dist/bench/freeze-window-bench.js        (BENCH_RUNS=N, default 5)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deploy, type Deployment } from '../test/harness/aio.js';
import { bootServer, qgaSocketOf, startRun, uploadBootImages, waitRun, type BootedServer } from '../test/e2e/compute-helpers.js';
import { QgaConnection } from '../src/drivers/qga/connection.js';
import { fsfreezeFreeze, fsfreezeThaw } from '../src/drivers/qga/commands.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);

interface RunView {
  status: string;
  freeze_window_ms: number | null;
  error: string | null;
  record: {
    snapshot_ms: number | null;
    stages: { instances: { frozen_ms: number | null; freeze_started_at: number | null; frozen_at: number | null; thaw_started_at: number | null; thawed_at: number | null }[] }[];
  };
  snapshot_ids: string[];
}

function stagesOf(servers: readonly BootedServer[]): BootedServer[][] {
  if (servers.length === 1) return [servers.slice()];
  const half = Math.ceil(servers.length / 2);
  return [servers.slice(0, half), servers.slice(half)];
}

/** Freeze stage by stage (concurrent inside), thaw in reverse, straight over QGA. */
async function directWindow(d: Deployment, stages: BootedServer[][]): Promise<number> {
  const conns = new Map<string, QgaConnection>();
  for (const st of stages) for (const srv of st) conns.set(srv.id, await QgaConnection.connect(qgaSocketOf(d, srv.id), { timeoutMs: 10_000 }));
  const t0 = performance.now();
  for (const st of stages) await Promise.all(st.map((srv) => fsfreezeFreeze(conns.get(srv.id)!, { timeoutMs: 30_000 })));
  for (const st of [...stages].reverse()) await Promise.all(st.map((srv) => fsfreezeThaw(conns.get(srv.id)!)));
  const ms = performance.now() - t0;
  for (const c of conns.values()) await c.close();
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bulwark-freeze-bench-'));
  const d = await deploy({ roles: ['api', 'scheduler', 'volume', 'compute'], overrides: { logLevel: 'silent' } });
  try {
    const s = d.member;
    const images = await uploadBootImages(s, work);
    const servers: BootedServer[] = [];
    for (let i = 0; i < 4; i += 2) servers.push(...(await Promise.all([bootServer(d, s, images, `bench-${i}`), bootServer(d, s, images, `bench-${i + 1}`)])));
    console.log(`freeze window, ${RUNS} runs per plan, TCG guests writing records (median / worst, ms)`);
    console.log('instances  stages  volumes  plan window            snapshot  direct QGA baseline  target');
    for (const n of [1, 2, 4]) {
      const stages = stagesOf(servers.slice(0, n));
      const plan = await s.call<{ protection_plan: { id: string } }>('POST', '/bulwark-protection-plans', {
        protection_plan: {
          name: `bench-${n}`,
          stages: stages.map((st) => ({ instances: st.map((srv) => ({ instance_id: srv.id, volume_ids: [srv.bootVolumeId, srv.dataVolumeId] })) })),
          require_quiesce: true,
          freeze_deadline_ms: 60_000,
        },
      });
      if (!plan.body.protection_plan) throw new Error(JSON.stringify(plan.body));
      const windows: number[] = [];
      const snaps: number[] = [];
      // Where the window goes: the guests' own freeze, the orchestration between
      // the last freeze answer and the first thaw sent, and the thaws.
      const freezing: number[] = [];
      const between: number[] = [];
      const thawing: number[] = [];
      const direct: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const run = await waitRun<RunView>(s, await startRun(s, plan.body.protection_plan.id));
        if (run.status !== 'available' || run.freeze_window_ms === null) throw new Error(`run failed: ${run.error}`);
        windows.push(run.freeze_window_ms);
        snaps.push(run.record.snapshot_ms ?? 0);
        const all = run.record.stages.flatMap((st) => st.instances);
        const t = (k: 'freeze_started_at' | 'frozen_at' | 'thaw_started_at' | 'thawed_at') => all.map((i) => i[k] ?? 0);
        freezing.push(Math.max(...t('frozen_at')) - Math.min(...t('freeze_started_at')));
        between.push(Math.min(...t('thaw_started_at')) - Math.max(...t('frozen_at')));
        thawing.push(Math.max(...t('thawed_at')) - Math.min(...t('thaw_started_at')));
        // Drop the run's snapshots so that chains stay short between runs.
        for (const id of run.snapshot_ids) await s.call('DELETE', `/snapshots/${id}`);
        direct.push(await directWindow(d, stages));
      }
      const target = n === 1 ? 200 : n === 4 ? 400 : null;
      const med = median(windows);
      const verdict = target === null ? '' : `${med < target ? '✓' : '✗'} < ${target}`;
      console.log(
        `${String(n).padStart(9)}  ${String(stages.length).padStart(6)}  ${String(n * 2).padStart(7)}  ${med.toFixed(1).padStart(8)} / ${Math.max(...windows).toFixed(1).padEnd(8)}  ${median(snaps).toFixed(1).padStart(8)}  ${median(direct).toFixed(1).padStart(8)} / ${Math.max(...direct).toFixed(1).padEnd(8)}  ${verdict}`,
      );
      console.log(`           medians: freezing ${median(freezing).toFixed(1)} ms, last frozen → first thaw sent ${median(between).toFixed(1)} ms (snapshot + job hops), thawing ${median(thawing).toFixed(1)} ms`);
    }
  } finally {
    await d.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
