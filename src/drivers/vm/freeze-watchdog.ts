// The freeze watchdog: a frozen guest is always thawed, even if the caller
// that froze it and the compute role both die.
//
// qemu-ga 7.2 never thaws by itself, and a frozen guest's writers block for as
// long as it stays frozen. So whoever freezes first records a deadline in
// DIR/freeze-deadline.json and makes sure a small detached process (one per
// instance dir, DIR/watchdog.pid) watches it. The watchdog polls the file;
// when the deadline passes it thaws through the agent socket, records what it
// did in DIR/watchdog-result.json, removes the deadline and exits. It exits by
// itself once the deadline file is gone (normal thaw by the caller) or QEMU is.
// It never reads the state store and holds no secrets: the instance dir is
// all it knows.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fsfreezeStatus, fsfreezeThaw, type FsfreezeStatus } from '../qga/commands.js';
import { QgaConnection } from '../qga/connection.js';
import { isPidAlive, isRecord, readCmdline, readJson, readPid, sleep, writeFileAtomic } from './proc.js';
import { vmPaths } from './spec.js';
import { vmPid } from './vm.js';

export interface WatchdogResult {
  thawedAt: number;
  statusAfter: string;
  error?: string;
}

export const POLL_MS = 100;
const MAIN = fileURLToPath(new URL('./freeze-watchdog-main.js', import.meta.url));
const START_WAIT_MS = 5_000;
/** Per attempt: the socket may be held by another client (one at a time), so attempts are short and repeated. */
const CONNECT_ATTEMPT_MS = 3_000;
const THAW_TIMEOUT_MS = 5_000;
const THAW_TRIES_PER_CONNECTION = 5;
/** After this long past the deadline without a confirmed thaw, give up and record the failure. */
const GIVE_UP_MS = 10 * 60_000;

const files = (dir: string) => ({
  deadline: join(dir, 'freeze-deadline.json'),
  pid: join(dir, 'watchdog.pid'),
  log: join(dir, 'watchdog.log'),
  result: join(dir, 'watchdog-result.json'),
});

function requireDir(dir: string): void {
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw new Error(`instance dir must be an absolute path: ${String(dir)}`);
}

/** The armed deadline (epoch ms), null when none. A corrupt file counts as already expired: thawing early is safe, never thawing is not. */
function readDeadline(dir: string): number | null {
  let v: unknown;
  try {
    v = readJson(files(dir).deadline);
  } catch {
    return 0;
  }
  if (v === undefined) return null;
  return isRecord(v) && typeof v['deadlineAt'] === 'number' && Number.isFinite(v['deadlineAt']) ? v['deadlineAt'] : 0;
}

/** True if pid is a live watchdog process for this dir (guards against pid reuse). */
function isWatchdogOf(pid: number, dir: string): boolean {
  if (!isPidAlive(pid)) return false;
  const argv = readCmdline(pid);
  return argv !== null && argv.length >= 2 && basename(argv[argv.length - 2] ?? '') === basename(MAIN) && argv[argv.length - 1] === dir;
}

function runningWatchdog(dir: string): number | null {
  const pid = readPid(files(dir).pid);
  return pid !== null && isWatchdogOf(pid, dir) ? pid : null;
}

/**
 * Records the thaw deadline and makes sure a watchdog enforces it. Throws
 * when no watchdog could be started: the caller must then thaw by itself.
 */
export async function armFreezeDeadline(dir: string, deadlineAt: number): Promise<void> {
  requireDir(dir);
  if (!Number.isFinite(deadlineAt)) throw new RangeError('deadlineAt must be a finite epoch ms');
  // The deadline goes first: a watchdog that is just exiting re-reads it before it leaves (see runWatchdog).
  writeFileAtomic(files(dir).deadline, `${JSON.stringify({ deadlineAt, armedAt: Date.now(), armedBy: process.pid })}\n`);
  await ensureWatchdog(dir);
}

export async function disarmFreezeDeadline(dir: string): Promise<void> {
  requireDir(dir);
  rmSync(files(dir).deadline, { force: true });
}

export async function lastWatchdogAction(dir: string): Promise<WatchdogResult | null> {
  requireDir(dir);
  const v = readJson(files(dir).result);
  if (v === undefined) return null;
  if (!isRecord(v) || typeof v['thawedAt'] !== 'number' || typeof v['statusAfter'] !== 'string') throw new Error(`malformed ${files(dir).result}`);
  return { thawedAt: v['thawedAt'], statusAfter: v['statusAfter'], ...(typeof v['error'] === 'string' ? { error: v['error'] } : {}) };
}

/**
 * Makes sure a watchdog runs for this dir while a deadline is armed (the
 * compute role calls this after its own restart). Resolves true once one is
 * running, false when there is nothing to watch (no deadline armed, or
 * no QEMU running for the dir).
 */
export async function ensureWatchdog(dir: string): Promise<boolean> {
  requireDir(dir);
  if (!existsSync(files(dir).deadline)) return false;
  if (runningWatchdog(dir) !== null) return true;
  // No QEMU, no frozen guest: a watchdog would exit at once.
  if (vmPid(dir) === null) return false;
  const f = files(dir);
  let lastFailure = '';
  // A second try covers a watchdog that died at start for a passing reason (resources under load).
  for (let attempt = 1; attempt <= 2; attempt++) {
    const outcome = await spawnWatchdog(dir);
    if (outcome === 'running') return true;
    if (outcome === 'nothing-to-watch') return false;
    lastFailure = outcome;
  }
  throw new Error(`the freeze watchdog for ${dir} did not stay up (${lastFailure}): ${logTail(f.log)}`);
}

