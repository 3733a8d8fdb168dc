// `bulwark group-type|group|group-snapshot|attachment <verb>`.
import type { Command } from 'commander';
import { unwrap, type Resource } from './client.js';
import { attachmentColumns, groupColumns, groupSnapshotColumns, groupTypeColumns } from './columns.js';
import { collect, commandNamed, type Ctx, deleteAll, type Json, jsonOption, many, one, run, type WaitFlags, waitOptions } from './command-kit.js';
import { renderList, renderShow } from './format.js';
import * as rq from './requests.js';

interface ListFlags extends Json {
  allProjects?: boolean;
  long?: boolean;
}

/** Prints a created group (after --wait, its final state). */
async function finishGroup(ctx: Ctx, created: Resource, o: Json & WaitFlags): Promise<void> {
  const id = String(created['id']);
  const g = o.wait ? ((await ctx.wait(`group ${id}`, rq.item('GET', 'groups', id), 'group', 'ready', o)) ?? created) : created;
  ctx.print(!!o.json, g, () => renderShow(g));
}

function registerGroupType(program: Command): void {
  const gt = commandNamed(program, 'group-type', 'group types (3.11)');

  run(jsonOption(gt.command('list').description('list group types').option('--long', 'more columns')), async (ctx, o: ListFlags) => {
    const items = await (await ctx.client()).listAll(rq.list('group_types'), 'group_types');
    ctx.print(!!o.json, items, () => renderList(groupTypeColumns(o), items));
  });

  run(
    jsonOption(
      gt
        .command('create')
        .description('create a group type (admin)')
        .requiredOption('--name <name>', 'name')
        .option('--description <text>', 'description')
        .option('--private', 'visible only to projects given access')
        .option('--property <key=value>', 'group spec, e.g. consistent_group_snapshot_enabled="<is> True" (repeatable)', collect),
    ),
    async (ctx, o: { name: string; description?: string; private?: boolean; property?: string[] } & Json) => {
      const t = unwrap(await (await ctx.client()).call(rq.groupTypeCreate(o)), 'group_type');
      ctx.print(!!o.json, t, () => renderShow(t));
    },
  );

  run(gt.command('delete').description('delete group types (admin)').argument('<group-types...>', 'IDs or names'), async (ctx, _o: object, args) => {
    await deleteAll(ctx, many(args), { collection: 'group_types', key: 'group_type', send: (c, id) => c.call(rq.item('DELETE', 'group_types', id)) });
  });
}

function registerGroup(program: Command): void {
  const group = commandNamed(program, 'group', 'volume groups (3.13)');

  run(
    jsonOption(group.command('list').description('list groups').option('--all-projects', 'include every project (admin)').option('--long', 'more columns')),
    async (ctx, o: ListFlags) => {
      const items = await (await ctx.client()).listAll(rq.list('groups', { detail: true, allProjects: o.allProjects }), 'groups');
      ctx.print(!!o.json, items, () => renderList(groupColumns(o), items));
    },
  );

  run(jsonOption(group.command('show').description('show a group').argument('<group>', 'ID or name')), async (ctx, o: Json, args) => {
    const id = await ctx.resolve('groups', 'group', one(args));
    const c = await ctx.client();
    // The member volumes are listed from 3.25 on; older versions just lack the field.
    const g = unwrap(await c.call(rq.item('GET', 'groups', id, c.supports('3.25') ? { list_volume: 'True' } : undefined)), 'group');
    ctx.print(!!o.json, g, () => renderShow(g));
  });

  run(
    waitOptions(
      jsonOption(
        group
          .command('create')
          .description('create a group')
          .requiredOption('--group-type <type>', 'group type, name or ID')
          .requiredOption('--volume-type <type>', 'volume type allowed in the group (repeatable)', collect)
          .option('--name <name>', 'name')
          .option('--description <text>', 'description')
          .option('--availability-zone <zone>', 'availability zone'),
      ),
      'the group is available',
    ),
    async (ctx, o: { groupType: string; volumeType: string[]; name?: string; description?: string; availabilityZone?: string } & Json & WaitFlags) => {
      const created = unwrap(await (await ctx.client()).call(rq.groupCreate(o)), 'group');
      await finishGroup(ctx, created, o);
    },
  );

  run(
    waitOptions(
      jsonOption(
        group
          .command('create-from-src')
          .description('create a group from a group snapshot or another group (3.14)')
          .option('--group-snapshot <group-snapshot>', 'source group snapshot, ID or name')
          .option('--source-group <group>', 'source group, ID or name')
          .option('--name <name>', 'name')
          .option('--description <text>', 'description'),
      ),
      'the group is available',
    ),
    async (ctx, o: { groupSnapshot?: string; sourceGroup?: string; name?: string; description?: string } & Json & WaitFlags) => {
      rq.groupCreateFromSrc(o); // usage errors before any lookup
      const req = rq.groupCreateFromSrc({
        ...o,
        groupSnapshot: o.groupSnapshot && (await ctx.resolve('group_snapshots', 'group_snapshot', o.groupSnapshot)),
        sourceGroup: o.sourceGroup && (await ctx.resolve('groups', 'group', o.sourceGroup)),
      });
      await finishGroup(ctx, unwrap(await (await ctx.client()).call(req), 'group'), o);
    },
  );

  run(
    waitOptions(
      group.command('delete').description('delete groups').argument('<groups...>', 'IDs or names').option('--delete-volumes', 'delete the member volumes too'),
      'the groups are gone',
    ),
    async (ctx, o: { deleteVolumes?: boolean } & WaitFlags, args) => {
      await deleteAll(ctx, many(args), { collection: 'groups', key: 'group', send: (c, id) => c.call(rq.groupDelete(id, o)), wait: o });
    },
  );
}

