// `bulwark plan <verb>`: Bulwark's protection plans (ordered quiesce of
// instances, then one snapshot set) and their runs.
import type { Command } from 'commander';
import { CliError, unwrap, type Resource } from './client.js';
import { collect, commandNamed, type Ctx, forEachId, intArg, type Json, jsonOption, many, one, pickByName, positiveInt, run, type WaitFlags, waitOptions } from './command-kit.js';
import { col } from './columns.js';
import { renderList, renderShow, type Column } from './format.js';
import * as prq from './plan-requests.js';
import { UUID } from './requests.js';
import { DEFAULT_WAIT_TIMEOUT_S, getOrNull, waitFor } from './wait.js';

const PLAN_COLUMNS: Column[] = [
  col('ID', 'id'), col('Name', 'name'), { header: 'Stages', value: (r) => (Array.isArray(r['stages']) ? r['stages'].length : '') },
  col('Schedule', 'schedule'), col('Next Run At', 'next_run_at'), col('Keep Last', 'keep_last'), col('Backup', 'backup'),
];
const RUN_COLUMNS: Column[] = [
  col('ID', 'id'), col('Status', 'status'), col('Trigger', 'trigger'), col('Consistency', 'consistency'), col('Freeze Window ms', 'freeze_window_ms'),
  { header: 'Snapshots', value: (r) => (Array.isArray(r['snapshot_ids']) ? r['snapshot_ids'].length : '') }, col('Created At', 'created_at'), col('Error', 'error'),
];

/** A plan ID as given, or the ID of the one plan with that name. */
async function resolvePlan(ctx: Ctx, idOrName: string): Promise<string> {
  if (UUID.test(idOrName)) return idOrName;
  return pickByName(await (await ctx.client()).listAll(prq.planList(), 'protection_plans'), 'protection plan', idOrName);
}

const getRun = async (ctx: Ctx, id: string): Promise<Resource> => unwrap(await (await ctx.client()).call(prq.runItem('GET', id)), 'plan_run');

/** --wait of `plan run`: polls until available (or fails with the run's error). */
async function waitRun(ctx: Ctx, id: string, o: WaitFlags): Promise<Resource> {
  const c = await ctx.client();
  try {
    const done = await waitFor(`plan run ${id}`, getOrNull(() => c.call(prq.runItem('GET', id)), 'plan_run'), 'ready', {
      timeoutMs: (o.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_S) * 1000,
      progress: process.stderr.isTTY ? process.stderr : null,
    });
    return done ?? (await getRun(ctx, id));
  } catch (err) {
    const reason = await getRun(ctx, id).then((r) => r['error'], () => null);
    if (typeof reason === 'string' && reason !== '' && err instanceof CliError) throw new CliError(`${err.message}: ${reason}`);
    throw err;
  }
}

