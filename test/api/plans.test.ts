// Protection plans through the Cinder API of a real all-in-one deployment, on
// every store dialect: CRUD and its refusals (nothing written), project
// isolation, one run at a time with its orchestrator job, retention and run
// deletion taking real snapshots down through the volume role, and the
// scheduler's clock under two racing ticks. The compute role is not part of
// this deployment, so instances and their attachments are rows put straight
// into the store; the volumes and snapshots are real. The instances have no
// host, so the scheduler's orchestrator fails any run it picks up at once;
// where a test needs a run that stays queued or running, it inserts the run
// row without a job, which no orchestrator ever touches.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { planScheduleTick } from '../../src/roles/scheduler/plan-schedule.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { newId } from '../../src/services/ids.js';
import { nextCronTime } from '../../src/services/plan-cron.js';
import { applyRetention } from '../../src/services/plans.js';
import { nowIso, type Store } from '../../src/store/db.js';
import { deploy, type ApiResponse, type ApiSession, type Deployment } from '../harness/aio.js';
import { databaseUrlFor, dialects, stopSharedPostgres } from '../harness/stores.js';
import { createSnapshot, createVolume } from '../e2e/helpers.js';

after(async () => {
  await new Promise((r) => setTimeout(r, 250));
  await stopSharedPostgres();
});

const MISSING = '00000000-0000-4000-8000-000000000000';
const execFileP = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);

