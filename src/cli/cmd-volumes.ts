// `bulwark volume|snapshot|type <verb>`.
import type { Command } from 'commander';
import { unwrap } from './client.js';
import { snapshotColumns, typeColumns, volumeColumns } from './columns.js';
import { collect, commandNamed, deleteAll, intArg, type Json, jsonOption, many, one, run, type WaitFlags, waitOptions } from './command-kit.js';
import { renderList, renderShow } from './format.js';
import * as rq from './requests.js';

interface ListFlags extends Json {
  allProjects?: boolean;
  long?: boolean;
}

function registerVolume(program: Command): void {
  // `volume` is also the role command (`bulwark volume` runs the volume
  // service); commander dispatches to these verbs first and to the role otherwise.
  const volume = commandNamed(program, 'volume', 'volumes');

  run(
    jsonOption(volume.command('list').description('list volumes').option('--all-projects', 'include every project (admin)').option('--long', 'more columns')),
    async (ctx, o: ListFlags) => {
      const items = await (await ctx.client()).listAll(rq.list('volumes', { detail: true, allProjects: o.allProjects }), 'volumes');
      ctx.print(!!o.json, items, () => renderList(volumeColumns(o), items));
    },
  );

  run(jsonOption(volume.command('show').description('show a volume').argument('<volume>', 'ID or name')), async (ctx, o: Json, args) => {
    const id = await ctx.resolve('volumes', 'volume', one(args));
    const v = await (await ctx.client()).getOne(`/volumes/${encodeURIComponent(id)}`, 'volume');
    ctx.print(!!o.json, v, () => renderShow(v));
  });

  interface CreateFlags extends Json, WaitFlags {
    size?: number;
    name?: string;
    description?: string;
    type?: string;
    snapshot?: string;
    source?: string;
    group?: string;
    availabilityZone?: string;
    property?: string[];
  }
  run(
    waitOptions(
      jsonOption(
        volume
          .command('create')
          .description('create a volume (empty, from a snapshot, or a clone)')
          .option('--size <GiB>', 'size in GiB (defaults to the source\'s with --snapshot/--source)', intArg(rq.parseSize))
          .option('--name <name>', 'name')
          .option('--description <text>', 'description')
          .option('--type <type>', 'volume type, name or ID')
          .option('--snapshot <snapshot>', 'create from this snapshot')
          .option('--source <volume>', 'clone this volume')
          .option('--group <group>', 'put the volume in this group (3.13)')
          .option('--availability-zone <zone>', 'availability zone')
          .option('--property <key=value>', 'metadata (repeatable)', collect),
      ),
      'the volume is available',
    ),
    async (ctx, o: CreateFlags) => {
      const c = await ctx.client();
      const req = rq.volumeCreate({
        ...o,
        snapshot: o.snapshot && (await ctx.resolve('snapshots', 'snapshot', o.snapshot)),
        source: o.source && (await ctx.resolve('volumes', 'volume', o.source)),
        group: o.group && (await ctx.resolve('groups', 'group', o.group)),
      });
      let v = unwrap(await c.call(req), 'volume');
      const id = String(v['id']);
      if (o.wait) v = (await ctx.wait(`volume ${id}`, rq.item('GET', 'volumes', id), 'volume', 'ready', o)) ?? v;
      ctx.print(!!o.json, v, () => renderShow(v));
    },
  );

  run(
    waitOptions(
      volume
        .command('delete')
        .description('delete volumes')
        .argument('<volumes...>', 'IDs or names')
        .option('--cascade', 'delete the volume\'s snapshots too')
        .option('--force', 'delete whatever the status (admin, 3.23)'),
      'the volumes are gone',
    ),
    async (ctx, o: { cascade?: boolean; force?: boolean } & WaitFlags, args) => {
      await deleteAll(ctx, many(args), { collection: 'volumes', key: 'volume', send: (c, id) => c.call(rq.volumeDelete(id, o)), wait: o });
    },
  );

  run(
    waitOptions(
      volume.command('extend').description('grow a volume').argument('<volume>', 'ID or name').requiredOption('--size <GiB>', 'new size in GiB', intArg(rq.parseSize)),
      'the volume is available again',
    ),
    async (ctx, o: { size: number } & WaitFlags, args) => {
      const id = await ctx.resolve('volumes', 'volume', one(args));
      await (await ctx.client()).call(rq.volumeExtend(id, o.size));
      if (o.wait) await ctx.wait(`volume ${id}`, rq.item('GET', 'volumes', id), 'volume', 'ready', o);
    },
  );

  run(
    waitOptions(
      volume
        .command('revert')
        .description('revert a volume to its latest snapshot (3.40)')
        .argument('<volume>', 'ID or name')
        .requiredOption('--snapshot <snapshot>', 'the snapshot to revert to'),
      'the volume is available again',
    ),
    async (ctx, o: { snapshot: string } & WaitFlags, args) => {
      const id = await ctx.resolve('volumes', 'volume', one(args));
      const snap = await ctx.resolve('snapshots', 'snapshot', o.snapshot);
      await (await ctx.client()).call(rq.volumeRevert(id, snap));
      if (o.wait) await ctx.wait(`volume ${id}`, rq.item('GET', 'volumes', id), 'volume', 'ready', o);
    },
  );

  run(
    volume
      .command('set')
      .description('rename, describe or add metadata to a volume')
      .argument('<volume>', 'ID or name')
      .option('--name <name>', 'new name')
      .option('--description <text>', 'new description')
      .option('--property <key=value>', 'metadata to add or change (repeatable)', collect),
    async (ctx, o: { name?: string; description?: string; property?: string[] }, args) => {
      rq.volumeSet(one(args), o); // a usage error ("nothing to set") before any network call
      const id = await ctx.resolve('volumes', 'volume', one(args));
      const c = await ctx.client();
      for (const req of rq.volumeSet(id, o)) await c.call(req);
    },
  );
}

