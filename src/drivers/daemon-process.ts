// What the QSD and QEMU drivers share about their daemons: both run with
// -daemonize (the process we spawn exits once the daemon is set up, 0 on
// success, QEMU's error on stderr otherwise), both outlive us, and a pid read
// from a file is only trusted once /proc confirms what the process is.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Alive = /proc entry exists and is not a zombie. */
export function isPidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function readCmdline(pid: number): string[] | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv[argv.length - 1] === '') argv.pop(); // cmdline is NUL-terminated
    return argv;
  } catch {
    return null;
  }
}

export type DaemonizeOutcome =
  | { kind: 'started'; stderr: string }
  | { kind: 'failed'; exit: string; stderr: string }
  | { kind: 'timeout'; stderr: string }
  | { kind: 'spawn-error'; message: string };

/** Runs the daemonizing parent and says how it ended; the callers turn that into their own errors. */
export function runDaemonizingParent(binary: string, args: string[], timeoutMs: number, opts: { cwd?: string; env?: Readonly<Record<string, string>> } = {}): Promise<DaemonizeOutcome> {
  return new Promise((resolve) => {
    // Minimal environment: nothing of ours (database URLs, tokens) leaks into the daemon.
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...opts.env };
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...(opts.cwd ? { cwd: opts.cwd } : {}), env });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 16_384) stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ kind: 'timeout', stderr: stderr.trim() });
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ kind: 'spawn-error', message: err.message });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // The daemon closed its copy of stderr before the parent exited; give the pipe a moment to drain.
      setTimeout(() => resolve(code === 0 ? { kind: 'started', stderr: stderr.trim() } : { kind: 'failed', exit: String(code ?? signal), stderr: stderr.trim() }), 20);
    });
    child.unref();
  });
}
