// Supervision of one pool's qemu-storage-daemon (QSD 7.2).
//
// QSD runs --daemonize'd on purpose: it outlives the Node process that
// started it, so guests keep their disks while Bulwark restarts. A restarted
// process ATTACHES to the running daemon (pidfile + /proc identity check +
// QMP) instead of starting a second one; QSD's own pidfile lock backs this up.
//
// Measured on QSD 7.2 (see /work/shared/notes/qemu-on-this-machine.md):
// - --daemonize chdirs to /, so every path handed to QSD is absolute.
// - Only ONE --nbd-server per process ("NBD server already running"), so a
//   unix socket and a TCP/TLS listener cannot coexist in one daemon.
// - Clean exit (quit/SIGTERM) removes the pidfile and QMP socket but leaves
//   the NBD socket; a restart unlinks and re-binds stale sockets itself.
// - A killed daemon can linger as a zombie of PID 1 for seconds, so
//   kill(pid, 0) is not a liveness test; /proc/PID/stat state is.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { quit } from '../qmp/commands.js';
import { QmpConnection, type QmpClosedError } from '../qmp/connection.js';
import { isPidAlive, readCmdline, runDaemonizingParent } from '../daemon-process.js';

/**
 * With cache=none QSD allocates an aligned bounce buffer per NBD request; at
 * glibc's default thresholds a 1 MiB one is mmapped and unmapped every time,
 * so each MiB served cost ~256 page faults and page zeroing in QSD (seen in
 * `perf` of a full backup). Keeping such buffers in the heap, and the heap
 * untrimmed, lets them be reused: QSD's memory stays at its peak of buffers
 * in flight (tens of MiB).
 */
const QSD_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(256 * 1024 * 1024) };

export interface QsdNbdTcp {
  host: string;
  port: number;
  /** Directory holding keys.psk (see writePskKeys); only the path reaches QSD's argv. */
  pskDir: string;
}

export interface QsdDaemonOptions {
  /** Absolute paths; their directories are created (0700) if missing. */
  pidFile: string;
  qmpSocket: string;
  /** Plain NBD on a unix socket, for local consumers. */
  nbdSocket?: string;
  /** NBD over TCP with TLS-PSK. QSD 7.2 cannot serve this AND nbdSocket (one NBD server per process). */
  nbdTcp?: QsdNbdTcp;
  /** Default 'qemu-storage-daemon' (looked up in PATH). */
  binary?: string;
  /** Default timeout for QMP commands. Default 30 s. */
  qmpTimeoutMs?: number;
  /** Budget for the daemon to start and answer QMP. Default 30 s. */
  startTimeoutMs?: number;
}

export interface QsdExitInfo {
  pid: number;
  /** True when stop() caused the exit. */
  expected: boolean;
}

export class QsdStartError extends Error {
  constructor(message: string, readonly stderr: string) {
    super(stderr ? `${message}: ${stderr}` : message);
    this.name = 'QsdStartError';
  }
}

/** A live daemon already owns the pidfile (start() refuses to run a second). */
export class QsdAlreadyRunningError extends Error {
  constructor(readonly pid: number | null, pidFile: string) {
    super(`qemu-storage-daemon ${pid ?? '(unknown pid)'} already runs with pidfile ${pidFile}`);
    this.name = 'QsdAlreadyRunningError';
  }
}

const MAX_SUN_PATH = 107;
const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_QMP_TIMEOUT_MS = 30_000;
const DEAD_POLL_MS = 100;
/** After this long with QMP gone but the process alive, keep polling without holding the event loop open. */
const LOST_QMP_GRACE_MS = 10_000;

/** QEMU option syntax (QemuOpts and keyval): a literal comma is written ",,". */
const optEscape = (v: string): string => v.replace(/,/g, ',,');

function requireAbsolute(what: string, p: string, socket = false): void {
  if (!isAbsolute(p)) throw new Error(`${what} must be an absolute path (QSD chdirs to / when daemonized): ${p}`);
  if (socket && Buffer.byteLength(p) > MAX_SUN_PATH) throw new Error(`${what} is longer than a unix socket path may be (${MAX_SUN_PATH} bytes): ${p}`);
}

export { isPidAlive };

/** True if pid is a live qemu-storage-daemon started with exactly this pidfile (guards against pid reuse). */
export function isOurQsd(pid: number, pidFile: string, binary = 'qemu-storage-daemon'): boolean {
  if (!isPidAlive(pid)) return false;
  const argv = readCmdline(pid);
  if (!argv || argv.length === 0) return false;
  if (basename(argv[0] ?? '') !== basename(binary)) return false;
  const i = argv.indexOf('--pidfile');
  return i >= 0 && argv[i + 1] === pidFile;
}

