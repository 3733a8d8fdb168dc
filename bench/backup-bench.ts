// Issue 3 benchmark. A 4 GiB reference volume (1 MiB blocks in shuffled order:
// 50% random bytes, 25% text-like words, 25% never written), then 5% of its
// blocks rewritten, spread uniformly. Bulwark (roles as separate processes, so
// the backup service's own peak memory is measured) next to restic backing up
// the same data as a raw image file, and qemu-img convert of the same image, in
// one invocation. Prints figures and the issue's targets; asserts nothing.
// Restores run several times, alternating with restic's, and medians are
// compared: on this shared VM disk identical runs differ by tens of percent.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { aeadImplementation } from '../src/backup/repository/aead.js';
import { NbdClient } from '../src/drivers/nbd/client.js';
import { ApiSession } from '../test/harness/aio.js';
import { makeCluster } from '../test/harness/processes.js';

const MiB = 1024 * 1024;
const BLOCKS = Number(process.env['BENCH_BLOCKS'] ?? 4096);
/** How often the bench asks whether a timed step has finished; the time itself comes from the role's row. */
const POLL_MS = 250;
const WORDS = 'block storage snapshot volume backup restore cluster quiesce replica consistent group site failover tempest cinder keystone qemu nbd layer chunk'.split(' ');

function textBlock(seed: number): Buffer {
  const parts: string[] = [];
  let len = 0;
  let x = seed * 2654435761;
  while (len < MiB) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = WORDS[x % WORDS.length]!;
    parts.push(w);
    len += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, MiB);
}

function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let x = seed;
  for (let i = n - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) >>> 0;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

function du(path: string): number {
  return Number(execFileSync('du', ['-sb', path]).toString().split(/\s/)[0]);
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath ?? d.path, d.name));
}

function exited(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${String(code)}`))));
  });
}

/**
 * What this disk needs, at best, to move a restore's bytes: every file of the
 * repository read (cat, through the page cache and its readahead, as the
 * restore reads packs) while fio writes `writeBytes` with O_DIRECT and fsyncs,
 * as the restore writes the volume. No decryption, no NBD, no qcow2: a floor
 * no restore from this repository on this disk can beat. null without fio.
 */
async function diskFloor(repoDir: string, scratch: string, writeBytes: number): Promise<Timed<void> | null> {
  if (spawnSync('fio', ['--version']).status !== 0) return null;
  const target = join(scratch, 'floor.raw');
  const t = await timeAsync(() =>
    Promise.all([
      exited('sh', ['-c', 'cat "$@" > /dev/null', 'sh', ...filesUnder(repoDir)]),
      exited('fio', ['--name=floor', `--filename=${target}`, `--size=${Math.ceil(writeBytes / MiB)}M`, '--rw=write', '--bs=1M', '--direct=1', '--ioengine=libaio', '--iodepth=16', '--end_fsync=1']),
    ]).then(() => undefined),
  );
  rmSync(target, { force: true });
  return t;
}

interface Timed<T> {
  readonly ms: number;
  readonly value: T;
  /** What the disk did meanwhile. */
  readonly disk: string;
}

/**
 * Every timed step starts from the same state: `sync`, so no step pays for
 * writing back what an earlier one left dirty, and (as root) the page cache
 * dropped, so every step reads its input from the disk, as the backup
 * service's reads through QSD (cache=none) always do.
 */
function settle(): void {
  execFileSync('sync');
  if (DROP_CACHES) writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

const DROP_CACHES = process.getuid?.() === 0 && process.env['BENCH_KEEP_CACHE'] !== '1';

function time<T>(fn: () => T): Timed<T> {
  settle();
  const d0 = diskCounters();
  const t0 = performance.now();
  const value = fn();
  const ms = performance.now() - t0;
  return { ms, value, disk: diskSince(d0, ms) };
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  settle();
  const d0 = diskCounters();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  return { ms, value, disk: diskSince(d0, ms) };
}

/** CPU seconds (user, system; all threads) a process has used so far. */
function cpuSeconds(pid: number): { user: number; sys: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) / 100, sys: Number(fields[12]) / 100 }; // utime, stime in clock ticks (USER_HZ = 100)
}

/** CPU seconds per thread name (main thread, workers, libuv pool, V8 GC helpers). */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

function threadCpuSince(pid: number, from: Map<string, number>): string {
  return [...threadCpu(pid)]
    .map(([name, s]) => [name, s - (from.get(name) ?? 0)] as const)
    .filter(([, s]) => s >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${s.toFixed(1)}`)
    .join(', ');
}

