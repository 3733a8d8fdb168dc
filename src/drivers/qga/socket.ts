// Opening the agent chardev socket, which may not exist yet while QEMU starts.
import { createConnection, type Socket } from 'node:net';
import { QgaTimeoutError } from './errors.js';

const CONNECT_RETRY_MS = 50;

export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(String(r ?? 'aborted'));
}

/** Connects to the unix socket, retrying while it does not exist yet or refuses (QEMU starting). */
export async function openSocket(path: string, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Socket> {
  for (;;) {
    if (signal?.aborted) throw abortReason(signal);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = createConnection({ path });
        const onAbort = (): void => {
          socket.destroy();
          reject(abortReason(signal as AbortSignal));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('connect', () => {
          signal?.removeEventListener('abort', onAbort);
          socket.removeListener('error', onError);
          // Keeps an error before the connection's own handlers attach from crashing the process; 'close' follows it.
          socket.on('error', () => undefined);
          resolve(socket);
        });
        const onError = (err: Error): void => {
          signal?.removeEventListener('abort', onAbort);
          socket.destroy();
          reject(err);
        };
        socket.once('error', onError);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const retryable = code === 'ENOENT' || code === 'ECONNREFUSED';
      if (!retryable) throw e;
      if (deadline - Date.now() <= CONNECT_RETRY_MS) throw new QgaTimeoutError(`connect to ${path} (${code})`, timeoutMs);
      await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
    }
  }
}
