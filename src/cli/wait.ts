// --wait: poll a resource until its status is final. Cinder's calls are
// asynchronous (202 then a status walk), so scripts need a way to block.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiFailure, CliError, asRecordOrNull, type Resource } from './client.js';

/** `ready`: until usable (create, extend, revert); `gone`: until a GET answers 404. */
export type WaitGoal = 'ready' | 'gone';

/** 'ok', 'failed', or null while the resource is still moving. */
export function settle(status: string, goal: WaitGoal): 'ok' | 'failed' | null {
  // error, error_deleting, error_extending, error_restoring... are all terminal.
  if (status.startsWith('error')) return 'failed';
  if (goal === 'gone') return status === 'deleted' ? 'ok' : null;
  return status === 'available' || status === 'in-use' ? 'ok' : null;
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Where the progress line goes; null when stderr is not a terminal. */
  readonly progress: NodeJS.WriteStream | null;
}

export const DEFAULT_WAIT_TIMEOUT_S = 1800;

/**
 * Polls `fetchOne` (null meaning 404) and returns the final body, or null for
 * a resource that is gone. Throws when it ends in error or time runs out.
 */
export async function waitFor(label: string, fetchOne: () => Promise<Resource | null>, goal: WaitGoal, opts: WaitOptions): Promise<Resource | null> {
  const started = Date.now();
  let delay = 500;
  let shown = false;
  const show = (text: string) => {
    if (!opts.progress || (!shown && text === '')) return;
    shown = true;
    opts.progress.write(`\r\x1b[K${text}`);
  };
  try {
    for (;;) {
      const body = await fetchOne();
      if (body === null) {
        if (goal === 'gone') return null;
        throw new CliError(`${label} disappeared while waiting for it`);
      }
      const status = typeof body['status'] === 'string' ? body['status'] : 'unknown';
      const state = settle(status, goal);
      if (state === 'ok') return goal === 'gone' ? null : body;
      if (state === 'failed') throw new CliError(`${label} went to status ${status}`);
      const elapsed = Date.now() - started;
      if (elapsed > opts.timeoutMs) throw new CliError(`${label} still ${status} after ${Math.round(elapsed / 1000)}s; gave up waiting`);
      show(`waiting for ${label}: ${status} (${Math.round(elapsed / 1000)}s)`);
      await sleep(delay);
      // Short first polls catch quick thin-provisioned creates; later ones stay light.
      delay = Math.min(Math.round(delay * 1.5), 3000);
    }
  } finally {
    show('');
  }
}

/** A fetcher for waitFor over GET <path> → body[key], 404 meaning gone. */
export function getOrNull(get: () => Promise<unknown>, key: string): () => Promise<Resource | null> {
  return async () => {
    try {
      const inner = asRecordOrNull(asRecordOrNull(await get())?.[key]);
      if (!inner) throw new CliError(`the answer has no "${key}" object`);
      return inner;
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404) return null;
      throw err;
    }
  };
}