function registerGroupSnapshot(program: Command): void {
  const gs = commandNamed(program, 'group-snapshot', 'group snapshots (3.14)');

  run(
    jsonOption(gs.command('list').description('list group snapshots').option('--all-projects', 'include every project (admin)')),
    async (ctx, o: ListFlags) => {
      const items = await (await ctx.client()).listAll(rq.list('group_snapshots', { detail: true, allProjects: o.allProjects }), 'group_snapshots');
      ctx.print(!!o.json, items, () => renderList(groupSnapshotColumns(), items));
    },
  );

  run(jsonOption(gs.command('show').description('show a group snapshot').argument('<group-snapshot>', 'ID or name')), async (ctx, o: Json, args) => {
    const id = await ctx.resolve('group_snapshots', 'group_snapshot', one(args));
    const s = unwrap(await (await ctx.client()).call(rq.item('GET', 'group_snapshots', id)), 'group_snapshot');
    ctx.print(!!o.json, s, () => renderShow(s));
  });

  run(
    waitOptions(
      jsonOption(
        gs
          .command('create')
          .description('snapshot every volume of a group')
          .requiredOption('--group <group>', 'the group, ID or name')
          .option('--name <name>', 'name')
          .option('--description <text>', 'description'),
      ),
      'the group snapshot is available',
    ),
    async (ctx, o: { group: string; name?: string; description?: string } & Json & WaitFlags) => {
      const groupId = await ctx.resolve('groups', 'group', o.group);
      let s = unwrap(await (await ctx.client()).call(rq.groupSnapshotCreate({ ...o, group: groupId })), 'group_snapshot');
      const id = String(s['id']);
      if (o.wait) s = (await ctx.wait(`group snapshot ${id}`, rq.item('GET', 'group_snapshots', id), 'group_snapshot', 'ready', o)) ?? s;
      ctx.print(!!o.json, s, () => renderShow(s));
    },
  );

  run(
    waitOptions(gs.command('delete').description('delete group snapshots').argument('<group-snapshots...>', 'IDs or names'), 'the group snapshots are gone'),
    async (ctx, o: WaitFlags, args) => {
      await deleteAll(ctx, many(args), {
        collection: 'group_snapshots',
        key: 'group_snapshot',
        send: (c, id) => c.call(rq.item('DELETE', 'group_snapshots', id)),
        wait: o,
      });
    },
  );
}

function registerAttachment(program: Command): void {
  const att = commandNamed(program, 'attachment', 'volume attachments (3.27)');
  // connection_info is what a host needs to connect; one row per field reads best.
  const showAttachment = (a: Resource) => renderShow(a, ['connection_info']);

  run(
    jsonOption(att.command('list').description('list attachments').option('--all-projects', 'include every project (admin)')),
    async (ctx, o: ListFlags) => {
      const items = await (await ctx.client()).listAll(rq.list('attachments', { allProjects: o.allProjects }), 'attachments');
      ctx.print(!!o.json, items, () => renderList(attachmentColumns(), items));
    },
  );

  run(jsonOption(att.command('show').description('show an attachment and its connection info').argument('<attachment>', 'ID')), async (ctx, o: Json, args) => {
    const a = unwrap(await (await ctx.client()).call(rq.item('GET', 'attachments', one(args))), 'attachment');
    ctx.print(!!o.json, a, () => showAttachment(a));
  });

  run(
    jsonOption(
      att
        .command('create')
        .description('reserve a volume for a host; with --connector-host, export it and print the connection info')
        .requiredOption('--volume <volume>', 'the volume, ID or name')
        .option('--instance <uuid>', 'the server the volume is for')
        .option('--connector-host <host>', 'the host that will connect')
        .option('--mode <mode>', 'rw or ro (3.54)'),
    ),
    async (ctx, o: { volume: string; instance?: string; connectorHost?: string; mode?: string } & Json) => {
      rq.attachmentCreate(o); // usage errors before any lookup
      const volumeId = await ctx.resolve('volumes', 'volume', o.volume);
      const a = unwrap(await (await ctx.client()).call(rq.attachmentCreate({ ...o, volume: volumeId })), 'attachment');
      ctx.print(!!o.json, a, () => showAttachment(a));
    },
  );

  run(att.command('complete').description('mark an attachment attached (3.44)').argument('<attachment>', 'ID'), async (ctx, _o: object, args) => {
    await (await ctx.client()).call(rq.attachmentComplete(one(args)));
  });

  run(att.command('delete').description('detach: delete attachments').argument('<attachments...>', 'IDs'), async (ctx, _o: object, args) => {
    await deleteAll(ctx, many(args), { collection: 'attachments', key: 'attachment', send: (c, id) => c.call(rq.item('DELETE', 'attachments', id)) });
  });
}

export function registerGroupCommands(program: Command): void {
  registerGroupType(program);
  registerGroup(program);
  registerGroupSnapshot(program);
  registerAttachment(program);
}
