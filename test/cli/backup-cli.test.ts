// `bulwark backup|repository`: help next to the role, request mapping, and the
// progress bar, without a server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as brq from '../../src/cli/backup-requests.js';
import { CliError, type Resource } from '../../src/cli/client.js';
import { followBackup, formatBytes, renderBar, type ProgressSink } from '../../src/cli/progress-bar.js';

const run = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);
const MiB = 1024 * 1024;

class Sink implements ProgressSink {
  readonly out: string[] = [];
  constructor(readonly isTTY: boolean) {}
  write(text: string): boolean {
    this.out.push(text);
    return true;
  }
}

describe('bulwark backup CLI', () => {
  it('`backup --help` lists the role options and the backup verbs', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'backup', '--help'], { env: { PATH: process.env['PATH'] ?? '' } });
    assert.match(stdout, /run a backup service/);
    for (const opt of ['--data-dir', '--config', '--host-name']) assert.ok(stdout.includes(opt), `role option ${opt}`);
    for (const verb of ['create', 'list', 'show', 'delete', 'restore', 'export', 'import']) assert.match(stdout, new RegExp(`^  ${verb} `, 'm'), `verb ${verb}`);
    const repo = await run(process.execPath, [BIN, 'repository', '--help'], { env: { PATH: process.env['PATH'] ?? '' } });
    assert.match(repo.stdout, /^ {2}verify /m);
    assert.match(repo.stdout, /^ {2}gc /m);
  });

  it('a usage error needs no server', async () => {
    await assert.rejects(run(process.execPath, [BIN, 'backup', 'restore', 'b1'], { env: { PATH: process.env['PATH'] ?? '' } }), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr ?? '', /either --volume VOLUME .* or --new/);
      return true;
    });
  });

  it('maps arguments to requests', () => {
    assert.deepEqual(brq.backupCreate({ volume: 'v', incremental: true, snapshot: 's', force: true, name: 'n' }), {
      method: 'POST',
      path: '/backups',
      body: { backup: { volume_id: 'v', name: 'n', incremental: true, snapshot_id: 's', force: true } },
    });
    assert.deepEqual(brq.backupCreate({ volume: 'v' }).body, { backup: { volume_id: 'v' } });
    assert.deepEqual(brq.backupItem('DELETE', 'a b', { force: true }), { method: 'DELETE', path: '/backups/a%20b', query: { force: 'true' } });
    assert.deepEqual(brq.backupRestore('b', { volume: 'v' }).body, { restore: { volume_id: 'v' } });
    assert.deepEqual(brq.backupRestore('b', { new: true, name: 'x' }).body, { restore: { name: 'x' } });
    assert.deepEqual(brq.backupRestore('b', { new: true }).body, { restore: {} });
    assert.throws(() => brq.backupRestore('b', {}), CliError);
    assert.throws(() => brq.backupRestore('b', { volume: 'v', new: true }), CliError);
    assert.throws(() => brq.backupRestore('b', { volume: 'v', name: 'x' }), /--name names a new volume/);
    assert.deepEqual(brq.repositoryVerify([]).body, { verify: {} });
    assert.deepEqual(brq.repositoryVerify(['a', 'b']).body, { verify: { backup_ids: ['a', 'b'] } });
    assert.deepEqual(brq.repositoryGc({ dryRun: true }), { method: 'POST', path: '/bulwark-repository/gc', body: { gc: { dry_run: true } } });
    assert.deepEqual(brq.backupList({ allProjects: true }).query, { all_tenants: '1' });
  });

  it('reads a record file in either shape', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-rec-'));
    try {
      const rec = { backup_service: 'bulwark', backup_url: 'eyJpZCI6MX0=' };
      const flat = join(dir, 'flat.json');
      const wrapped = join(dir, 'wrapped.json');
      writeFileSync(flat, JSON.stringify(rec));
      writeFileSync(wrapped, JSON.stringify({ 'backup-record': rec }));
      assert.deepEqual(brq.backupImport(flat).body, { 'backup-record': rec });
      assert.deepEqual(brq.backupImport(wrapped).body, { 'backup-record': rec });
      writeFileSync(flat, 'not json');
      assert.throws(() => brq.backupImport(flat), /is not JSON/);
      assert.throws(() => brq.backupImport(join(dir, 'absent.json')), /cannot read/);
      assert.throws(() => brq.parseRecordText('{"backup_service": "x"}', 'f'), /no backup_service and backup_url/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders the bar', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1.5 * MiB), '1.5 MiB');
    assert.equal(renderBar(0, 100 * MiB, 10), '[..........]   0% 0 B / 100.0 MiB');
    assert.equal(renderBar(50 * MiB, 100 * MiB, 10), '[#####.....]  50% 50.0 MiB / 100.0 MiB');
    assert.equal(renderBar(100 * MiB, 100 * MiB, 10), '[##########] 100% 100.0 MiB / 100.0 MiB');
    assert.equal(renderBar(2 * MiB, 0, 4), '[....] 2.0 MiB', 'an unknown total shows bytes only');
  });

  const series = (steps: Resource[]) => {
    let i = 0;
    return async () => steps[Math.min(i++, steps.length - 1)]!;
  };

  it('redraws one line on a terminal and ends it', async () => {
    const sink = new Sink(true);
    const poll = series([
      { status: 'creating', bytes_done: 0, bytes_total: 4 * MiB },
      { status: 'creating', bytes_done: 2 * MiB, bytes_total: 4 * MiB },
      { status: 'available', bytes_done: 4 * MiB, bytes_total: 4 * MiB },
    ]);
    const end = await followBackup('backup x', poll, sink, { timeoutMs: 10_000, pollMs: 1 });
    assert.equal(end['status'], 'available');
    assert.equal(sink.out.length, 3);
    assert.ok(sink.out.every((l) => l.startsWith('\r\x1b[K')));
    assert.match(sink.out[1]!, /50%/);
    assert.match(sink.out[2]!, /100% .* available\n$/);
  });

  it('writes plain lines, a few seconds apart, when stderr is not a terminal', async () => {
    const sink = new Sink(false);
    const steps: Resource[] = Array.from({ length: 20 }, (_, k) => ({ status: 'creating', bytes_done: k, bytes_total: 20 }));
    const end = await followBackup('backup y', series([...steps, { status: 'available', bytes_done: 20, bytes_total: 20 }]), sink, { timeoutMs: 10_000, pollMs: 1, lineEveryMs: 60_000 });
    assert.equal(end['status'], 'available');
    assert.equal(sink.out.length, 2, 'the first line and the final one');
    assert.ok(sink.out.every((l) => !l.includes('\r') && l.endsWith('\n')));
  });

  it('fails on an error status and on timeout', async () => {
    const sink = new Sink(true);
    await assert.rejects(followBackup('backup z', series([{ status: 'creating' }, { status: 'error' }]), sink, { timeoutMs: 10_000, pollMs: 1 }), /backup z went to status error/);
    assert.ok(sink.out[sink.out.length - 1]!.endsWith('\n'), 'the line is ended');
    await assert.rejects(followBackup('backup t', series([{ status: 'creating' }]), new Sink(false), { timeoutMs: 20, pollMs: 5 }), /gave up waiting/);
  });
});
