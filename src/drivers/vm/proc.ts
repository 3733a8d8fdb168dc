// Process identity helpers shared by the VM driver and the freeze watchdog.
// Both kinds of process outlive the Node process that started them, so a pid
// read from a file is only trusted after /proc confirms it is still the
// process that file describes (pids get reused).
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isPidAlive, readCmdline } from '../daemon-process.js';

export { isPidAlive, readCmdline };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


export function readPid(pidFile: string): number | null {
  try {
    const n = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

/** Polls /proc (a killed daemon lingers as a zombie of PID 1, so kill(pid, 0) would lie). */
export async function waitDead(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isPidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/** Write-then-rename, so a reader never sees half a file (the watchdog polls these). */
export function writeFileAtomic(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