/** Spawns one watchdog and waits until a watchdog (it, or one that won a race) holds the pidfile. */
async function spawnWatchdog(dir: string): Promise<'running' | 'nothing-to-watch' | string> {
  const f = files(dir);
  const logFd = openSync(f.log, 'a', 0o600);
  let exited: string | null = null;
  try {
    // Own session, no stdio of ours, not waited for: it must outlive us. No environment of ours either.
    const child = spawn(process.execPath, [MAIN, dir], { detached: true, stdio: ['ignore', logFd, logFd], cwd: '/', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
    child.once('exit', (code, signal) => (exited = `exit ${code ?? signal}`));
    child.once('error', (err) => (exited = `spawn failed: ${err.message}`));
    child.unref();
  } finally {
    closeSync(logFd);
  }
  // Waiting for the pidfile means our caller may die right after we return.
  const deadline = Date.now() + START_WAIT_MS;
  for (;;) {
    if (runningWatchdog(dir) !== null) return 'running';
    // Disarmed meanwhile, or it was quick: deadline already past and thawed.
    if (!existsSync(f.deadline)) return 'nothing-to-watch';
    if (exited !== null && runningWatchdog(dir) === null) return exited;
    if (Date.now() > deadline) return `not up within ${START_WAIT_MS} ms`;
    await sleep(10);
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

// ---- the watchdog process itself (run by freeze-watchdog-main.ts) ----

function log(msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), pid: process.pid, msg, ...extra })}\n`);
}

/** Takes DIR/watchdog.pid; false when another live watchdog holds it. */
function takePidFile(dir: string): boolean {
  const f = files(dir).pid;
  for (let i = 0; i < 3; i++) {
    try {
      writeFileSync(f, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readPid(f);
      if (holder === process.pid) return true;
      if (holder !== null && isWatchdogOf(holder, dir)) return false;
      rmSync(f, { force: true }); // stale: its watchdog died
    }
  }
  return false;
}

function releasePidFile(dir: string): void {
  const f = files(dir).pid;
  if (readPid(f) === process.pid) rmSync(f, { force: true });
}

/** Runs the watchdog loop for dir; resolves with the exit code. */
export async function runWatchdog(dir: string): Promise<number> {
  requireDir(dir);
  if (!takePidFile(dir)) {
    log('another watchdog already watches this dir');
    return 0;
  }
  log('watching', { deadlineAt: readDeadline(dir) });
  for (;;) {
    const deadlineAt = readDeadline(dir);
    if (deadlineAt === null) {
      releasePidFile(dir);
      // An arm may have written a new deadline after our read and seen our pidfile: look once more before leaving.
      if (readDeadline(dir) !== null && takePidFile(dir)) continue;
      log('deadline disarmed: exiting');
      return 0;
    }
    if (vmPid(dir) === null) {
      releasePidFile(dir);
      log('QEMU is gone: exiting');
      return 0;
    }
    if (Date.now() >= deadlineAt) {
      const result = await thawPastDeadline(dir, deadlineAt);
      writeFileAtomic(files(dir).result, `${JSON.stringify({ ...result, deadlineAt })}\n`, 0o644);
      log(result.error ? 'thaw failed' : 'thawed', { ...result, deadlineAt });
      // Remove the deadline we acted on only: a re-arm with a later deadline meanwhile stays armed.
      if (readDeadline(dir) === deadlineAt) rmSync(files(dir).deadline, { force: true });
      continue;
    }
    await sleep(Math.min(POLL_MS, Math.max(1, deadlineAt - Date.now())));
  }
}

/** Connects (retrying while another client holds the socket), resyncs, thaws until the agent reports 'thawed'. */
async function thawPastDeadline(dir: string, deadlineAt: number): Promise<WatchdogResult> {
  const giveUpAt = Date.now() + GIVE_UP_MS;
  let lastError = 'no attempt made';
  let lastStatus: FsfreezeStatus | 'unknown' = 'unknown';
  for (let attempt = 1; ; attempt++) {
    if (vmPid(dir) === null) return { thawedAt: Date.now(), statusAfter: 'unknown', error: `QEMU exited before the thaw (${lastError})` };
    if (readDeadline(dir) === null) return { thawedAt: Date.now(), statusAfter: lastStatus, error: `disarmed while the watchdog was retrying (${lastError})` };
    if (Date.now() > giveUpAt) return { thawedAt: Date.now(), statusAfter: lastStatus, error: `gave up after ${attempt - 1} attempts: ${lastError}` };
    let conn: QgaConnection | null = null;
    try {
      // connect() resyncs (0xFF + guest-sync-delimited), so stale replies of the last client are skipped.
      conn = await QgaConnection.connect(vmPaths(dir).qgaSocket, { timeoutMs: CONNECT_ATTEMPT_MS });
      for (let i = 0; i < THAW_TRIES_PER_CONNECTION; i++) {
        const n = await fsfreezeThaw(conn, { timeoutMs: THAW_TIMEOUT_MS });
        lastStatus = await fsfreezeStatus(conn, { timeoutMs: THAW_TIMEOUT_MS });
        log('thaw attempt', { attempt, thawed: n, status: lastStatus, lateByMs: Date.now() - deadlineAt });
        if (lastStatus === 'thawed') return { thawedAt: Date.now(), statusAfter: lastStatus };
      }
      lastError = 'the agent still reports frozen after thawing';
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      log('thaw attempt failed', { attempt, error: lastError });
    } finally {
      await conn?.close().catch(() => undefined);
    }
    await sleep(200);
  }
}
