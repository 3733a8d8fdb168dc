// Pure parts of protection plans: the cron schedule rules and the CLI's
// argument → request mapping and run summaries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError } from '../../src/cli/client.js';
import * as prq from '../../src/cli/plan-requests.js';
import { cronProblem, nextCronTime } from '../../src/services/plan-cron.js';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const V1 = '33333333-3333-4333-8333-333333333333';
const V2 = '44444444-4444-4444-8444-444444444444';
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('plan schedules (5-field cron, UTC)', () => {
  it('accepts the classic forms, names and ranges', () => {
    for (const e of ['* * * * *', '0 3 * * *', '*/15 * * * *', '0 3 * * mon-fri', '30 2 1,15 jan,jul *', '  0  3 * * *  ', '0 0 * * 7']) assert.equal(cronProblem(e), null, e);
  });

  it('refuses other field counts, aliases, hashes, out-of-range and never-firing expressions', () => {
    for (const e of ['', '* * * *', '* * * * * *', '@daily', 'H * * * *', '61 * * * *', '* 24 * * *', '0 0 30 2 *', 'every day', '* * * * foo']) {
      assert.notEqual(cronProblem(e), null, e);
      assert.throws(() => nextCronTime(e, 0), /invalid schedule/, e);
    }
  });

  it('gives the next time strictly after the given instant, in UTC', () => {
    assert.equal(iso(nextCronTime('* * * * *', at('2025-01-01T00:00:00.000Z'))), '2025-01-01T00:01:00.000Z');
    assert.equal(iso(nextCronTime('* * * * *', at('2025-01-01T00:00:59.999Z'))), '2025-01-01T00:01:00.000Z');
    assert.equal(iso(nextCronTime('0 3 * * *', at('2025-01-01T03:00:00.000Z'))), '2025-01-02T03:00:00.000Z');
    assert.equal(iso(nextCronTime('0 3 * * *', at('2025-01-01T02:59:59.000Z'))), '2025-01-01T03:00:00.000Z');
    assert.equal(iso(nextCronTime('0 0 * * mon', at('2025-01-01T12:00:00.000Z'))), '2025-01-06T00:00:00.000Z');
    // Leap day: the next 29 February after 2025.
    assert.equal(iso(nextCronTime('0 0 29 2 *', at('2025-01-01T00:00:00.000Z'))), '2028-02-29T00:00:00.000Z');
  });
});

describe('bulwark plan requests', () => {
  it('maps create flags to the protection_plan body', () => {
    assert.deepEqual(prq.planCreate({ name: 'app', stage: [`${A}`, `${B}:${V1}+${V2}`] }), {
      method: 'POST',
      path: '/bulwark-protection-plans',
      body: { protection_plan: { name: 'app', stages: [{ instances: [{ instance_id: A }] }, { instances: [{ instance_id: B, volume_ids: [V1, V2] }] }] } },
    });
    const full = prq.planCreate({ name: 'n', stage: [`${A}, ${B}`], description: 'd', requireQuiesce: false, deadlineMs: 5000, schedule: '0 3 * * *', keepLast: 7, backup: true });
    assert.deepEqual((full.body as { protection_plan: unknown }).protection_plan, {
      name: 'n', stages: [{ instances: [{ instance_id: A }, { instance_id: B }] }], description: 'd', require_quiesce: false, freeze_deadline_ms: 5000, schedule: '0 3 * * *', keep_last: 7, backup: true,
    });
    // commander's default for --require-quiesce is true: nothing is sent.
    assert.equal('require_quiesce' in (prq.planCreate({ name: 'n', stage: [A], requireQuiesce: true }).body as { protection_plan: object }).protection_plan, false);
  });

  it('refuses bad --stage values before any request', () => {
    for (const bad of ['', ',', `${A},`, 'vm1', `${A}:`, `${A}:v1`, `${A}:${V1}:${V2}`, `${A}:${V1}+`]) assert.throws(() => prq.parseStage(bad), CliError, bad);
    assert.throws(() => prq.planCreate({ name: 'n', stage: [] }), /at least one --stage/);
  });

  it('builds the item, run and list requests', () => {
    assert.deepEqual(prq.planList({ allProjects: true }), { method: 'GET', path: '/bulwark-protection-plans', query: { all_tenants: '1' } });
    assert.deepEqual(prq.planItem('DELETE', 'a b', { deleteRuns: true }), { method: 'DELETE', path: '/bulwark-protection-plans/a%20b', query: { delete_runs: 'true' } });
    assert.deepEqual(prq.planItem('GET', A, { deleteRuns: true }), { method: 'GET', path: `/bulwark-protection-plans/${A}` });
    assert.deepEqual(prq.planTrigger(A), { method: 'POST', path: `/bulwark-protection-plans/${A}/runs` });
    assert.deepEqual(prq.planRuns(A), { method: 'GET', path: `/bulwark-protection-plans/${A}/runs` });
    assert.deepEqual(prq.runItem('DELETE', B), { method: 'DELETE', path: `/bulwark-plan-runs/${B}` });
  });

  it('summarises stages and a run\'s freeze window', () => {
    assert.equal(prq.stagesText([{ instances: [{ instance_id: A, volume_ids: [V1, V2] }] }, { instances: [{ instance_id: B, volume_ids: [V1] }] }]), `1: ${A} (${V1}, ${V2})\n2: ${B} (${V1})`);
    const run = {
      id: 'r', status: 'available', consistency: 'application', freeze_window_ms: 812.345, snapshot_ids: [V1, V2],
      record: { freeze_order: [A, B], thaw_order: [B, A], snapshot_ms: 12, window: { first_freeze_at: 't0', last_thaw_at: 't1', ms: 812.345 } },
    };
    assert.equal(prq.freezeWindowLine(run), 'run r available; freeze window 812.3 ms; first freeze t0, last thaw t1; consistency application; 2 snapshot(s)\n');
    assert.equal(prq.freezeWindowLine({ id: 'r', status: 'error', consistency: null, freeze_window_ms: null, snapshot_ids: [], record: {} }), 'run r error; no freeze window recorded; 0 snapshot(s)\n');
    const shown = prq.runForShow(run);
    assert.equal('record' in shown, false);
    assert.deepEqual([shown['record.freeze_order'], shown['record.thaw_order'], shown['record.window.ms']], [[A, B], [B, A], 812.345]);
  });
});
