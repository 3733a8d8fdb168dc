// One QMP monitor connection over a unix socket.
//
// Facts that shape this module (QEMU 7.2):
// - A monitor chardev serves ONE client at a time; a second client is accepted
//   by the kernel but gets no greeting until the first goes away, so the
//   greeting wait has its own timeout.
// - Events triggered by a command (JOB_STATUS_CHANGE, BLOCK_EXPORT_DELETED)
//   are often written BEFORE the command's reply. Anyone waiting for such an
//   event must subscribe before sending the command (see waitForEvent).
// - A command that timed out or was aborted may still take effect in QEMU;
//   its late reply is dropped. Callers must re-read state before retrying.
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import {
  QmpFramer,
  type JsonValue,
  type QmpEventMessage,
  type QmpFrame,
  type QmpGreetingMessage,
} from './framer.js';

/** QEMU answered a command with {"error": ...}. */
export class QmpError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
    readonly command: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

export class QmpTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`QMP ${what} timed out after ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
  }
}

/** Who ended the connection: the peer (QEMU exited or dropped us), this side, or a socket error. */
export type QmpCloseReason = 'peer' | 'client' | 'error';

/** The connection went away; every pending command rejects with this. */
export class QmpClosedError extends Error {
  readonly reason: QmpCloseReason;
  readonly command: string | undefined;

  constructor(message: string, opts: { reason: QmpCloseReason; command?: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'QmpClosedError';
    this.reason = opts.reason;
    this.command = opts.command;
  }
}

export interface QmpConnectOptions {
  /** Budget for connect + greeting + qmp_capabilities. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Default per-command timeout when execute() is given none. Default 30 s. */
  commandTimeoutMs?: number;
  maxLineBytes?: number;
}

export interface QmpExecuteOptions {
  signal?: AbortSignal;
  /** 0 disables the timeout. */
  timeoutMs?: number;
}

export interface QmpWaitOptions {
  signal?: AbortSignal;
  /** Omitted or 0: wait without a time limit (until abort or close). */
  timeoutMs?: number;
}

export interface QmpConnectionEvents {
  event: [QmpEventMessage];
  closed: [QmpClosedError];
  /** Unparseable or uncorrelated input; the connection carries on. */
  protocolError: [Error];
}

type Listener<K extends keyof QmpConnectionEvents> = (...args: QmpConnectionEvents[K]) => void;

interface Pending {
  command: string;
  resolve: (value: JsonValue) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(String(r ?? 'aborted'));
}

export class QmpConnection {
  private readonly emitter = new EventEmitter();
  private readonly framer: QmpFramer;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: QmpClosedError | null = null;
  private greetingWaiter: ((g: QmpGreetingMessage | Error) => void) | null = null;
  private greetingValue: QmpGreetingMessage | null = null;

  private constructor(
    readonly path: string,
    private readonly socket: Socket,
    private readonly commandTimeoutMs: number,
    maxLineBytes: number | undefined,
  ) {
    this.framer = new QmpFramer(maxLineBytes === undefined ? {} : { maxLineBytes });
    // Events are a notification channel; a consumer that never listens must not leak warnings.
    this.emitter.setMaxListeners(0);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.markClosed(new QmpClosedError(`QMP socket error: ${err.message}`, { reason: 'error', cause: err })));
    socket.on('close', () => this.markClosed(new QmpClosedError('QMP connection closed by peer', { reason: 'peer' })));
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpConnection> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const socket = createConnection({ path });
    const conn = new QmpConnection(path, socket, opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, opts.maxLineBytes);
    const deadline = Date.now() + timeoutMs;
    try {
      await conn.handshake(timeoutMs, opts.signal);
      const left = Math.max(1, deadline - Date.now());
      await conn.execute('qmp_capabilities', undefined, { timeoutMs: left, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (e) {
      conn.destroy(new QmpClosedError('QMP connect failed', { reason: 'client', cause: e }));
      throw e;
    }
    return conn;
  }

  get greeting(): QmpGreetingMessage {
    if (!this.greetingValue) throw new Error('QMP greeting not received yet');
    return this.greetingValue;
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  on<K extends keyof QmpConnectionEvents>(name: K, listener: Listener<K>): this {
    this.emitter.on(name, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof QmpConnectionEvents>(name: K, listener: Listener<K>): this {
    this.emitter.off(name, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof QmpConnectionEvents>(name: K, listener: Listener<K>): this {
    this.emitter.once(name, listener as (...args: unknown[]) => void);
    return this;
  }

  /**
   * Sends a command and resolves with its "return" value. The result type is
   * the caller's claim about QEMU's schema (see commands.ts for checked wrappers).
   */
  execute<T = JsonValue>(command: string, args?: object, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.closedError) {
      return Promise.reject(new QmpClosedError(`QMP connection closed; cannot run ${command}`, { reason: this.closedError.reason, command, cause: this.closedError }));
    }
    if (opts.signal?.aborted) return Promise.reject(abortReason(opts.signal));
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    const line = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });

    return new Promise<JsonValue>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        this.pending.delete(id);
        cleanup();
        reject(abortReason(opts.signal as AbortSignal));
      };
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.pending.delete(id);
          cleanup();
          reject(new QmpTimeoutError(command, timeoutMs));
        }, timeoutMs);
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { command, resolve, reject, cleanup });
      this.socket.write(`${line}\n`);
    }) as Promise<T>;
  }

  /**
   * Resolves with the first event matching the predicate. The subscription
   * starts synchronously, so call this BEFORE executing the command that
   * triggers the event, and abort it if that command fails.
   */
  waitForEvent(predicate: (ev: QmpEventMessage) => boolean, opts: QmpWaitOptions = {}): Promise<QmpEventMessage> {
    if (this.closedError) return Promise.reject(new QmpClosedError('QMP connection closed; cannot wait for event', { reason: this.closedError.reason, cause: this.closedError }));
    if (opts.signal?.aborted) return Promise.reject(abortReason(opts.signal));
    return new Promise<QmpEventMessage>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        if (timer) clearTimeout(timer);
        this.off('event', onEvent);
        this.off('closed', onClosed);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const onEvent = (ev: QmpEventMessage): void => {
        let hit: boolean;
        try {
          hit = predicate(ev);
        } catch (e) {
          finish();
          reject(e instanceof Error ? e : new Error(String(e)));
          return;
        }
        if (hit) {
          finish();
          resolve(ev);
        }
      };
      const onClosed = (err: QmpClosedError): void => {
        finish();
        reject(err);
      };
      const onAbort = (): void => {
        finish();
        reject(abortReason(opts.signal as AbortSignal));
      };
      this.on('event', onEvent);
      this.on('closed', onClosed);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.timeoutMs && opts.timeoutMs > 0) {
        const ms = opts.timeoutMs;
        timer = setTimeout(() => {
          finish();
          reject(new QmpTimeoutError('wait for event', ms));
        }, ms);
      }
    });
  }

  /** Closes our side; pending commands reject with QmpClosedError. QEMU keeps running. */
  async close(): Promise<void> {
    if (this.closedError) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.markClosed(new QmpClosedError('QMP connection closed by client', { reason: 'client' }));
      this.socket.end();
      // end() waits for the peer's FIN; do not hang on a wedged peer.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private destroy(err: QmpClosedError): void {
    this.markClosed(err);
    this.socket.destroy();
  }

  private async handshake(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const greeting = await new Promise<QmpGreetingMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.greetingWaiter = null;
        reject(new QmpTimeoutError(`greeting on ${this.path} (another client may hold the monitor)`, timeoutMs));
      }, timeoutMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        this.greetingWaiter = null;
        reject(abortReason(signal as AbortSignal));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.greetingWaiter = (g) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.greetingWaiter = null;
        if (g instanceof Error) reject(g);
        else resolve(g);
      };
    });
    this.greetingValue = greeting;
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.framer.feed(chunk)) this.dispatch(frame);
  }

  private dispatch(frame: QmpFrame): void {
    switch (frame.kind) {
      case 'greeting':
        if (this.greetingWaiter) this.greetingWaiter(frame);
        else this.protocolError(new Error('unexpected second QMP greeting'));
        return;
      case 'event':
        this.emitter.emit('event', frame);
        return;
      case 'return':
      case 'error': {
        const p = typeof frame.id === 'number' ? this.pending.get(frame.id) : undefined;
        if (!p || typeof frame.id !== 'number') {
          // Late reply to a timed-out/aborted command, or an error QEMU could not attribute.
          const what = frame.kind === 'error' ? `${frame.error.class}: ${frame.error.desc}` : 'return';
          this.protocolError(new Error(`uncorrelated QMP reply (id ${JSON.stringify(frame.id ?? null)}): ${what}`));
          return;
        }
        this.pending.delete(frame.id);
        p.cleanup();
        if (frame.kind === 'return') p.resolve(frame.return);
        else p.reject(new QmpError(frame.error.class, frame.error.desc, p.command));
        return;
      }
      case 'invalid':
        this.protocolError(new Error(`invalid QMP input: ${frame.reason}: ${frame.line}`));
        return;
    }
  }

  private protocolError(err: Error): void {
    if (this.emitter.listenerCount('protocolError') > 0) this.emitter.emit('protocolError', err);
  }

  private markClosed(err: QmpClosedError): void {
    if (this.closedError) return;
    this.closedError = err;
    if (this.greetingWaiter) this.greetingWaiter(err);
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.cleanup();
      p.reject(new QmpClosedError(`${err.message} while running ${p.command}`, { reason: err.reason, command: p.command, cause: err }));
    }
    this.emitter.emit('closed', err);
  }
}