/** The root filesystem's block device counters: MiB read and written, and ms the device was busy (/proc/diskstats). */
interface DiskCounters {
  readonly readMiB: number;
  readonly writtenMiB: number;
  readonly busyMs: number;
}

function rootDisk(): string | null {
  const dev = statSync('/').dev;
  const major = Math.floor(dev / 256);
  const minor = dev % 256;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) === major && Number(f[1]) === minor) return f[2]!;
  }
  return null;
}

const DISK = rootDisk();

function diskCounters(): DiskCounters | null {
  if (!DISK) return null;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] === DISK) return { readMiB: (Number(f[5]) * 512) / MiB, writtenMiB: (Number(f[9]) * 512) / MiB, busyMs: Number(f[12]) };
  }
  return null;
}

/** What the disk did during a timed step: how much it moved, and how busy it was. */
function diskSince(from: DiskCounters | null, wallMs: number): string {
  const now = diskCounters();
  if (!from || !now) return 'n/a';
  return `read ${(now.readMiB - from.readMiB).toFixed(0)} MiB, wrote ${(now.writtenMiB - from.writtenMiB).toFixed(0)} MiB, busy ${(((now.busyMs - from.busyMs) / wallMs) * 100).toFixed(0)}% of the time`;
}

/** The pool's qemu-storage-daemon (its argv names the cluster's directory). */
function qsdPid(clusterDir: string): number | null {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-storage-daemon') || cmd.includes('/qemu-storage-daemon\0')) if (cmd.includes(clusterDir)) return Number(pid);
    } catch {
      // gone
    }
  }
  return null;
}

