// `bulwark backup <verb>` (Cinder backups) and `bulwark repository <verb>`
// (Bulwark's repository administration extension, admin only).
import type { Command } from 'commander';
import * as brq from './backup-requests.js';
import { asRecordOrNull, CliError, unwrap, type Resource } from './client.js';
import { collect, commandNamed, type Ctx, forEachId, type Json, jsonOption, many, one, pickByName, run, type WaitFlags, waitOptions } from './command-kit.js';
import { col } from './columns.js';
import { renderList, renderPairs, renderShow, renderTable, type Column } from './format.js';
import { followBackup } from './progress-bar.js';
import { UUID } from './requests.js';
import { DEFAULT_WAIT_TIMEOUT_S } from './wait.js';

export function backupColumns(o: { long?: boolean; allProjects?: boolean }): Column[] {
  const cols = [col('ID', 'id'), col('Name', 'name'), col('Status', 'status'), col('Size', 'size'), col('Incremental', 'is_incremental'), col('Volume', 'volume_id')];
  if (o.long) cols.push(col('Snapshot', 'snapshot_id'), col('Created At', 'created_at'), col('Data Timestamp', 'data_timestamp'), col('Has Dependents', 'has_dependent_backups'));
  if (o.allProjects) cols.push(col('Project', 'os-backup-project-attr:project_id'));
  return cols;
}

/** A backup ID as given, or the ID of the one backup with that name. */
async function resolveBackup(ctx: Ctx, idOrName: string): Promise<string> {
  if (UUID.test(idOrName)) return idOrName;
  return pickByName(await (await ctx.client()).listAll(brq.backupList({ name: idOrName }), 'backups'), 'backup', idOrName);
}

const getBackup = async (ctx: Ctx, id: string): Promise<Resource> => (await ctx.client()).getOne(`/backups/${encodeURIComponent(id)}`, 'backup');

/** --wait of create: a progress bar from the progress resource, then the backup. */
async function waitCreated(ctx: Ctx, id: string, o: WaitFlags): Promise<Resource> {
  const c = await ctx.client();
  try {
    await followBackup(`backup ${id}`, async () => unwrap(await c.call(brq.backupProgress(id)), 'progress'), process.stderr, {
      timeoutMs: (o.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_S) * 1000,
    });
  } catch (err) {
    const reason = await getBackup(ctx, id).then((b) => b['fail_reason'], () => null);
    if (typeof reason === 'string' && reason !== '' && err instanceof CliError) throw new CliError(`${err.message}: ${reason}`);
    throw err;
  }
  return getBackup(ctx, id);
}

