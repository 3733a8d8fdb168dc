// Launching QEMU for an instance and re-attaching to it later.
//
// QEMU runs -daemonize'd (double fork, own session, stdio on /dev/null, the
// console in DIR/console.log): it outlives the compute process, so a crash or
// restart of Bulwark never takes guests down. The daemonizing parent exits
// only once the machine is set up (sockets bound, pidfile written), with 0 on
// success and QEMU's error on stderr otherwise. A restarted compute process
// finds the VM again through DIR/qemu.pid, checked against /proc (pid reuse),
// exactly as src/drivers/qsd/daemon.ts does for the storage daemon.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { QmpClosedError, QmpConnection } from '../qmp/connection.js';
import { quit } from '../qmp/commands.js';
import { writePskKeys } from '../qsd/daemon.js';
import { isPidAlive, readCmdline, readPid, waitDead, writeFileAtomic } from './proc.js';
import { buildQemuArgs, pskDirOf, redactSpec, validateSpec, vmPaths, type VmPaths, type VmSpec } from './spec.js';
import { runDaemonizingParent } from '../daemon-process.js';

export interface LaunchOptions {
  qemuBinary: string;
  /** Budget for QEMU to set up the machine and answer QMP. Default 30 s. */
  startTimeoutMs?: number;
}

export interface VmHandle {
  readonly pid: number;
  readonly dir: string;
  readonly qmpSocket: string;
  readonly qgaSocket: string;
  /**
   * QMP query-status .status ('running', 'paused', 'shutdown', ...), or
   * 'exited' (not a QMP state) once the QEMU process is gone.
   */
  runState(): Promise<string>;
  /** ACPI powerdown, then QMP quit, then SIGKILL; resolves once QEMU is gone. Idempotent. */
  powerOff(graceMs: number): Promise<void>;
  /** Drops the QMP connection only; the VM keeps running. */
  close(): Promise<void>;
}

export class VmStartError extends Error {
  constructor(message: string, readonly stderr: string) {
    super(stderr ? `${message}: ${stderr}` : message);
    this.name = 'VmStartError';
  }
}

export class VmAlreadyRunningError extends Error {
  constructor(readonly pid: number, dir: string) {
    super(`QEMU ${pid} already runs for ${dir}`);
    this.name = 'VmAlreadyRunningError';
  }
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const QMP_COMMAND_TIMEOUT_MS = 10_000;
const QUIT_WAIT_MS = 5_000;
const KILL_WAIT_MS = 5_000;

/** True if pid is a live QEMU started with DIR/qemu.pid as its pidfile (guards against pid reuse). */
export function isVmProcess(pid: number, dir: string): boolean {
  if (!isPidAlive(pid)) return false;
  const argv = readCmdline(pid);
  if (!argv) return false;
  const i = argv.indexOf('-pidfile');
  return i >= 0 && argv[i + 1] === vmPaths(dir).pidFile;
}

/** The pid of the live QEMU of this instance dir, or null. */
export function vmPid(dir: string): number | null {
  const pid = readPid(vmPaths(dir).pidFile);
  return pid !== null && isVmProcess(pid, dir) ? pid : null;
}

export async function launchVm(spec: VmSpec, opts: LaunchOptions): Promise<VmHandle> {
  validateSpec(spec);
  const paths = vmPaths(spec.dir);
  mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
  chmodSync(spec.dir, 0o700); // it may have existed with a wider mode; it will hold PSKs
  const running = vmPid(spec.dir);
  if (running !== null) throw new VmAlreadyRunningError(running, spec.dir);
  // Leftovers of a previous run of this instance (QEMU re-binds sockets itself, the pidfile it rewrites).
  for (const f of [paths.pidFile, paths.qmpSocket, paths.qgaSocket]) rmSync(f, { force: true });

  rmSync(`${spec.dir}/tls`, { recursive: true, force: true });
  for (const [i, d] of spec.disks.entries()) {
    if (d.source.transport === 'tcp') writePskKeys(pskDirOf(spec.dir, i), d.source.pskIdentity, d.source.pskKey);
  }
  writeFileAtomic(paths.specFile, `${JSON.stringify({ ...(redactSpec(spec) as object), qemuBinary: opts.qemuBinary, launchedAt: new Date().toISOString() }, null, 2)}\n`);

  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const started = Date.now();
  try {
    await startQemu(opts.qemuBinary, buildQemuArgs(spec), startTimeoutMs);
  } catch (e) {
    killIfOurs(spec.dir);
    // Nothing half-made: the keys of a VM that never ran do not stay on disk.
    rmSync(`${spec.dir}/tls`, { recursive: true, force: true });
    throw e;
  }
  const pid = readPid(paths.pidFile);
  if (pid === null || !isPidAlive(pid)) throw new VmStartError('QEMU exited 0 but left no live pid in its pidfile', '');
  try {
    const qmp = await QmpConnection.connect(paths.qmpSocket, {
      timeoutMs: Math.max(1000, startTimeoutMs - (Date.now() - started)),
      commandTimeoutMs: QMP_COMMAND_TIMEOUT_MS,
    });
    return new Vm(paths, pid, qmp);
  } catch (e) {
    // We started it and cannot talk to it: do not leave an orphan VM holding volumes.
    killIfOurs(spec.dir);
    throw e;
  }
}

/**
 * Re-attaches to the running QEMU of an instance dir (after the compute
 * process restarted). null when none runs. Throws when it runs but QMP does
 * not answer (e.g. another process still holds the single monitor connection).
 */
export async function findVm(dir: string): Promise<VmHandle | null> {
  const paths = vmPaths(dir);
  const pid = vmPid(dir);
  if (pid === null) return null;
  const qmp = await QmpConnection.connect(paths.qmpSocket, { timeoutMs: 10_000, commandTimeoutMs: QMP_COMMAND_TIMEOUT_MS });
  return new Vm(paths, pid, qmp);
}

function killIfOurs(dir: string): void {
  const pid = vmPid(dir);
  if (pid !== null) process.kill(pid, 'SIGKILL');
}

class Vm implements VmHandle {
  private stopped: Promise<void> | null = null;

