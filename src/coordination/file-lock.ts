// File backend of the coordination port: an exclusive, single-host lock held by
// a live process. The lock file is created with O_EXCL and names its holder's
// pid; a lock whose holder is dead (kill -9) is stale and is broken.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

export class LockHeldError extends Error {}

export interface HeldLock {
  readonly path: string;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireFileLock(path: string): HeldLock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return {
        path,
        release() {
          try {
            if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isFinite(holder) && holder !== process.pid && alive(holder)) {
        throw new LockHeldError(`${path} is held by live process ${holder}`);
      }
      // Stale: its holder died without releasing it.
      unlinkSync(path);
    }
  }
  throw new LockHeldError(`could not acquire ${path}`);
}