function cpuSince(pid: number, from: { user: number; sys: number }): string {
  const now = cpuSeconds(pid);
  const user = now.user - from.user;
  const sys = now.sys - from.sys;
  return `${(user + sys).toFixed(1)} s (user ${user.toFixed(1)}, sys ${sys.toFixed(1)})`;
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const started = performance.now();
function step(what: string): void {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}\n`);
}

async function main(): Promise<void> {
  // BENCH_CONFIG: extra Bulwark configuration as JSON, e.g. '{"backup":{"inFlight":16}}' to try a tuning.
  const cluster = await makeCluster(process.env['BENCH_CONFIG'] ? { extra: JSON.parse(process.env['BENCH_CONFIG']) as Record<string, unknown> } : {});
  await cluster.start('api');
  await cluster.start('scheduler');
  await cluster.start('volume');
  const backupProc = await cluster.start('backup');
  const work = join(cluster.dir, 'bench');
  mkdirSync(work, { recursive: true });
  const out: string[] = [];
  try {
    const admin = await ApiSession.login(cluster.url, 'admin', 'admin-pw', 'admin');
    const s = await ApiSession.login(cluster.url, 'alice', 'alice-pw', 'alpha');
    await admin.call('PUT', `/os-quota-sets/${s.projectId}`, { quota_set: { gigabytes: 1000, backup_gigabytes: 1000 } });
    const sizeGiB = Math.ceil(BLOCKS / 1024);
    const v = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: { size: sizeGiB, name: 'reference' } });
    const vol = v.body.volume.id;
    await s.waitFor(`/volumes/${vol}`, 'volume', ['available']);
    const conn = await s.call<{ connection_info: { data: { socket_path: string; export_name: string } } }>('POST', `/volumes/${vol}/action`, { 'os-initialize_connection': { connector: { host: 'testhost' } } });
    const nbd = await NbdClient.connectUnix(conn.body.connection_info.data.socket_path, conn.body.connection_info.data.export_name);
    const order = shuffled(BLOCKS, 42);
    let written = 0;
    for (let k = 0; k < BLOCKS; k++) {
      const b = order[k]!;
      const kind = k % 4; // 0,1: random; 2: text; 3: unallocated
      if (kind === 3) continue;
      await nbd.write(b * MiB, kind === 2 ? textBlock(b) : randomBytes(MiB));
      written += MiB;
    }
    await nbd.flush();
    await s.call('POST', `/volumes/${vol}/action`, { 'os-terminate_connection': { connector: { host: 'testhost' } } });
    step('reference volume written');
    out.push(`reference volume: ${BLOCKS} MiB, ${written / MiB} MiB written (50% random, 25% text), 25% unallocated`);

    /** One row from the cluster's state store, read-only beside the running roles. */
    const storeRow = async <T>(sql: string, ...params: unknown[]): Promise<T> => {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(cluster.dir, 'bulwark.db'), { readonly: true });
      try {
        return db.prepare(sql).get(...params) as T;
      } finally {
        db.close();
      }
    };
    const layerOf = async (volumeId = vol) =>
      (await storeRow<{ path: string }>('select l.path from volumes v join layers l on l.id = v.active_layer_id where v.id = ?', volumeId)).path;
    // The same data as a raw file for restic, made by the qemu-img baseline itself.
    const raw = join(work, 'reference.raw');
    const top1 = await layerOf();
    const qimg = time(() => execFileSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', top1, raw]));
    // The same copy made durable as a backup's packs are (-t none: O_DIRECT writes, flushed): convert's
    // default destination cache mode is "unsafe", which leaves the data in the page cache unflushed.
    const rawDurable = join(work, 'reference-durable.raw');
    const qimgDurable = time(() => execFileSync('qemu-img', ['convert', '-U', '-t', 'none', '-f', 'qcow2', '-O', 'raw', top1, rawDurable]));
    rmSync(rawDurable);

    /** Jobs not finished yet, of any role: 0 once the volume role has merged the dropped snapshot's layer. */
    const unfinishedJobs = async (): Promise<number> => (await storeRow<{ n: number }>("select count(*) as n from jobs where state not in ('done', 'failed')")).n;
    /**
     * Times a request to the moment its role recorded the end in a row (status
     * and updated_at, stamped by this host's clock). The bench can then poll
     * every POLL_MS instead of loading the API and the CPU beside the step it
     * measures, and still time it to the millisecond.
     */
    const timeToRow = async <T extends { readonly id: string }>(table: 'backups' | 'volumes', fn: () => Promise<T>): Promise<Timed<T>> => {
      let wallStart = 0;
      const t = await timeAsync(() => {
        wallStart = Date.now();
        return fn();
      });
      const row = await storeRow<{ updated_at: string }>(`select updated_at from ${table} where id = ?`, t.value.id);
      return { ...t, ms: Date.parse(row.updated_at) - wallStart };
    };
    const backupOnce = (incremental: boolean) =>
      timeToRow('backups', async () => {
        const t0 = performance.now();
        const r = await s.call<{ backup: { id: string } }>('POST', '/backups', { backup: { volume_id: vol, incremental } });
        await s.waitFor(`/backups/${r.body.backup.id}`, 'backup', ['available'], 3_600_000, POLL_MS);
        const p = await s.call<{ progress: Record<string, number> }>('GET', `/bulwark-progress/backups/${r.body.backup.id}`);
        return { id: r.body.backup.id, bytesRead: Number(p.body.progress['bytes_read']), t0 };
      });
    // The backup is usable when it is available; the volume role then drops the
    // temporary snapshot (merging its layer). Waited for, not timed as the
    // backup, and reported, so that no later step runs beside it.
    const settled = async (from: number): Promise<number> => {
      while ((await unfinishedJobs()) > 0) await new Promise((r) => setTimeout(r, 20));
      return performance.now() - from;
    };
    step('qemu-img baseline done');
    const repoDir = join(cluster.dir, 'backups');
    const bpid = backupProc.child.pid!;
    const cpu0 = cpuSeconds(bpid);
    const threads0 = threadCpu(bpid);
    const qsd = qsdPid(cluster.dir);
    const qsdCpu0 = qsd ? cpuSeconds(qsd) : null;
    const full = await backupOnce(false);
    const fullSettledMs = await settled(full.value.t0);
    const fullCpu = cpuSince(bpid, cpu0);
    const fullThreads = threadCpuSince(bpid, threads0);
    const qsdFull = qsd && qsdCpu0 ? cpuSince(qsd, qsdCpu0) : 'n/a';
    const repoFull = du(repoDir);
    step('full backup done');

    const resticRepo = join(work, 'restic');
    const pw = join(work, 'restic.pw');
    writeFileSync(pw, 'bench-password', { mode: 0o600 });
    const restic = (args: string[]) => {
      const r = spawnSync('restic', ['-r', resticRepo, '--password-file', pw, '--no-cache', ...args], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`restic ${args[0]} failed`);
    };
    restic(['init']);
    const rFull = time(() => restic(['backup', raw]));
    const resticFullSize = du(resticRepo);
    step('restic full done');

    // Rewrite 5% of the blocks, spread uniformly.
    const conn2 = await s.call<{ connection_info: { data: { socket_path: string; export_name: string } } }>('POST', `/volumes/${vol}/action`, { 'os-initialize_connection': { connector: { host: 'testhost' } } });
    const nbd2 = await NbdClient.connectUnix(conn2.body.connection_info.data.socket_path, conn2.body.connection_info.data.export_name);
    const stride = 20;
    let changed = 0;
    for (let b = 7; b < BLOCKS; b += stride) {
      await nbd2.write(b * MiB, randomBytes(MiB));
      changed += MiB;
    }
    await nbd2.flush();
    await nbd2.close();
    await nbd.close().catch(() => undefined);
    await s.call('POST', `/volumes/${vol}/action`, { 'os-terminate_connection': { connector: { host: 'testhost' } } });
    // The top layer moved on (each backup snapshots the volume): resolve it again.
    execFileSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', await layerOf(), raw]);

    step('rewrite done');
    const inc = await backupOnce(true);
    const incSettledMs = await settled(inc.value.t0);
    step('incremental done');
    const repoInc = du(repoDir);
    const rInc = time(() => restic(['backup', raw]));
    const resticIncSize = du(resticRepo);

    // The restore is disk-bound and this VM's disk moves by tens of percent between
    // identical runs, so both restores run BENCH_RESTORE_RUNS times, alternating,
    // each from a cold cache; the medians are compared.
    const restoreRuns = Math.max(1, Number(process.env['BENCH_RESTORE_RUNS'] ?? 5));
    const restoreDir = join(work, 'restic-restore');
    const ours: number[] = [];
    const theirs: number[] = [];
    const theirsFlushed: number[] = [];
    const floors: number[] = [];
    let floorDisk = 'n/a';
    let restore: Timed<{ id: string }> | null = null;
    let rRestore: Timed<void> | null = null;
    let same: ReturnType<typeof spawnSync> | null = null;
    let restoreCpu = '';
    let restoreThreads = '';
    let qsdRestore = 'n/a';
    for (let run = 0; run < restoreRuns; run++) {
      const cpu1 = cpuSeconds(bpid);
      const threads1 = threadCpu(bpid);
      const qsdCpu1 = qsd ? cpuSeconds(qsd) : null;
      const r = await timeToRow('volumes', async () => {
        const res = await s.call<{ restore: { volume_id: string } }>('POST', `/backups/${inc.value.id}/restore`, { restore: {} });
        await s.waitFor(`/backups/${inc.value.id}`, 'backup', ['available'], 3_600_000, POLL_MS);
        await s.waitFor(`/volumes/${res.body.restore.volume_id}`, 'volume', ['available'], 3_600_000, POLL_MS);
        return { id: res.body.restore.volume_id };
      });
      ours.push(r.ms);
      if (run === 0) {
        restore = r;
        restoreCpu = cpuSince(bpid, cpu1);
        restoreThreads = threadCpuSince(bpid, threads1);
        qsdRestore = qsd && qsdCpu1 ? cpuSince(qsd, qsdCpu1) : 'n/a';
        // Not timed: the restored volume must hold exactly the bytes backed up (the raw image of the same point).
        same = spawnSync('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', await layerOf(r.value.id), raw], { encoding: 'utf8' });
      }
      await s.call('DELETE', `/volumes/${r.value.id}`);
      await s.waitFor(`/volumes/${r.value.id}`, 'volume', ['deleted'], 600_000);

      rmSync(restoreDir, { recursive: true, force: true });
      const rr = time(() => restic(['restore', 'latest', '--target', restoreDir]));
      // restic leaves what it restored in the page cache; Bulwark's restore ends with the volume flushed.
      const flushStart = performance.now();
      execFileSync('sync');
      theirs.push(rr.ms);
      theirsFlushed.push(rr.ms + performance.now() - flushStart);
      if (run === 0) rRestore = rr;
      const floor = await diskFloor(repoDir, work, written);
      if (floor) floors.push(floor.ms);
      if (floor && run === 0) floorDisk = floor.disk;
      step(`restore run ${run + 1} of ${restoreRuns} done`);
    }
    step('restores done');
    const peak = peakRssMiB(backupProc.child.pid!);

    const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
    out.push(`AES-256-GCM in the backup service: ${aeadImplementation()}`);
    out.push(`qemu-img convert (qcow2 -> raw) of the volume: ${f(qimg.ms)}; durable (-t none): ${f(qimgDurable.ms)}`);
    out.push(`full backup:        Bulwark ${f(full.ms)} (read ${mib(full.value.bytesRead)}), restic ${f(rFull.ms)}  -> ${(rFull.ms / full.ms).toFixed(2)}x faster than restic [target >= 3x], ${(full.ms / qimg.ms).toFixed(2)}x qemu-img convert [target <= 1.5x] (${(full.ms / qimgDurable.ms).toFixed(2)}x the durable convert)`);
    out.push(`repository after full: Bulwark ${mib(repoFull)}, restic ${mib(resticFullSize)}`);
    out.push(`rewrote ${mib(changed)} (5% of blocks)`);
    out.push(`incremental backup: Bulwark ${f(inc.ms)} (read ${mib(inc.value.bytesRead)} = ${(inc.value.bytesRead / changed).toFixed(2)}x changed [target <= 1.1x]), restic ${f(rInc.ms)}  -> ${(rInc.ms / inc.ms).toFixed(2)}x faster [target >= 7x]`);
    out.push(`backup job done, its temporary snapshot dropped and merged, after: full ${f(fullSettledMs)}, incremental ${f(incSettledMs)}`);
    out.push(`repository growth:  Bulwark ${mib(repoInc - repoFull)} = ${((repoInc - repoFull) / changed).toFixed(2)}x changed [target <= 1.2x], restic ${mib(resticIncSize - resticFullSize)}`);
    const runs = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
    out.push(`restore (median of ${restoreRuns}): Bulwark ${f(median(ours))}, restic ${f(median(theirs))}  -> ${(median(theirs) / median(ours)).toFixed(2)}x faster [target >= 2x]; restic + flushing what it wrote ${f(median(theirsFlushed))} -> ${(median(theirsFlushed) / median(ours)).toFixed(2)}x`);
    out.push(`  runs (s): Bulwark ${runs(ours)}; restic ${runs(theirs)}; restic + flush ${runs(theirsFlushed)}; ratio per run ${ours.map((o, i) => (theirs[i]! / o).toFixed(2)).join(', ')}`);
    if (floors.length > 0) {
      const fl = median(floors);
      out.push(`  disk floor for the restore's bytes (cat every repository file while fio writes ${mib(written)} O_DIRECT and fsyncs; no decryption, NBD or qcow2): median ${f(fl)}, runs ${runs(floors)}`);
      out.push(`  -> Bulwark's restore takes ${(median(ours) / fl).toFixed(2)}x the floor; 2x restic would need ${f(median(theirs) / 2)} = ${(median(theirs) / 2 / fl).toFixed(2)}x the floor`);
    } else out.push('  disk floor: not measured (fio is not installed)');
    out.push(`restored volume identical to the source image (qemu-img compare): ${same?.status === 0 ? 'yes' : `NO (${String(same?.stdout ?? '')}${String(same?.stderr ?? '')})`.trim()}`);
    out.push(`backup process peak RSS: ${peak.toFixed(0)} MiB [target <= 400 MiB]`);
    out.push(`before each timed step: sync${DROP_CACHES ? ' and the page cache dropped' : ''}`);
    out.push(`disk (${DISK ?? '?'}) during: qemu-img convert ${qimg.disk}; durable convert ${qimgDurable.disk}`);
    out.push(`  full backup ${full.disk}; restic full ${rFull.disk}`);
    out.push(`  first restore ${restore?.disk ?? 'n/a'}; restic restore ${rRestore?.disk ?? 'n/a'}; disk floor ${floorDisk}`);
    out.push(`backup process CPU: full backup ${fullCpu}, restore ${restoreCpu} (of ${availableParallelism()} cores); load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    out.push(`  by thread, full backup: ${fullThreads}`);
    out.push(`  by thread, restore:     ${restoreThreads}`);
    out.push(`qemu-storage-daemon CPU: full backup ${qsdFull}, restore ${qsdRestore}`);
    // BENCH_LOGS=1: the backup role's own timings (where a job's time went).
    if (process.env['BENCH_LOGS']) for (const l of backupProc.output.join('').split('\n')) if (/restore written|backup done|"ms"/.test(l)) out.push(`  log: ${l}`);
  } finally {
    await cluster.stopAll();
    rmSync(cluster.dir, { recursive: true, force: true });
  }
  console.log(out.join('\n'));
}

await main();