function registerBackup(program: Command): void {
  // `backup` is also the role command (`bulwark backup` runs a backup
  // service); commander dispatches to these verbs first and to the role otherwise.
  const backup = commandNamed(program, 'backup', 'volume backups');

  interface CreateFlags extends Json, WaitFlags, brq.BackupCreateArgs {}
  run(
    waitOptions(
      jsonOption(
        backup
          .command('create')
          .description('back up a volume (or one of its snapshots) into the backup repository')
          .requiredOption('--volume <volume>', 'the volume, ID or name')
          .option('--name <name>', 'name')
          .option('--description <text>', 'description')
          .option('--incremental', 'only what changed since the newest backup of the volume')
          .option('--snapshot <snapshot>', 'back up this snapshot of the volume')
          .option('--force', 'back up an in-use volume'),
      ),
      'the backup is available (a progress bar on stderr)',
    ),
    async (ctx, o: CreateFlags) => {
      const volume = await ctx.resolve('volumes', 'volume', o.volume);
      const snapshot = o.snapshot === undefined ? undefined : await ctx.resolve('snapshots', 'snapshot', o.snapshot);
      const created = unwrap(await (await ctx.client()).call(brq.backupCreate({ ...o, volume, ...(snapshot ? { snapshot } : {}) })), 'backup');
      const id = String(created['id']);
      const b = o.wait ? await waitCreated(ctx, id, o) : created;
      ctx.print(!!o.json, b, () => renderShow(b));
    },
  );

  run(
    jsonOption(backup.command('list').description('list backups').option('--all-projects', 'include every project (admin)').option('--long', 'more columns')),
    async (ctx, o: { allProjects?: boolean; long?: boolean } & Json) => {
      const items = await (await ctx.client()).listAll(brq.backupList(o), 'backups');
      ctx.print(!!o.json, items, () => renderList(backupColumns(o), items));
    },
  );

  run(jsonOption(backup.command('show').description('show a backup').argument('<backup>', 'ID or name')), async (ctx, o: Json, args) => {
    const b = await getBackup(ctx, await resolveBackup(ctx, one(args)));
    ctx.print(!!o.json, b, () => renderShow(b));
  });

  run(
    waitOptions(
      backup.command('delete').description('delete backups (an incremental backup before its parent)').argument('<backups...>', 'IDs or names').option('--force', 'whatever the status (admin)'),
      'the backups are gone',
    ),
    async (ctx, o: { force?: boolean } & WaitFlags, args) => {
      const c = await ctx.client();
      const done: string[] = [];
      let failure: unknown = null;
      try {
        await forEachId(many(args), 'backup', async (given) => {
          const id = await resolveBackup(ctx, given);
          await c.call(brq.backupItem('DELETE', id, o));
          done.push(id);
        });
      } catch (err) {
        failure = err;
      }
      if (o.wait) for (const id of done) await ctx.wait(`backup ${id}`, brq.backupItem('GET', id), 'backup', 'gone', o);
      if (failure !== null) throw failure;
    },
  );

  run(
    waitOptions(
      jsonOption(
        backup
          .command('restore')
          .description('restore a backup over an existing volume (--volume) or into a new one (--new)')
          .argument('<backup>', 'ID or name')
          .option('--volume <volume>', 'restore over this volume (ID or name); its data is replaced')
          .option('--new', 'restore into a new volume of the backup\'s size')
          .option('--name <name>', 'name of the new volume (with --new)'),
      ),
      'the restored volume is available',
    ),
    async (ctx, o: { volume?: string; new?: boolean; name?: string } & Json & WaitFlags, args) => {
      brq.backupRestore('x', o); // a usage error before any network call
      const id = await resolveBackup(ctx, one(args));
      const volume = o.volume === undefined ? undefined : await ctx.resolve('volumes', 'volume', o.volume);
      const r = unwrap(await (await ctx.client()).call(brq.backupRestore(id, { ...o, ...(volume ? { volume } : {}) })), 'restore');
      if (o.wait) {
        const volumeId = String(r['volume_id']);
        await ctx.wait(`backup ${id}`, brq.backupItem('GET', id), 'backup', 'ready', o);
        await ctx.wait(`volume ${volumeId}`, { method: 'GET', path: `/volumes/${encodeURIComponent(volumeId)}` }, 'volume', 'ready', o);
      }
      ctx.print(!!o.json, r, () => renderShow(r));
    },
  );

  run(
    jsonOption(backup.command('export').description('export a backup\'s record, for `backup import` elsewhere (admin)').argument('<backup>', 'ID or name')),
    async (ctx, o: Json, args) => {
      const rec = unwrap(await (await ctx.client()).call(brq.backupExport(await resolveBackup(ctx, one(args)))), 'backup-record');
      ctx.print(!!o.json, rec, () => renderShow(rec));
    },
  );

  run(
    waitOptions(
      jsonOption(
        backup
          .command('import')
          .description('import a backup record written by `backup export --json` (admin)')
          .requiredOption('--record-file <file>', 'the JSON record'),
      ),
      'the imported backup is available',
    ),
    async (ctx, o: { recordFile: string } & Json & WaitFlags) => {
      const req = brq.backupImport(o.recordFile);
      let b = unwrap(await (await ctx.client()).call(req), 'backup');
      const id = String(b['id']);
      if (o.wait) b = (await ctx.wait(`backup ${id}`, brq.backupItem('GET', id), 'backup', 'ready', o)) ?? b;
      ctx.print(!!o.json, b, () => renderShow(b));
    },
  );
}

function registerRepository(program: Command): void {
  const repo = commandNamed(program, 'repository', 'the backup repository (admin)');

  run(
    jsonOption(
      repo
        .command('verify')
        .description('read back and authenticate every chunk the backups need; exits 1 when one is damaged')
        .option('--backup <backup>', 'only the chunks of this backup (repeatable); default every backup', collect),
    ),
    async (ctx, o: { backup?: string[] } & Json) => {
      const ids: string[] = [];
      for (const b of o.backup ?? []) ids.push(await resolveBackup(ctx, b));
      const v = unwrap(await (await ctx.client()).call(brq.repositoryVerify(ids)), 'verify');
      const damaged = (Array.isArray(v['damaged']) ? (v['damaged'] as unknown[]) : []).map(asRecordOrNull).filter((r): r is Resource => r !== null);
      const unreadable = (Array.isArray(v['unreadable']) ? (v['unreadable'] as unknown[]) : []).map(asRecordOrNull).filter((r): r is Resource => r !== null);
      ctx.print(!!o.json, v, () => {
        const backups = Array.isArray(v['backups']) ? v['backups'].length : 0;
        let text = `checked ${String(v['checked'])} chunks of ${backups} backups: ${damaged.length} damaged, ${unreadable.length} unreadable manifests\n`;
        if (damaged.length > 0) text += renderTable(['Chunk', 'Problem', 'Backups'], damaged.map((d) => [String(d['chunk_id']), String(d['problem']), (d['backups'] as string[]).join('\n')]));
        if (unreadable.length > 0) text += renderList([col('Backup', 'backup_id'), col('Detail', 'detail')], unreadable);
        return text;
      });
      if (damaged.length > 0 || unreadable.length > 0) throw new CliError(`the repository is damaged: ${damaged.length} chunk(s), ${unreadable.length} manifest(s)`);
    },
  );

  run(
    jsonOption(repo.command('gc').description('delete the chunks no backup needs (waits about 35 s before deciding)').option('--dry-run', 'report, delete nothing')),
    async (ctx, o: { dryRun?: boolean } & Json) => {
      const g = unwrap(await (await ctx.client()).call(brq.repositoryGc(o)), 'gc');
      ctx.print(!!o.json, g, () => renderPairs(['Field', 'Value'], Object.entries(g)));
    },
  );
}

export function registerBackupCommands(program: Command): void {
  registerBackup(program);
  registerRepository(program);
}