function readPid(pidFile: string): number | null {
  try {
    const n = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitDead(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isPidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/**
 * Writes <dir>/keys.psk ("identity:hexkey", mode 0600) for a tls-creds-psk
 * object. Synchronous so callers can treat it as a plain file operation.
 * The key never appears in argv or logs: QSD is only given the directory.
 */
export function writePskKeys(dir: string, identity: string, hexKey: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(identity)) throw new Error('PSK identity must be 1-64 chars of [A-Za-z0-9._-]');
  if (!/^(?:[0-9a-fA-F]{2}){16,}$/.test(hexKey)) throw new Error('PSK key must be hex, at least 16 bytes');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'keys.psk');
  const tmp = join(dir, `.keys.psk.${process.pid}.tmp`);
  writeFileSync(tmp, `${identity}:${hexKey.toLowerCase()}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // in case the file pre-existed with a wider mode
  renameSync(tmp, file);
  return file;
}

export function buildQsdArgs(opts: QsdDaemonOptions): string[] {
  const args = ['--daemonize', '--pidfile', opts.pidFile];
  args.push('--chardev', `socket,id=qmp0,path=${optEscape(opts.qmpSocket)},server=on,wait=off`, '--monitor', 'chardev=qmp0');
  if (opts.nbdSocket && opts.nbdTcp) {
    throw new Error('qemu-storage-daemon 7.2 runs a single NBD server: configure nbdSocket or nbdTcp, not both');
  }
  if (opts.nbdSocket) args.push('--nbd-server', `addr.type=unix,addr.path=${optEscape(opts.nbdSocket)}`);
  if (opts.nbdTcp) {
    const t = opts.nbdTcp;
    args.push('--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${optEscape(t.pskDir)}`);
    args.push('--nbd-server', `addr.type=inet,addr.host=${optEscape(t.host)},addr.port=${t.port},tls-creds=tls0`);
  }
  return args;
}

function validate(opts: QsdDaemonOptions): void {
  requireAbsolute('pidFile', opts.pidFile);
  requireAbsolute('qmpSocket', opts.qmpSocket, true);
  if (opts.nbdSocket) requireAbsolute('nbdSocket', opts.nbdSocket, true);
  if (opts.nbdTcp) requireAbsolute('nbdTcp.pskDir', opts.nbdTcp.pskDir);
  buildQsdArgs(opts);
}

export class QsdDaemon {
  private exitCbs = new Set<(info: QsdExitInfo) => void>();
  private exited: QsdExitInfo | null = null;
  private stopping = false;
  private watchTimer: NodeJS.Timeout | null = null;

  private constructor(
    readonly opts: QsdDaemonOptions,
    readonly pid: number,
    readonly qmp: QmpConnection,
  ) {
    qmp.on('closed', (err: QmpClosedError) => {
      // Our own close() (detach, or a caller giving up the daemon) is not a death.
      if (err.reason !== 'client' || this.stopping) this.watchForDeath();
    });
  }

  /** Starts a new daemon; refuses if one already owns the pidfile. */
  static async start(opts: QsdDaemonOptions): Promise<QsdDaemon> {
    validate(opts);
    const binary = opts.binary ?? 'qemu-storage-daemon';
    const old = readPid(opts.pidFile);
    if (old !== null && isOurQsd(old, opts.pidFile, binary)) throw new QsdAlreadyRunningError(old, opts.pidFile);
    const dirs = [opts.pidFile, opts.qmpSocket, ...(opts.nbdSocket ? [opts.nbdSocket] : [])].map((p) => dirname(p));
    for (const d of new Set(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });

    const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const stderr = await startDaemon(binary, buildQsdArgs(opts), startTimeoutMs, opts.pidFile);
    const pid = readPid(opts.pidFile);
    if (pid === null || !isPidAlive(pid)) throw new QsdStartError('qemu-storage-daemon exited 0 but left no live pid in its pidfile', stderr);
    try {
      const qmp = await QmpConnection.connect(opts.qmpSocket, { timeoutMs: startTimeoutMs, commandTimeoutMs: opts.qmpTimeoutMs ?? DEFAULT_QMP_TIMEOUT_MS });
      return new QsdDaemon(opts, pid, qmp);
    } catch (e) {
      // We started it and cannot talk to it: do not leave an orphan holding the pool's images.
      if (isOurQsd(pid, opts.pidFile, binary)) process.kill(pid, 'SIGKILL');
      throw e;
    }
  }

