// Errors of the guest agent client (see connection.ts).

/** The agent answered a command with {"error": ...}. */
export class QgaError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
    readonly command: string,
  ) {
    super(`guest agent ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QgaError';
  }
}

export class QgaTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`guest agent ${what} timed out after ${timeoutMs} ms`);
    this.name = 'QgaTimeoutError';
  }
}

/** The agent sent something a command cannot be answered with; the connection resyncs before the next one. */
export class QgaProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QgaProtocolError';
  }
}

/** Who ended the connection: the peer (QEMU exited or dropped us), this side, or a socket error. */
export type QgaCloseReason = 'peer' | 'client' | 'error';

/** The connection went away; the running and queued commands reject with this. */
export class QgaClosedError extends Error {
  readonly reason: QgaCloseReason;
  readonly command: string | undefined;

  constructor(message: string, opts: { reason: QgaCloseReason; command?: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'QgaClosedError';
    this.reason = opts.reason;
    this.command = opts.command;
  }
}
