// `bulwark service|availability-zone|quota|limits <verb>`: read-only views.
import type { Command } from 'commander';
import { CliError, asRecordOrNull, unwrap, type Resource } from './client.js';
import { QUOTA_HEADERS, availabilityZoneColumns, limitRows, quotaRows, serviceColumns } from './columns.js';
import { commandNamed, type Json, jsonOption, run } from './command-kit.js';
import { renderList, renderPairs, renderTable } from './format.js';
import * as rq from './requests.js';

/** body[key] as a list of objects. */
function items(body: unknown, key: string): Resource[] {
  const list = asRecordOrNull(body)?.[key];
  if (!Array.isArray(list)) throw new CliError(`the answer has no "${key}" list`);
  return (list as unknown[]).map(asRecordOrNull).filter((r): r is Resource => r !== null);
}

export function registerInfoCommands(program: Command): void {
  const service = commandNamed(program, 'service', 'volume services (admin)');
  run(
    jsonOption(
      service
        .command('list')
        .description('list the scheduler and volume services and whether they are up')
        .option('--host <host>', 'only this host')
        .option('--service <binary>', 'only this binary, e.g. cinder-volume')
        .option('--long', 'more columns'),
    ),
    async (ctx, o: { host?: string; service?: string; long?: boolean } & Json) => {
      const list = items(await (await ctx.client()).call(rq.serviceList(o)), 'services');
      ctx.print(!!o.json, list, () => renderList(serviceColumns(o), list));
    },
  );

  const az = commandNamed(program, 'availability-zone', 'availability zones');
  run(jsonOption(az.command('list').description('list availability zones')), async (ctx, o: Json) => {
    const list = items(await (await ctx.client()).call({ method: 'GET', path: '/os-availability-zone' }), 'availabilityZoneInfo');
    ctx.print(!!o.json, list, () => renderList(availabilityZoneColumns(), list));
  });

  const quota = commandNamed(program, 'quota', 'quotas');
  run(
    jsonOption(quota.command('show').description('show quotas and usage of a project (default: the current one)').argument('[project-id]', 'project ID')),
    async (ctx, o: Json, args) => {
      const c = await ctx.client();
      const projectId = typeof args[0] === 'string' ? args[0] : c.projectId;
      if (!projectId) throw new CliError('no project ID in the token; give one');
      const q = unwrap(await c.call(rq.quotaShow(projectId)), 'quota_set');
      ctx.print(!!o.json, q, () => renderTable(QUOTA_HEADERS, quotaRows(q)));
    },
  );

  const limits = commandNamed(program, 'limits', 'absolute limits');
  run(jsonOption(limits.command('show').description('show the absolute limits of the current project')), async (ctx, o: Json) => {
    const l = unwrap(await (await ctx.client()).call({ method: 'GET', path: '/limits' }), 'limits');
    ctx.print(!!o.json, l, () => renderPairs(['Name', 'Value'], limitRows(l)));
  });
}