function registerSnapshot(program: Command): void {
  const snapshot = commandNamed(program, 'snapshot', 'volume snapshots');

  run(
    jsonOption(snapshot.command('list').description('list snapshots').option('--all-projects', 'include every project (admin)').option('--long', 'more columns')),
    async (ctx, o: ListFlags) => {
      const items = await (await ctx.client()).listAll(rq.list('snapshots', { detail: true, allProjects: o.allProjects }), 'snapshots');
      ctx.print(!!o.json, items, () => renderList(snapshotColumns(o), items));
    },
  );

  run(jsonOption(snapshot.command('show').description('show a snapshot').argument('<snapshot>', 'ID or name')), async (ctx, o: Json, args) => {
    const id = await ctx.resolve('snapshots', 'snapshot', one(args));
    const s = await (await ctx.client()).getOne(`/snapshots/${encodeURIComponent(id)}`, 'snapshot');
    ctx.print(!!o.json, s, () => renderShow(s));
  });

  run(
    waitOptions(
      jsonOption(
        snapshot
          .command('create')
          .description('snapshot a volume')
          .requiredOption('--volume <volume>', 'the volume, ID or name')
          .option('--name <name>', 'name')
          .option('--description <text>', 'description')
          .option('--force', 'snapshot an in-use volume too'),
      ),
      'the snapshot is available',
    ),
    async (ctx, o: { volume: string; name?: string; description?: string; force?: boolean } & Json & WaitFlags) => {
      const volumeId = await ctx.resolve('volumes', 'volume', o.volume);
      let s = unwrap(await (await ctx.client()).call(rq.snapshotCreate({ ...o, volume: volumeId })), 'snapshot');
      const id = String(s['id']);
      if (o.wait) s = (await ctx.wait(`snapshot ${id}`, rq.item('GET', 'snapshots', id), 'snapshot', 'ready', o)) ?? s;
      ctx.print(!!o.json, s, () => renderShow(s));
    },
  );

  run(
    waitOptions(snapshot.command('delete').description('delete snapshots').argument('<snapshots...>', 'IDs or names'), 'the snapshots are gone'),
    async (ctx, o: WaitFlags, args) => {
      await deleteAll(ctx, many(args), { collection: 'snapshots', key: 'snapshot', send: (c, id) => c.call(rq.item('DELETE', 'snapshots', id)), wait: o });
    },
  );
}

function registerType(program: Command): void {
  const type = commandNamed(program, 'type', 'volume types');

  run(
    jsonOption(
      type
        .command('list')
        .description('list volume types')
        .option('--long', 'more columns')
        .option('--all', 'public and private types (admin)')
        .option('--private', 'only private types (admin)'),
    ),
    async (ctx, o: { long?: boolean; all?: boolean; private?: boolean } & Json) => {
      const items = await (await ctx.client()).listAll(rq.list('types', { query: rq.typeListQuery(o) }), 'volume_types');
      ctx.print(!!o.json, items, () => renderList(typeColumns(o), items));
    },
  );

  run(jsonOption(type.command('show').description('show a volume type').argument('<type>', 'ID or name')), async (ctx, o: Json, args) => {
    const id = await ctx.resolve('types', 'volume_type', one(args));
    const t = await (await ctx.client()).getOne(`/types/${encodeURIComponent(id)}`, 'volume_type');
    ctx.print(!!o.json, t, () => renderShow(t));
  });

  run(
    jsonOption(
      type
        .command('create')
        .description('create a volume type (admin)')
        .requiredOption('--name <name>', 'name')
        .option('--description <text>', 'description')
        .option('--private', 'visible only to projects given access')
        .option('--property <key=value>', 'extra spec (repeatable)', collect),
    ),
    async (ctx, o: { name: string; description?: string; private?: boolean; property?: string[] } & Json) => {
      const t = unwrap(await (await ctx.client()).call(rq.typeCreate(o)), 'volume_type');
      ctx.print(!!o.json, t, () => renderShow(t));
    },
  );

  run(type.command('delete').description('delete volume types (admin)').argument('<types...>', 'IDs or names'), async (ctx, _o: object, args) => {
    await deleteAll(ctx, many(args), { collection: 'types', key: 'volume_type', send: (c, id) => c.call(rq.item('DELETE', 'types', id)) });
  });
}

export function registerVolumeCommands(program: Command): void {
  registerVolume(program);
  registerSnapshot(program);
  registerType(program);
}