/** `bulwark ...` as alice of project alpha; never throws, so exit codes can be checked. */
async function cli(d: Deployment, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    OS_AUTH_URL: `${d.url}/identity/v3`, OS_USERNAME: 'alice', OS_PASSWORD: 'alice-pw', OS_PROJECT_NAME: 'alpha',
    OS_USER_DOMAIN_NAME: 'Default', OS_PROJECT_DOMAIN_NAME: 'Default', OS_VOLUME_API_VERSION: '3.64',
  };
  try {
    const r = await execFileP(process.execPath, [BIN, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
const PLAN_KEYS = ['backup', 'created_at', 'description', 'freeze_deadline_ms', 'id', 'keep_last', 'links', 'name', 'next_run_at', 'project_id', 'require_quiesce', 'schedule', 'stages', 'updated_at', 'user_id'];
const RUN_KEYS = ['backup_ids', 'consistency', 'created_at', 'error', 'finished_at', 'freeze_window_ms', 'id', 'links', 'plan_id', 'project_id', 'record', 'snapshot_ids', 'started_at', 'status', 'trigger', 'updated_at'];
const keys = (o: unknown) => Object.keys(o as object).sort();
type Body = Record<string, unknown>;
type Plan = Body & { id: string; stages: { instances: { instance_id: string; volume_ids: string[] }[] }[] };

function fault(res: ApiResponse, status: number, what: string): void {
  assert.equal(res.status, status, `${what}: got ${res.status} ${JSON.stringify(res.body)}`);
  const f = Object.values(res.body);
  assert.equal(f.length, 1, `${what}: one fault`);
  assert.equal((f[0] as { code: number }).code, status, what);
  assert.equal(typeof (f[0] as { message: string }).message, 'string', what);
}

interface Env {
  d: Deployment;
  store: Store;
  deps: ServiceDeps;
}

async function addInstance(env: Env, projectId: string, status = 'ACTIVE'): Promise<string> {
  const id = newId();
  await env.store.db
    .insertInto('instances')
    .values({
      id, project_id: projectId, user_id: 'u', name: `vm-${id.slice(0, 8)}`, status, task_state: null, power_state: 1, host: null, vcpus: 1, memory_mib: 256,
      boot: JSON.stringify({ kernelImageId: MISSING, ramdiskImageId: MISSING, commandLine: '' }), metadata: '{}', quiesce_state: 'thawed',
      quiesce_deadline_at: null, quiesce_frozen_at: null, quiesce_detail: null, fault: null, created_at: nowIso(), updated_at: null, launched_at: null,
    })
    .execute();
  return id;
}

async function attach(env: Env, instanceId: string, volumeId: string, device: string): Promise<void> {
  await env.store.db
    .insertInto('instance_volumes')
    .values({ instance_id: instanceId, volume_id: volumeId, attachment_id: newId(), device, boot_index: device === '/dev/vda' ? 0 : null, delete_on_termination: 0, created_at: nowIso() })
    .execute();
}

/** An instance of the member's project with `n` real volumes attached (vda, vdb, ...). */
async function vmWithVolumes(env: Env, n: number): Promise<{ vm: string; vols: string[] }> {
  const vm = await addInstance(env, env.d.member.projectId);
  const vols: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = await createVolume(env.d.member, { size: 1 });
    await attach(env, vm, v, `/dev/vd${String.fromCharCode(97 + i)}`);
    vols.push(v);
  }
  return { vm, vols };
}

async function dump(env: Env): Promise<string> {
  const out: Record<string, string[]> = {};
  for (const t of ['protection_plans', 'plan_runs', 'jobs'] as const) out[t] = (await env.store.db.selectFrom(t).selectAll().execute()).map((r) => JSON.stringify(r)).sort();
  return JSON.stringify(out);
}

async function createPlan(s: ApiSession, plan: Body): Promise<Plan> {
  const res = await s.call<{ protection_plan: Plan }>('POST', '/bulwark-protection-plans', { protection_plan: plan });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.protection_plan;
}

async function insertRun(env: Env, plan: Plan, status: string, createdAt: string, snapshotIds: string[]): Promise<string> {
  const id = newId();
  await env.store.db
    .insertInto('plan_runs')
    .values({
      id, plan_id: plan.id, project_id: env.d.member.projectId, status, trigger: 'manual', consistency: 'application', record: '{"stages":[]}', freeze_window_ms: 12.5,
      snapshot_ids: JSON.stringify(snapshotIds), backup_ids: '[]', error: null, started_at: createdAt, finished_at: createdAt, created_at: createdAt, updated_at: null,
    })
    .execute();
  return id;
}

const runRow = (env: Env, id: string) => env.store.db.selectFrom('plan_runs').selectAll().where('id', '=', id).executeTakeFirst();

for (const dialect of dialects) {
  describe(`protection plans API on ${dialect}`, () => {
    const env = {} as Env;
    before(async () => {
      const db = await databaseUrlFor(dialect, 'plans_api');
      env.d = await deploy({ databaseUrl: db.url, overrides: { plans: { scheduleTickMs: 200 } } });
      env.store = env.d.roles.store;
      env.deps = { store: env.store, jobs: env.d.roles.jobs, config: env.d.config, kick: () => env.d.roles.volume?.kick() };
    });
    after(async () => env.d?.stop());

    it('creates, shows, lists, updates and deletes a plan', async () => {
      const s = env.d.member;
      const vm1 = await addInstance(env, s.projectId);
      const vm2 = await addInstance(env, s.projectId);
      const [a, b, c, dv] = [await createVolume(s, { size: 1 }), await createVolume(s, { size: 1 }), await createVolume(s, { size: 1 }), await createVolume(s, { size: 1 })];
      // Attached out of order: the default volume list follows the devices.
      await attach(env, vm1, b, '/dev/vdb');
      await attach(env, vm1, a, '/dev/vda');
      await attach(env, vm1, dv, '/dev/vdaa');
      await attach(env, vm2, c, '/dev/vda');
      const res = await s.call<{ protection_plan: Plan }>('POST', '/bulwark-protection-plans', {
        protection_plan: { name: 'app', description: 'web then db', stages: [{ instances: [{ instance_id: vm1 }] }, { instances: [{ instance_id: vm2, volume_ids: [c] }] }] },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(keys(res.body), ['protection_plan']);
      const plan = res.body.protection_plan;
      assert.deepEqual(keys(plan), PLAN_KEYS);
      assert.deepEqual(plan.stages, [{ instances: [{ instance_id: vm1, volume_ids: [a, b, dv] }] }, { instances: [{ instance_id: vm2, volume_ids: [c] }] }]);
      assert.deepEqual(
        [plan['name'], plan['description'], plan['require_quiesce'], plan['freeze_deadline_ms'], plan['schedule'], plan['next_run_at'], plan['keep_last'], plan['backup'], plan['project_id']],
        ['app', 'web then db', true, 60000, null, null, null, false, s.projectId],
      );
      assert.equal((plan['links'] as { href: string }[])[0]!.href, `${env.d.url}/volume/v3/${s.projectId}/bulwark-protection-plans/${plan.id}`);

      const shown = await s.call<{ protection_plan: Plan }>('GET', `/bulwark-protection-plans/${plan.id}`);
      assert.equal(shown.status, 200);
      assert.deepEqual(shown.body.protection_plan, plan);
      const listed = await s.call<{ protection_plans: Plan[] }>('GET', '/bulwark-protection-plans');
      assert.deepEqual(listed.body.protection_plans.map((p) => p.id), [plan.id]);
      assert.deepEqual((await env.d.other.call<{ protection_plans: Plan[] }>('GET', '/bulwark-protection-plans')).body.protection_plans, []);
      assert.deepEqual((await env.d.admin.call<{ protection_plans: Plan[] }>('GET', '/bulwark-protection-plans')).body.protection_plans, []);
      const all = await env.d.admin.call<{ protection_plans: Plan[] }>('GET', '/bulwark-protection-plans?all_tenants=1');
      assert.ok(all.body.protection_plans.some((p) => p.id === plan.id));
      assert.deepEqual((await s.call<{ protection_plans: Plan[] }>('GET', '/bulwark-protection-plans?name=nope')).body.protection_plans, []);

      const explicit = await createPlan(s, { name: 'explicit', stages: [{ instances: [{ instance_id: vm2 }] }], require_quiesce: false, freeze_deadline_ms: 1000, schedule: ' 0  3 * * * ', keep_last: 1000, backup: true });
      assert.deepEqual(
        [explicit['require_quiesce'], explicit['freeze_deadline_ms'], explicit['schedule'], explicit['keep_last'], explicit['backup']],
        [false, 1000, '0 3 * * *', 1000, true],
      );
      assert.equal(Date.parse(`${String(explicit['next_run_at'])}Z`), nextCronTime('0 3 * * *', Date.now()));

      const before = Date.now();
      const upd = await s.call<{ protection_plan: Plan }>('PUT', `/bulwark-protection-plans/${plan.id}`, {
        protection_plan: { name: 'renamed', schedule: '*/5 * * * *', keep_last: 3, require_quiesce: false, stages: [{ instances: [{ instance_id: vm1, volume_ids: [b] }] }] },
      });
      assert.equal(upd.status, 200, JSON.stringify(upd.body));
      const u = upd.body.protection_plan;
      assert.deepEqual([u['name'], u['schedule'], u['keep_last'], u['require_quiesce'], u['description']], ['renamed', '*/5 * * * *', 3, false, 'web then db']);
      assert.deepEqual(u.stages, [{ instances: [{ instance_id: vm1, volume_ids: [b] }] }]);
      const next = Date.parse(`${String(u['next_run_at'])}Z`);
      assert.ok(next > before && next <= Date.now() + 5 * 60_000 && new Date(next).getUTCMinutes() % 5 === 0, String(u['next_run_at']));
      assert.notEqual(u['updated_at'], null);
      const cleared = await s.call<{ protection_plan: Plan }>('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: { schedule: null, keep_last: null, description: null } });
      assert.deepEqual([cleared.body.protection_plan['schedule'], cleared.body.protection_plan['next_run_at'], cleared.body.protection_plan['keep_last'], cleared.body.protection_plan['description']], [null, null, null, null]);

      for (const p of [plan, explicit]) {
        const del = await s.call('DELETE', `/bulwark-protection-plans/${p.id}`);
        assert.equal(del.status, 202, JSON.stringify(del.body));
        fault(await s.call('GET', `/bulwark-protection-plans/${p.id}`), 404, 'deleted plan');
      }
    });

    it('refuses every bad field with a 400 and writes nothing', async () => {
      const s = env.d.member;
      const { vm, vols } = await vmWithVolumes(env, 2);
      const { vm: vmB, vols: volsB } = await vmWithVolumes(env, 1);
      const bare = await addInstance(env, s.projectId);
      const gone = await addInstance(env, s.projectId, 'DELETED');
      const foreign = await addInstance(env, env.d.other.projectId);
      const good = { name: 'p', stages: [{ instances: [{ instance_id: vm }] }] };
      const plan = await createPlan(s, good);
      const post = (p: unknown) => s.call('POST', '/bulwark-protection-plans', p === undefined ? undefined : { protection_plan: p });
      const put = (p: unknown) => s.call('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: p });
      const cases: [string, () => Promise<ApiResponse>][] = [
        ['no body', () => post(undefined)],
        ['array body', () => s.call('POST', '/bulwark-protection-plans', [])],
        ['no wrapper', () => s.call('POST', '/bulwark-protection-plans', good)],
        ['extra top-level key', () => s.call('POST', '/bulwark-protection-plans', { protection_plan: good, x: 1 })],
        ['unknown field', () => post({ ...good, color: 'red' })],
        ['name missing', () => post({ stages: good.stages })],
        ['name empty', () => post({ ...good, name: '' })],
        ['name blank', () => post({ ...good, name: '   ' })],
        ['name too long', () => post({ ...good, name: 'x'.repeat(256) })],
        ['name a number', () => post({ ...good, name: 5 })],
        ['description too long', () => post({ ...good, description: 'x'.repeat(256) })],
        ['description a number', () => post({ ...good, description: 1 })],
        ['stages missing', () => post({ name: 'p' })],
        ['stages empty', () => post({ ...good, stages: [] })],
        ['stages not an array', () => post({ ...good, stages: 'x' })],
        ['empty stage', () => post({ ...good, stages: [{ instances: [] }] })],
        ['stage with unknown key', () => post({ ...good, stages: [{ instances: [{ instance_id: vm }], x: 1 }] })],
        ['stage as bare array', () => post({ ...good, stages: [[vm]] })],
        ['instance with unknown key', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, x: 1 }] }] })],
        ['instance_id not a uuid', () => post({ ...good, stages: [{ instances: [{ instance_id: 'vm1' }] }] })],
        ['volume_ids empty', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: [] }] }] })],
        ['volume_ids not an array', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: vols[0] }] }] })],
        ['volume id not a uuid', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: ['v'] }] }] })],
        ['instance does not exist', () => post({ ...good, stages: [{ instances: [{ instance_id: MISSING }] }] })],
        ['instance of another project', () => post({ ...good, stages: [{ instances: [{ instance_id: foreign }] }] })],
        ['deleted instance', () => post({ ...good, stages: [{ instances: [{ instance_id: gone }] }] })],
        ['instance without volumes', () => post({ ...good, stages: [{ instances: [{ instance_id: bare }] }] })],
        ['instance twice in a stage', () => post({ ...good, stages: [{ instances: [{ instance_id: vm }, { instance_id: vm }] }] })],
        ['instance in two stages', () => post({ ...good, stages: [{ instances: [{ instance_id: vm }] }, { instances: [{ instance_id: vm, volume_ids: [vols[1]] }] }] })],
        ['volume not attached to the instance', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: [volsB[0]] }] }] })],
        ['volume that does not exist', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: [MISSING] }] }] })],
        ['volume twice', () => post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: [vols[0], vols[0]] }] }] })],
        ['require_quiesce a string', () => post({ ...good, require_quiesce: 'yes' })],
        ['require_quiesce null', () => post({ ...good, require_quiesce: null })],
        ['freeze_deadline_ms too small', () => post({ ...good, freeze_deadline_ms: 999 })],
        ['freeze_deadline_ms too large', () => post({ ...good, freeze_deadline_ms: 600_001 })],
        ['freeze_deadline_ms fractional', () => post({ ...good, freeze_deadline_ms: 1500.5 })],
        ['freeze_deadline_ms a string', () => post({ ...good, freeze_deadline_ms: '60000' })],
        ['schedule gibberish', () => post({ ...good, schedule: 'every day' })],
        ['schedule with seconds', () => post({ ...good, schedule: '* * * * * *' })],
        ['schedule alias', () => post({ ...good, schedule: '@daily' })],
        ['schedule out of range', () => post({ ...good, schedule: '61 * * * *' })],
        ['schedule never fires', () => post({ ...good, schedule: '0 0 30 2 *' })],
        ['schedule empty', () => post({ ...good, schedule: '' })],
        ['schedule a number', () => post({ ...good, schedule: 5 })],
        ['keep_last zero', () => post({ ...good, keep_last: 0 })],
        ['keep_last too large', () => post({ ...good, keep_last: 1001 })],
        ['keep_last fractional', () => post({ ...good, keep_last: 2.5 })],
        ['keep_last a string', () => post({ ...good, keep_last: '3' })],
        ['backup a string', () => post({ ...good, backup: 'true' })],
        ['update without fields', () => put({})],
        ['update without wrapper', () => s.call('PUT', `/bulwark-protection-plans/${plan.id}`, { name: 'x' })],
        ['update unknown field', () => put({ stage: [] })],
        ['update name empty', () => put({ name: '' })],
        ['update stages empty', () => put({ stages: [] })],
        ['update foreign instance', () => put({ stages: [{ instances: [{ instance_id: foreign }] }] })],
        ['update unattached volume', () => put({ stages: [{ instances: [{ instance_id: vmB, volume_ids: [vols[0]] }] }] })],
        ['update bad schedule', () => put({ schedule: '* * *' })],
        ['update keep_last zero', () => put({ keep_last: 0 })],
        ['update deadline too large', () => put({ freeze_deadline_ms: 10_000_000 })],
        ['run with unknown option', () => s.call('POST', `/bulwark-protection-plans/${plan.id}/runs`, { plan_run: { x: 1 } })],
        ['run with a stray key', () => s.call('POST', `/bulwark-protection-plans/${plan.id}/runs`, { go: true })],
        ['delete with a bad delete_runs', () => s.call('DELETE', `/bulwark-protection-plans/${plan.id}?delete_runs=maybe`)],
        ['delete with an unknown option', () => s.call('DELETE', `/bulwark-protection-plans/${plan.id}?force=1`)],
      ];
      const before = await dump(env);
      for (const [what, send] of cases) fault(await send(), 400, what);
      assert.equal(await dump(env), before, 'a refused request wrote something');
      const msg = await post({ ...good, stages: [{ instances: [{ instance_id: vm, volume_ids: [volsB[0]] }] }] });
      assert.match(JSON.stringify(msg.body), /not attached to instance/);
      const cron = await post({ ...good, schedule: 'every day' });
      assert.match(JSON.stringify(cron.body), /cron/);
    });

    it('keeps projects apart: another project gets 404 for plans and runs', async () => {
      const { vm } = await vmWithVolumes(env, 1);
      const plan = await createPlan(env.d.member, { name: 'mine', stages: [{ instances: [{ instance_id: vm }] }] });
      const runId = await insertRun(env, plan, 'available', nowIso(), []);
      const o = env.d.other;
      const before = await dump(env);
      for (const [what, res] of [
        ['show', await o.call('GET', `/bulwark-protection-plans/${plan.id}`)],
        ['update', await o.call('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: { name: 'x' } })],
        ['delete', await o.call('DELETE', `/bulwark-protection-plans/${plan.id}`)],
        ['trigger', await o.call('POST', `/bulwark-protection-plans/${plan.id}/runs`)],
        ['runs', await o.call('GET', `/bulwark-protection-plans/${plan.id}/runs`)],
        ['run show', await o.call('GET', `/bulwark-plan-runs/${runId}`)],
        ['run delete', await o.call('DELETE', `/bulwark-plan-runs/${runId}`)],
        ['missing plan', await env.d.member.call('GET', `/bulwark-protection-plans/${MISSING}`)],
        ['missing run', await env.d.member.call('GET', `/bulwark-plan-runs/${MISSING}`)],
      ] as const) fault(res, 404, what);
      assert.equal(await dump(env), before);
      // The admin sees any project's plan by its id, as Cinder's admin sees any volume.
      assert.equal((await env.d.admin.call('GET', `/bulwark-protection-plans/${plan.id}`)).status, 200);
      assert.equal((await env.d.admin.call('GET', `/bulwark-plan-runs/${runId}`)).status, 200);
    });

    it('queues a run with its orchestrator job in one go, one run at a time; a live run blocks delete and stage changes', async () => {
      const s = env.d.member;
      const { vm, vols } = await vmWithVolumes(env, 2);
      const plan = await createPlan(s, { name: 'once', stages: [{ instances: [{ instance_id: vm }] }] });
      const res = await s.call<{ plan_run: Body & { id: string } }>('POST', `/bulwark-protection-plans/${plan.id}/runs`);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const run = res.body.plan_run;
      assert.deepEqual(keys(run), RUN_KEYS);
      assert.deepEqual(
        [run['status'], run['trigger'], run['plan_id'], run['project_id'], run['record'], run['snapshot_ids'], run['backup_ids'], run['consistency'], run['freeze_window_ms'], run['error']],
        ['queued', 'manual', plan.id, s.projectId, {}, [], [], null, null, null],
      );
      const row = await runRow(env, run.id);
      assert.deepEqual([row?.trigger, row?.project_id, row?.plan_id], ['manual', s.projectId, plan.id]);
      const jobs = await env.store.db.selectFrom('jobs').selectAll().where('resource_id', '=', run.id).execute();
      assert.deepEqual(jobs.map((j) => [j.kind, j.target, JSON.parse(j.payload) as unknown]), [['run_protection_plan', 'bulwark-orchestrator', { planId: plan.id }]]);
      // The scheduler's orchestrator takes the job; this instance has no host, so the run fails.
      const ended = await s.waitFor(`/bulwark-plan-runs/${run.id}`, 'plan_run', ['error'], 30_000);
      assert.match(String(ended['error']), /not running/);
      assert.notEqual(ended['finished_at'], null);

      // A run in progress (a row no orchestrator holds, so it stays put) blocks the next.
      for (const live of ['queued', 'running']) {
        const liveId = await insertRun(env, plan, live, nowIso(), []);
        const before = await dump(env);
        fault(await s.call('POST', `/bulwark-protection-plans/${plan.id}/runs`), 409, `second trigger while ${live}`);
        fault(await s.call('POST', `/bulwark-protection-plans/${plan.id}/runs`, { plan_run: {} }), 409, `second trigger with a body while ${live}`);
        fault(await s.call('DELETE', `/bulwark-protection-plans/${plan.id}`), 409, `delete plan while ${live}`);
        fault(await s.call('DELETE', `/bulwark-protection-plans/${plan.id}?delete_runs=true`), 409, `delete plan and runs while ${live}`);
        fault(await s.call('DELETE', `/bulwark-plan-runs/${liveId}`), 409, `delete a ${live} run`);
        fault(await s.call('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: { stages: [{ instances: [{ instance_id: vm, volume_ids: [vols[0]] }] }] } }), 409, `stages under a ${live} run`);
        fault(await s.call('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: { freeze_deadline_ms: 5000 } }), 409, `deadline under a ${live} run`);
        assert.equal(await dump(env), before, 'a refused request wrote something');
        const renamed = await s.call<{ protection_plan: Plan }>('PUT', `/bulwark-protection-plans/${plan.id}`, { protection_plan: { name: `renamed-${live}`, keep_last: 5 } });
        assert.equal(renamed.status, 200, 'name and retention may change under a live run');
        // The orchestrator finishing the run frees the plan.
        await env.store.db.updateTable('plan_runs').set({ status: 'available', record: '{"freeze_order":["x"]}', freeze_window_ms: 42.5 }).where('id', '=', liveId).execute();
      }

      const second = await s.call<{ plan_run: Body & { id: string } }>('POST', `/bulwark-protection-plans/${plan.id}/runs`, {});
      assert.equal(second.status, 202, JSON.stringify(second.body));
      await s.waitFor(`/bulwark-plan-runs/${second.body.plan_run.id}`, 'plan_run', ['error'], 30_000);
      const runs = await s.call<{ plan_runs: (Body & { id: string })[] }>('GET', `/bulwark-protection-plans/${plan.id}/runs`);
      assert.equal(runs.body.plan_runs.length, 4);
      assert.equal(runs.body.plan_runs[0]!.id, second.body.plan_run.id, 'newest first');
      assert.equal(runs.body.plan_runs[3]!.id, run.id);
      const avail = await s.call<{ plan_runs: (Body & { id: string })[] }>('GET', `/bulwark-protection-plans/${plan.id}/runs?status=available`);
      assert.equal(avail.body.plan_runs.length, 2);
      assert.deepEqual([avail.body.plan_runs[0]!['record'], avail.body.plan_runs[0]!['freeze_window_ms'], avail.body.plan_runs[0]!['consistency']], [{ freeze_order: ['x'] }, 42.5, 'application']);
    });

    it('retention keeps the newest keep_last available runs and deletes the older ones with their snapshots', async () => {
      const s = env.d.member;
      const { vm, vols } = await vmWithVolumes(env, 1);
      const plan = await createPlan(s, { name: 'keep2', stages: [{ instances: [{ instance_id: vm }] }], keep_last: 2 });
      const snaps: string[] = [];
      for (let i = 0; i < 4; i++) snaps.push(await createSnapshot(s, vols[0]!));
      const t0 = Date.now() - 3_600_000;
      const at = (i: number) => new Date(t0 + i * 60_000).toISOString();
      const errored = await insertRun(env, plan, 'error', at(0), []);
      const runs: string[] = [];
      for (let i = 0; i < 4; i++) runs.push(await insertRun(env, plan, 'available', at(i + 1), [snaps[i]!]));

      const result = await applyRetention(env.deps, plan.id);
      assert.deepEqual([...result.deleting].sort(), [runs[0], runs[1]].sort());
      assert.deepEqual(result.skipped, []);
      for (const i of [0, 1]) {
        await s.waitFor(`/bulwark-plan-runs/${runs[i]!}`, 'plan_run', ['deleted'], 30_000);
        await s.waitFor(`/snapshots/${snaps[i]!}`, 'snapshot', ['deleted'], 30_000);
      }
      for (const i of [2, 3]) {
        assert.equal((await runRow(env, runs[i]!))?.status, 'available');
        assert.equal((await s.call<{ snapshot: Body }>('GET', `/snapshots/${snaps[i]!}`)).body.snapshot['status'], 'available');
      }
      assert.equal((await runRow(env, errored))?.status, 'error', 'a run in error is neither counted nor deleted');
      assert.deepEqual(await applyRetention(env.deps, plan.id), { deleting: [], skipped: [] });

      // A run whose snapshot is busy is skipped now and deleted by a later call.
      const busy = await createSnapshot(s, vols[0]!);
      await env.store.db.updateTable('snapshots').set({ status: 'backing-up' }).where('id', '=', busy).execute();
      const newest = await insertRun(env, plan, 'available', at(10), []);
      const oldest = runs[2]!;
      await env.store.db.updateTable('plan_runs').set({ snapshot_ids: JSON.stringify([snaps[2], busy]) }).where('id', '=', oldest).execute();
      const blocked = await applyRetention(env.deps, plan.id);
      assert.deepEqual(blocked.deleting, []);
      assert.deepEqual(blocked.skipped.map((x) => x.runId), [oldest]);
      assert.equal((await runRow(env, oldest))?.status, 'available', 'a skipped run is untouched');
      assert.equal((await s.call<{ snapshot: Body }>('GET', `/snapshots/${snaps[2]!}`)).body.snapshot['status'], 'available', 'its other snapshots too');
      await env.store.db.updateTable('snapshots').set({ status: 'available' }).where('id', '=', busy).execute();
      assert.deepEqual((await applyRetention(env.deps, plan.id)).deleting, [oldest]);
      await s.waitFor(`/bulwark-plan-runs/${oldest}`, 'plan_run', ['deleted'], 30_000);
      for (const id of [snaps[2]!, busy]) await s.waitFor(`/snapshots/${id}`, 'snapshot', ['deleted'], 30_000);
      assert.equal((await runRow(env, newest))?.status, 'available');
      assert.equal((await runRow(env, runs[3]!))?.status, 'available');
    });

    it('deletes a run with its snapshots, and a plan with its runs only when asked', async () => {
      const s = env.d.member;
      const { vm, vols } = await vmWithVolumes(env, 2);
      const plan = await createPlan(s, { name: 'del', stages: [{ instances: [{ instance_id: vm }] }] });
      const [s1, s2, s3] = [await createSnapshot(s, vols[0]!), await createSnapshot(s, vols[1]!), await createSnapshot(s, vols[0]!)];
      const r1 = await insertRun(env, plan, 'available', new Date(Date.now() - 2000).toISOString(), [s1, s2]);
      const r2 = await insertRun(env, plan, 'error', new Date(Date.now() - 1000).toISOString(), [s3, MISSING]);

      const del = await s.call('DELETE', `/bulwark-plan-runs/${r1}`);
      assert.equal(del.status, 202, JSON.stringify(del.body));
      // Still deleting (409), or already gone if the volume role was quicker (404).
      const again = await s.call('DELETE', `/bulwark-plan-runs/${r1}`);
      fault(again, again.status === 404 ? 404 : 409, 'deleting a deleting run');
      await s.waitFor(`/bulwark-plan-runs/${r1}`, 'plan_run', ['deleted'], 30_000);
      for (const id of [s1, s2]) await s.waitFor(`/snapshots/${id}`, 'snapshot', ['deleted'], 30_000);

      const before = await dump(env);
      fault(await s.call('DELETE', `/bulwark-protection-plans/${plan.id}`), 409, 'plan with a run left');
      assert.equal(await dump(env), before);
      const gone = await s.call('DELETE', `/bulwark-protection-plans/${plan.id}?delete_runs=true`);
      assert.equal(gone.status, 202, JSON.stringify(gone.body));
      fault(await s.call('GET', `/bulwark-protection-plans/${plan.id}`), 404, 'deleted plan');
      await s.waitFor(`/bulwark-plan-runs/${r2}`, 'plan_run', ['deleted'], 30_000);
      await s.waitFor(`/snapshots/${s3}`, 'snapshot', ['deleted'], 30_000);
      assert.equal((await s.call<{ snapshot: Body }>('GET', `/snapshots/${s3}`)).status, 404);
    });

    it('bulwark plan: create, list, show, run --wait, runs, run-show, run-delete, delete', async () => {
      const { vm, vols } = await vmWithVolumes(env, 2);
      const { vm: vm2 } = await vmWithVolumes(env, 1);
      const created = await cli(env.d, ['plan', 'create', '--name', 'cli-plan', '--stage', `${vm}:${vols[1]!}`, '--stage', vm2, '--schedule', '0 4 * * *', '--keep-last', '2', '--deadline-ms', '2000', '--no-require-quiesce', '--json']);
      assert.equal(created.code, 0, created.stderr);
      const plan = JSON.parse(created.stdout) as Plan;
      assert.deepEqual(plan.stages.map((st) => st.instances[0]!.volume_ids.length), [1, 1]);
      assert.deepEqual([plan['schedule'], plan['keep_last'], plan['freeze_deadline_ms'], plan['require_quiesce']], ['0 4 * * *', 2, 2000, false]);
      const bad = await cli(env.d, ['plan', 'create', '--name', 'x', '--stage', 'not-a-uuid']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: --stage/);
      const refused = await cli(env.d, ['plan', 'create', '--name', 'x', '--stage', vm, '--schedule', '@daily']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /cron.*\(HTTP 400\)/);
      const table = await cli(env.d, ['plan', 'list']);
      assert.match(table.stdout, /cli-plan/);
      const shown = await cli(env.d, ['plan', 'show', 'cli-plan']);
      assert.match(shown.stdout, new RegExp(`1: ${vm} \\(${vols[1]!}\\)`));
      // No compute host runs these instances, so the orchestrator fails the run; --wait says why.
      const ran = await cli(env.d, ['plan', 'run', 'cli-plan', '--wait', '--wait-timeout', '60']);
      assert.equal(ran.code, 1, ran.stdout);
      assert.match(ran.stderr, /went to status error: .*not running/);
      const runs = JSON.parse((await cli(env.d, ['plan', 'runs', 'cli-plan', '--json'])).stdout) as { id: string; status: string }[];
      assert.deepEqual(runs.map((r) => r.status), ['error']);
      const runShow = await cli(env.d, ['plan', 'run-show', runs[0]!.id]);
      assert.match(runShow.stdout, new RegExp(`^run ${runs[0]!.id} error; no freeze window recorded`));
      assert.equal((await cli(env.d, ['plan', 'delete', 'cli-plan'])).code, 1, 'a plan with runs stays');
      assert.equal((await cli(env.d, ['plan', 'run-delete', runs[0]!.id, '--wait'])).code, 0);
      assert.equal((await env.d.member.call('GET', `/bulwark-plan-runs/${runs[0]!.id}`)).status, 404);
      assert.equal((await cli(env.d, ['plan', 'delete', 'cli-plan'])).code, 0);
      assert.equal((await env.d.member.call('GET', `/bulwark-protection-plans/${plan.id}`)).status, 404);
    });

    it('schedule: two racing ticks queue exactly one run and advance next_run_at; the clock fires on its own', async () => {
      const s = env.d.member;
      const { vm } = await vmWithVolumes(env, 1);
      const plan = await createPlan(s, { name: 'cron', stages: [{ instances: [{ instance_id: vm }] }], schedule: '* * * * *' });
      const past = Date.now() - 90_000;
      await env.store.db.updateTable('protection_plans').set({ next_run_at: past }).where('id', '=', plan.id).execute();
      const now = Date.now();
      const [t1, t2] = await Promise.all([planScheduleTick(env.deps, null, now), planScheduleTick(env.deps, null, now)]);
      const runs = await env.store.db.selectFrom('plan_runs').selectAll().where('plan_id', '=', plan.id).execute();
      assert.equal(runs.length, 1, `exactly one run (ticks: ${JSON.stringify([t1, t2])})`);
      assert.equal(runs[0]!.trigger, 'schedule');
      assert.ok([...t1.queued, ...t2.queued].length <= 1);
      const jobs = await env.store.db.selectFrom('jobs').select(['kind', 'target']).where('resource_id', '=', runs[0]!.id).execute();
      assert.deepEqual(jobs, [{ kind: 'run_protection_plan', target: 'bulwark-orchestrator' }]);
      const row = await env.store.db.selectFrom('protection_plans').select('next_run_at').where('id', '=', plan.id).executeTakeFirstOrThrow();
      assert.ok(Number(row.next_run_at) > now && Number(row.next_run_at) <= now + 60_000 && Number(row.next_run_at) % 60_000 === 0, String(row.next_run_at));

      // Due again while a run is still in progress: no second run, but the clock moves on.
      await s.waitFor(`/bulwark-plan-runs/${runs[0]!.id}`, 'plan_run', ['error'], 30_000);
      const live = await insertRun(env, plan, 'running', nowIso(), []);
      await env.store.db.updateTable('protection_plans').set({ next_run_at: past }).where('id', '=', plan.id).execute();
      const again = await planScheduleTick(env.deps, null);
      assert.ok(!again.queued.length || again.queued.every((id) => id === live), JSON.stringify(again));
      assert.equal((await env.store.db.selectFrom('plan_runs').select('id').where('plan_id', '=', plan.id).execute()).length, 2);
      assert.ok(Number((await env.store.db.selectFrom('protection_plans').select('next_run_at').where('id', '=', plan.id).executeTakeFirstOrThrow()).next_run_at) > Date.now() - 1000);

      // The scheduler role's own clock (every 200 ms here) fires a due plan.
      const auto = await createPlan(s, { name: 'auto', stages: [{ instances: [{ instance_id: (await vmWithVolumes(env, 1)).vm }] }], schedule: '0 0 1 1 *' });
      await env.store.db.updateTable('protection_plans').set({ next_run_at: Date.now() - 1000 }).where('id', '=', auto.id).execute();
      const deadline = Date.now() + 10_000;
      let fired: { trigger: string }[] = [];
      while (fired.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        fired = await env.store.db.selectFrom('plan_runs').select('trigger').where('plan_id', '=', auto.id).execute();
      }
      assert.deepEqual(fired, [{ trigger: 'schedule' }]);
      const shown = await s.call<{ protection_plan: Plan }>('GET', `/bulwark-protection-plans/${auto.id}`);
      assert.equal(Date.parse(`${String(shown.body.protection_plan['next_run_at'])}Z`), nextCronTime('0 0 1 1 *', Date.now()));
    });
  });
}
