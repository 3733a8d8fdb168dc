// Waiting for a guest's agent to come up.
import { ping } from '../qga/commands.js';
import { QgaConnection } from '../qga/connection.js';
import { sleep } from './proc.js';

/** One connect+ping attempt at most this long, so a wedged connection is replaced by a fresh one. */
const ATTEMPT_MS = 5_000;
const RETRY_PAUSE_MS = 100;

/**
 * Resolves with the milliseconds waited once the agent answers guest-ping.
 * Connects per attempt and closes after, because the agent socket serves
 * one client at a time: holding it would lock out the next user.
 */
export async function waitForAgent(qgaSocket: string, timeoutMs: number, opts: { signal?: AbortSignal } = {}): Promise<number> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const why = lastError instanceof Error ? lastError.message : 'no attempt finished';
      throw new Error(`guest agent on ${qgaSocket} did not answer guest-ping within ${timeoutMs} ms (${why})`, { cause: lastError });
    }
    const budget = Math.min(remaining, ATTEMPT_MS);
    let conn: QgaConnection | null = null;
    try {
      conn = await QgaConnection.connect(qgaSocket, { timeoutMs: budget, ...(opts.signal ? { signal: opts.signal } : {}) });
      await ping(conn, { timeoutMs: Math.max(1, Math.min(deadline - Date.now(), ATTEMPT_MS)), ...(opts.signal ? { signal: opts.signal } : {}) });
      return Date.now() - started;
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      lastError = e;
      await sleep(Math.min(RETRY_PAUSE_MS, Math.max(0, deadline - Date.now())));
    } finally {
      await conn?.close();
    }
  }
}