export function registerPlanCommands(program: Command): void {
  const plan = commandNamed(program, 'plan', 'protection plans: ordered quiesce of instances and one snapshot set of their volumes');

  interface CreateFlags extends Json, prq.PlanCreateArgs {}
  run(
    jsonOption(
      plan
        .command('create')
        .description('create a protection plan; stages freeze in the order given and thaw in reverse')
        .requiredOption('--name <name>', 'name')
        .requiredOption('--stage <instances>', 'INSTANCE[,INSTANCE...] frozen together (repeat for later stages); INSTANCE:VOL+VOL protects only those volumes', collect)
        .option('--description <text>', 'description')
        .option('--no-require-quiesce', 'take crash-consistent snapshots of a guest whose agent does not answer instead of failing the run')
        .option('--deadline-ms <ms>', 'longest a guest may stay frozen (1000-600000, default 60000)', intArg(positiveInt))
        .option('--schedule <cron>', '5-field cron expression, UTC (e.g. "0 3 * * *")')
        .option('--keep-last <n>', 'keep only the newest N available runs (their snapshots go with the older ones)', intArg(positiveInt))
        .option('--backup', 'also back each run\'s snapshots up'),
    ),
    async (ctx, o: CreateFlags) => {
      const req = prq.planCreate(o); // argument errors before any network call
      const p = unwrap(await (await ctx.client()).call(req), 'protection_plan');
      ctx.print(!!o.json, p, () => renderShow(prq.planForShow(p)));
    },
  );

  run(jsonOption(plan.command('list').description('list protection plans').option('--all-projects', 'include every project (admin)')), async (ctx, o: { allProjects?: boolean } & Json) => {
    const items = await (await ctx.client()).listAll(prq.planList(o), 'protection_plans');
    ctx.print(!!o.json, items, () => renderList(o.allProjects ? [...PLAN_COLUMNS, col('Project', 'project_id')] : PLAN_COLUMNS, items));
  });

  run(jsonOption(plan.command('show').description('show a protection plan').argument('<plan>', 'ID or name')), async (ctx, o: Json, args) => {
    const p = unwrap(await (await ctx.client()).call(prq.planItem('GET', await resolvePlan(ctx, one(args)))), 'protection_plan');
    ctx.print(!!o.json, p, () => renderShow(prq.planForShow(p)));
  });

  run(
    plan
      .command('delete')
      .description('delete protection plans (refused while a run is in progress)')
      .argument('<plans...>', 'IDs or names')
      .option('--delete-runs', 'also delete the plans\' runs and their snapshots'),
    async (ctx, o: { deleteRuns?: boolean }, args) => {
      const c = await ctx.client();
      await forEachId(many(args), 'protection plan', async (given) => {
        await c.call(prq.planItem('DELETE', await resolvePlan(ctx, given), o));
      });
    },
  );

  run(
    waitOptions(jsonOption(plan.command('run').description('run a protection plan now').argument('<plan>', 'ID or name')), 'the run is available, then print its freeze window'),
    async (ctx, o: Json & WaitFlags, args) => {
      const queued = unwrap(await (await ctx.client()).call(prq.planTrigger(await resolvePlan(ctx, one(args)))), 'plan_run');
      if (!o.wait) {
        ctx.print(!!o.json, queued, () => renderShow(prq.runForShow(queued)));
        return;
      }
      const done = await waitRun(ctx, String(queued['id']), o);
      ctx.print(!!o.json, done, () => prq.freezeWindowLine(done) + renderShow(prq.runForShow(done)));
    },
  );

  run(jsonOption(plan.command('runs').description('list the runs of a protection plan, newest first').argument('<plan>', 'ID or name')), async (ctx, o: Json, args) => {
    const items = await (await ctx.client()).listAll(prq.planRuns(await resolvePlan(ctx, one(args))), 'plan_runs');
    ctx.print(!!o.json, items, () => renderList(RUN_COLUMNS, items));
  });

  run(jsonOption(plan.command('run-show').description('show a plan run and its freeze record').argument('<run>', 'run ID')), async (ctx, o: Json, args) => {
    const r = await getRun(ctx, one(args));
    ctx.print(!!o.json, r, () => prq.freezeWindowLine(r) + renderShow(prq.runForShow(r)));
  });

  run(
    waitOptions(plan.command('run-delete').description('delete plan runs and their snapshots').argument('<runs...>', 'run IDs'), 'the runs are gone'),
    async (ctx, o: WaitFlags, args) => {
      const c = await ctx.client();
      const done: string[] = [];
      let failure: unknown = null;
      try {
        await forEachId(many(args), 'plan run', async (id) => {
          await c.call(prq.runItem('DELETE', id));
          done.push(id);
        });
      } catch (err) {
        failure = err;
      }
      if (o.wait) {
        for (const id of done) {
          // A run in 'deleting' has no terminal status of its own: it is done when it 404s.
          await waitFor(`plan run ${id}`, getOrNull(() => c.call(prq.runItem('GET', id)), 'plan_run'), 'gone', {
            timeoutMs: (o.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_S) * 1000,
            progress: process.stderr.isTTY ? process.stderr : null,
          });
        }
      }
      if (failure !== null) throw failure;
    },
  );
}
