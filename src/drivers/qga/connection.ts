// One QEMU guest agent connection over the VM's agent chardev socket (QEMU is
// the server: -chardev socket,path=...,server=on,wait=off).
//
// Facts that shape this module (qemu-ga 7.2, measured):
// - The chardev serves ONE client at a time. A second client is accepted by
//   the kernel but hears nothing until the first goes away, so connect() has
//   a deadline, and its bytes reach the agent only then.
// - Bytes written while the agent is not running yet (the guest is booting)
//   are not lost: QEMU stops reading the socket until the guest opens the
//   port, then the agent answers everything queued, in order.
// - The agent keeps its parser state and unsent replies across clients, and
//   a reply can arrive after its command timed out. So every connection, and
//   every command after a timeout or abort, starts with a resync: the byte
//   0xFF (resets the agent's parser; answered with a parse error) then
//   guest-sync-delimited with a fresh random id. The agent handles requests
//   strictly in order, so once the reply with that id arrives everything sent
//   before it has been answered: the stream is clean.
// - With no client attached the agent polls its port every 100 ms, so the
//   first resync after the previous client left takes 1 to 100 ms.
// - Commands run strictly one at a time. qemu-ga 7.2 does echo a request's
//   "id" (sent here as a second check), but replies to unparseable input carry
//   none and older agents may not echo it, so order is what correlates.
// - A command that timed out or was aborted may still take effect in the
//   guest (a freeze in particular); callers must re-read state.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { QgaClosedError, QgaError, QgaProtocolError, QgaTimeoutError } from './errors.js';
import { QGA_DELIMITER, QgaFramer, type JsonValue, type QgaFrame, type QgaMessage } from './framer.js';
import { abortReason, openSocket } from './socket.js';

export { QgaClosedError, QgaError, QgaProtocolError, QgaTimeoutError, type QgaCloseReason } from './errors.js';

export interface QgaConnectOptions {
  /** Budget for connecting and the first resync (covers a booting guest). Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Default per-command timeout when execute() is given none. Default 30 s. */
  commandTimeoutMs?: number;
  /** How long one resync attempt waits before retrying with a fresh id (grows to 2 s). Default 300 ms. */
  syncAttemptMs?: number;
  maxLineBytes?: number;
}

export interface QgaExecuteOptions {
  signal?: AbortSignal;
  /** Counted from the call, so it includes waiting for earlier commands and any resync. 0: no limit. */
  timeoutMs?: number;
}

export interface QgaConnectionEvents {
  closed: [QgaClosedError];
  /** Input dropped outside a resync (stale or unsolicited); the next command resyncs first. */
  protocolError: [Error];
}

type Listener<K extends keyof QgaConnectionEvents> = (...args: QgaConnectionEvents[K]) => void;

/** The one consumer of incoming frames at a time: a resync or the running command. */
type Receiver = (frame: QgaFrame) => void;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_SYNC_ATTEMPT_MS = 300;
const MAX_SYNC_ATTEMPT_MS = 2_000;
/** randomInt's exclusive upper bound must stay below 2^48; ids also stay exact in a double. */
const SYNC_ID_LIMIT = 2 ** 47;

/** Milliseconds left before `deadline` (Infinity: no deadline). */
function left(deadline: number): number {
  return deadline === Infinity ? Infinity : deadline - Date.now();
}

export class QgaConnection {
  private readonly emitter = new EventEmitter();
  private readonly framer: QgaFramer;
  private closedError: QgaClosedError | null = null;
  private receiver: Receiver | null = null;
  /** Fails the running exchange when the connection goes away. */
  private closeWaiter: ((err: QgaClosedError) => void) | null = null;
  /** FIFO of callers waiting for their turn; the head runs. */
  private readonly turns: (() => void)[] = [];
  private busy = false;
  private dirty = true;
  private nextId = 1;
  private syncCount = 0;