  /**
   * Attaches to a running daemon for this pidfile. Returns null when none
   * runs. Throws when one runs but its QMP monitor does not answer (for
   * example another process still holds the single monitor connection).
   */
  static async attach(opts: QsdDaemonOptions): Promise<QsdDaemon | null> {
    validate(opts);
    const pid = readPid(opts.pidFile);
    if (pid === null || !isOurQsd(pid, opts.pidFile, opts.binary)) return null;
    const qmp = await QmpConnection.connect(opts.qmpSocket, {
      timeoutMs: opts.startTimeoutMs ?? 10_000,
      commandTimeoutMs: opts.qmpTimeoutMs ?? DEFAULT_QMP_TIMEOUT_MS,
    });
    return new QsdDaemon(opts, pid, qmp);
  }

  static async attachOrStart(opts: QsdDaemonOptions): Promise<{ daemon: QsdDaemon; attached: boolean }> {
    const existing = await QsdDaemon.attach(opts);
    if (existing) return { daemon: existing, attached: true };
    try {
      return { daemon: await QsdDaemon.start(opts), attached: false };
    } catch (e) {
      // Lost a start race with another process: its daemon is the one to use.
      if (!(e instanceof QsdAlreadyRunningError)) throw e;
      const winner = await QsdDaemon.attach(opts);
      if (!winner) throw e;
      return { daemon: winner, attached: true };
    }
  }

  /** True until the process is known to be gone. */
  get running(): boolean {
    return this.exited === null && isPidAlive(this.pid);
  }

  /** Called once when the daemon dies (QMP closed and pid gone). Returns an unsubscribe function. */
  onExit(cb: (info: QsdExitInfo) => void): () => void {
    if (this.exited) {
      const info = this.exited;
      queueMicrotask(() => cb(info));
      return () => undefined;
    }
    this.exitCbs.add(cb);
    return () => this.exitCbs.delete(cb);
  }

  /** Drops our QMP connection and leaves the daemon running (what a restart of Node looks like to QSD). */
  async detach(): Promise<void> {
    this.exitCbs.clear();
    await this.qmp.close();
  }

  /** quit over QMP, wait for exit, SIGKILL after timeoutMs. Idempotent. */
  async stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.stopping = true;
    if (!this.qmp.isClosed) await quit(this.qmp, { timeoutMs: Math.min(timeoutMs, 5000) }).catch(() => undefined);
    if (!(await waitDead(this.pid, timeoutMs))) {
      if (isOurQsd(this.pid, this.opts.pidFile, this.opts.binary)) process.kill(this.pid, 'SIGKILL');
      if (!(await waitDead(this.pid, 5000))) throw new Error(`qemu-storage-daemon ${this.pid} survived SIGKILL`);
    }
    await this.qmp.close();
    this.cleanupFiles();
    this.fireExit();
  }

  private watchForDeath(): void {
    if (this.watchTimer || this.exited) return;
    const since = Date.now();
    const tick = (): void => {
      this.watchTimer = null;
      if (!isPidAlive(this.pid)) {
        this.cleanupFiles();
        this.fireExit();
        return;
      }
      this.watchTimer = setTimeout(tick, DEAD_POLL_MS);
      // QMP is gone but the process lingers (e.g. wedged): keep watching without pinning the event loop.
      if (Date.now() - since > LOST_QMP_GRACE_MS) this.watchTimer.unref();
    };
    tick();
  }

  private fireExit(): void {
    if (this.exited) return;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = null;
    this.exited = { pid: this.pid, expected: this.stopping };
    const info = this.exited;
    for (const cb of this.exitCbs) {
      try {
        cb(info);
      } catch {
        // A failing listener must not stop the others from hearing about the exit.
      }
    }
    this.exitCbs.clear();
  }

  /** After death only: files a killed daemon leaves behind (a clean exit removes the first two itself). */
  private cleanupFiles(): void {
    if (readPid(this.opts.pidFile) === this.pid) rmSync(this.opts.pidFile, { force: true });
    rmSync(this.opts.qmpSocket, { force: true });
    if (this.opts.nbdSocket) rmSync(this.opts.nbdSocket, { force: true });
  }
}

/** Runs QSD with --daemonize; resolves with its stderr when it started. */
async function startDaemon(binary: string, args: string[], timeoutMs: number, pidFile: string): Promise<string> {
  const out = await runDaemonizingParent(binary, args, timeoutMs, { env: QSD_MALLOC_ENV });
  switch (out.kind) {
    case 'started':
      return out.stderr;
    case 'timeout':
      throw new QsdStartError(`qemu-storage-daemon did not finish starting within ${timeoutMs} ms`, out.stderr);
    case 'spawn-error':
      throw new QsdStartError(`cannot run ${binary}: ${out.message}`, '');
    case 'failed':
      if (/lock pid ?file/i.test(out.stderr)) throw new QsdAlreadyRunningError(readPid(pidFile), pidFile);
      throw new QsdStartError(`qemu-storage-daemon failed to start (exit ${out.exit})`, out.stderr);
  }
}