  constructor(
    private readonly paths: VmPaths,
    readonly pid: number,
    private qmp: QmpConnection,
  ) {}

  get dir(): string {
    return this.paths.dir;
  }
  get qmpSocket(): string {
    return this.paths.qmpSocket;
  }
  get qgaSocket(): string {
    return this.paths.qgaSocket;
  }

  private alive(): boolean {
    return isVmProcess(this.pid, this.paths.dir);
  }

  async runState(): Promise<string> {
    if (!this.alive()) return 'exited';
    try {
      const r = await this.qmp.execute<{ status?: unknown }>('query-status');
      if (typeof r?.status !== 'string') throw new Error(`unexpected query-status reply: ${JSON.stringify(r)}`);
      return r.status;
    } catch (e) {
      if (!(e instanceof QmpClosedError)) throw e;
      // QEMU exited under us, or the connection dropped while it runs on: reconnect once.
      if (!this.alive()) return 'exited';
      if (e.reason === 'client') throw new Error('this VM handle was closed', { cause: e });
      this.qmp = await QmpConnection.connect(this.paths.qmpSocket, { timeoutMs: 10_000, commandTimeoutMs: QMP_COMMAND_TIMEOUT_MS });
      const r = await this.qmp.execute<{ status?: unknown }>('query-status');
      if (typeof r?.status !== 'string') throw new Error(`unexpected query-status reply: ${JSON.stringify(r)}`);
      return r.status;
    }
  }

  powerOff(graceMs: number): Promise<void> {
    this.stopped ??= this.doPowerOff(graceMs).catch((e: unknown) => {
      this.stopped = null; // let a caller retry a failed stop
      throw e;
    });
    return this.stopped;
  }

  private async doPowerOff(graceMs: number): Promise<void> {
    // After close() (or a dropped connection) reconnect for a graceful stop; SIGKILL is the fallback.
    if (this.alive() && this.qmp.isClosed) {
      this.qmp = await QmpConnection.connect(this.paths.qmpSocket, { timeoutMs: 2000, commandTimeoutMs: QMP_COMMAND_TIMEOUT_MS }).catch(() => this.qmp);
    }
    if (this.alive() && !this.qmp.isClosed) {
      if (graceMs > 0) {
        // The guest may ignore ACPI (the tiny test guest has no acpid): the grace period bounds it.
        const asked = await this.qmp.execute('system_powerdown', undefined, { timeoutMs: 2000 }).then(
          () => true,
          () => false,
        );
        if (asked) await waitDead(this.pid, graceMs);
      }
      if (this.alive() && !this.qmp.isClosed) {
        await quit(this.qmp, { timeoutMs: 2000 }).catch(() => undefined);
        await waitDead(this.pid, QUIT_WAIT_MS);
      }
    }
    if (this.alive()) {
      process.kill(this.pid, 'SIGKILL');
      if (!(await waitDead(this.pid, KILL_WAIT_MS))) throw new Error(`QEMU ${this.pid} survived SIGKILL`);
    }
    await this.qmp.close();
    // A killed QEMU leaves its pidfile and sockets; only remove what is still ours.
    if (readPid(this.paths.pidFile) === this.pid) rmSync(this.paths.pidFile, { force: true });
    rmSync(this.paths.qmpSocket, { force: true });
    rmSync(this.paths.qgaSocket, { force: true });
  }

  async close(): Promise<void> {
    await this.qmp.close();
  }
}

/** Runs QEMU with -daemonize (from /, so relative paths mean nothing to it). */
async function startQemu(binary: string, args: string[], timeoutMs: number): Promise<void> {
  const out = await runDaemonizingParent(binary, args, timeoutMs, { cwd: '/' });
  if (out.kind === 'started') return;
  if (out.kind === 'timeout') throw new VmStartError(`QEMU did not finish starting within ${timeoutMs} ms`, out.stderr);
  if (out.kind === 'spawn-error') throw new VmStartError(`cannot run ${binary}: ${out.message}`, '');
  throw new VmStartError(`QEMU failed to start (exit ${out.exit})`, out.stderr);
}