  private constructor(
    readonly path: string,
    private readonly socket: Socket,
    private readonly commandTimeoutMs: number,
    private readonly syncAttemptMs: number,
    maxLineBytes: number | undefined,
  ) {
    this.framer = new QgaFramer(maxLineBytes === undefined ? {} : { maxLineBytes });
    this.emitter.setMaxListeners(0);
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.framer.feed(chunk)) this.dispatch(frame);
    });
    socket.on('error', (err) => this.markClosed(new QgaClosedError(`guest agent socket error: ${err.message}`, { reason: 'error', cause: err })));
    socket.on('close', () => this.markClosed(new QgaClosedError('guest agent connection closed by peer', { reason: 'peer' })));
  }

  /**
   * Connects (retrying while the socket does not exist yet or refuses) and
   * resynchronises; resolves once the agent has answered. On a booting guest
   * this waits for the agent to come up, within timeoutMs.
   */
  static async connect(path: string, opts: QgaConnectOptions = {}): Promise<QgaConnection> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    const socket = await openSocket(path, deadline, timeoutMs, opts.signal);
    const conn = new QgaConnection(path, socket, opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, opts.syncAttemptMs ?? DEFAULT_SYNC_ATTEMPT_MS, opts.maxLineBytes);
    try {
      await conn.resync({ timeoutMs: Math.max(1, left(deadline)), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (e) {
      conn.destroy(new QgaClosedError('guest agent connect failed', { reason: 'client', cause: e }));
      if (e instanceof QgaTimeoutError) throw new QgaTimeoutError(`connect to ${path} (agent not up, or another client holds the socket)`, timeoutMs);
      throw e;
    }
    return conn;
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /** True when the next command will resync first (after a timeout, abort or stray input). */
  get needsResync(): boolean {
    return this.dirty;
  }

  /** Completed resyncs, including the one connect() did. */
  get resyncs(): number {
    return this.syncCount;
  }

  on<K extends keyof QgaConnectionEvents>(name: K, listener: Listener<K>): this {
    this.emitter.on(name, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof QgaConnectionEvents>(name: K, listener: Listener<K>): this {
    this.emitter.off(name, listener as (...args: unknown[]) => void);
    return this;
  }

  /**
   * Runs one command once every earlier one has finished and resolves with
   * its "return" value. The result type is the caller's claim about the
   * agent's schema (see commands.ts for checked wrappers).
   */
  async execute<T = JsonValue>(command: string, args?: object, opts: QgaExecuteOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    const release = await this.takeTurn(command, deadline, timeoutMs, opts.signal);
    try {
      if (this.dirty) await this.syncOnce(deadline, timeoutMs, opts.signal, `${command} (resync before it)`);
      const id = this.nextId++;
      const line = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
      const reply = await this.exchange(Buffer.from(`${line}\n`), command, deadline, timeoutMs, opts.signal, (frame) => {
        if (frame.kind === 'delimiter') return 'skip';
        if (frame.kind === 'invalid') return new QgaProtocolError(`invalid agent reply to ${command}: ${frame.reason}: ${frame.line}`);
        if (frame.id !== undefined && frame.id !== id) {
          this.protocolError(new Error(`stale agent reply (id ${JSON.stringify(frame.id)}, expected ${id}) dropped`));
          return 'skip';
        }
        return 'take';
      });
      if (reply.kind === 'error') throw new QgaError(reply.error.class, reply.error.desc, command);
      return reply.return as T;
    } finally {
      release();
    }
  }

  /** Resynchronises now (connect() already did); waits for earlier commands first. */
  async resync(opts: QgaExecuteOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    const release = await this.takeTurn('resync', deadline, timeoutMs, opts.signal);
    try {
      await this.syncOnce(deadline, timeoutMs, opts.signal, 'resync');
    } finally {
      release();
    }
  }

  /** Closes our side; running and queued commands reject with QgaClosedError. The guest is untouched (a frozen guest stays frozen). */
  async close(): Promise<void> {
    if (this.closedError) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.markClosed(new QgaClosedError('guest agent connection closed by client', { reason: 'client' }));
      this.socket.end();
      // end() waits for the peer's FIN; do not hang on a wedged peer.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private destroy(err: QgaClosedError): void {
    this.markClosed(err);
    this.socket.destroy();
  }

  /** Sends 0xFF + guest-sync-delimited until the reply carrying the latest id arrives. */
  private async syncOnce(deadline: number, timeoutMs: number, signal: AbortSignal | undefined, what: string): Promise<void> {
    this.dirty = true;
    let attemptMs = this.syncAttemptMs;
    for (;;) {
      const remaining = left(deadline);
      if (remaining <= 0) throw new QgaTimeoutError(what, timeoutMs);
      const id = randomInt(1, SYNC_ID_LIMIT);
      const line = JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } });
      // The byte must go out as a Buffer: the string '\xff' would be UTF-8 encoded as two bytes.
      const bytes = Buffer.concat([Buffer.from([QGA_DELIMITER]), Buffer.from(`${line}\n`)]);
      const attemptDeadline = Date.now() + Math.min(attemptMs, remaining);
      try {
        await this.exchange(bytes, 'guest-sync-delimited', attemptDeadline, attemptMs, signal, (frame) =>
          frame.kind === 'return' && frame.return === id ? 'take' : 'skip',
        );
        this.dirty = false;
        this.syncCount++;
        return;
      } catch (e) {
        if (!(e instanceof QgaTimeoutError)) throw e;
        // Not up yet, or busy with a slow earlier command: try again with a fresh id.
        attemptMs = Math.min(Math.round(attemptMs * 1.5), MAX_SYNC_ATTEMPT_MS);
      }
    }
  }

  /**
   * Writes `bytes` and resolves with the first message `pick` takes. Any
   * failure (timeout, abort, close, bad input) marks the stream dirty.
   */
  private exchange(
    bytes: Buffer,
    command: string,
    deadline: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    pick: (frame: QgaFrame) => 'take' | 'skip' | Error,
  ): Promise<QgaMessage> {
    return new Promise<QgaMessage>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.receiver = null;
        this.closeWaiter = null;
      };
      const fail = (err: Error): void => {
        finish();
        this.dirty = true;
        reject(err);
      };
      const onAbort = (): void => fail(abortReason(signal as AbortSignal));
      if (this.closedError) return reject(this.closedFor(command));
      if (signal?.aborted) return reject(abortReason(signal));
      this.receiver = (frame) => {
        const verdict = pick(frame);
        if (verdict === 'skip') return;
        if (verdict instanceof Error) return fail(verdict);
        if (frame.kind === 'return' || frame.kind === 'error') {
          finish();
          resolve(frame);
        }
      };
      this.closeWaiter = (err) => fail(this.closedFor(command, err));
      signal?.addEventListener('abort', onAbort, { once: true });
      const ms = left(deadline);
      if (ms !== Infinity) timer = setTimeout(() => fail(new QgaTimeoutError(command, timeoutMs)), Math.max(0, ms));
      this.socket.write(bytes);
    });
  }

  /** Waits until every earlier caller is done; resolves with the function that ends this turn. */
  private takeTurn(command: string, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<() => void> {
    if (this.closedError) return Promise.reject(this.closedFor(command));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.busy = false;
      this.turns.shift()?.();
    };
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(release);
    }
    return new Promise<() => void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = (err: Error): void => {
        const i = this.turns.indexOf(start);
        if (i >= 0) this.turns.splice(i, 1);
        cleanup();
        reject(err);
      };
      const onAbort = (): void => leave(abortReason(signal as AbortSignal));
      const onClosed = (err: QgaClosedError): void => leave(this.closedFor(command, err));
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.off('closed', onClosed);
      };
      const start = (): void => {
        cleanup();
        if (this.closedError) {
          // Pass the turn on so every queued caller hears about the close.
          this.turns.shift()?.();
          reject(this.closedFor(command));
          return;
        }
        this.busy = true;
        resolve(release);
      };
      this.turns.push(start);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.on('closed', onClosed);
      const ms = left(deadline);
      if (ms !== Infinity) timer = setTimeout(() => leave(new QgaTimeoutError(`${command} (waiting for earlier commands)`, timeoutMs)), Math.max(0, ms));
    });
  }

  private dispatch(frame: QgaFrame): void {
    if (this.closedError) return;
    if (this.receiver) {
      this.receiver(frame);
      return;
    }
    if (frame.kind === 'delimiter') return;
    // Nothing is waiting: a late reply, or input nobody asked for. Make the next command resync.
    this.dirty = true;
    const what = frame.kind === 'invalid' ? `invalid input: ${frame.reason}: ${frame.line}` : frame.kind === 'error' ? `unsolicited error ${frame.error.class}: ${frame.error.desc}` : 'unsolicited reply';
    this.protocolError(new Error(`guest agent ${what}`));
  }

  private protocolError(err: Error): void {
    if (this.emitter.listenerCount('protocolError') > 0) this.emitter.emit('protocolError', err);
  }

  private closedFor(command: string, cause: QgaClosedError | null = this.closedError): QgaClosedError {
    const reason = cause?.reason ?? 'client';
    return new QgaClosedError(`guest agent connection closed; cannot run ${command}`, { reason, command, cause });
  }

  private markClosed(err: QgaClosedError): void {
    if (this.closedError) return;
    this.closedError = err;
    this.closeWaiter?.(err);
    this.emitter.emit('closed', err);
  }
}
