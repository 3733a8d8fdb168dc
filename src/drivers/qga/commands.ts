// Typed wrappers for the guest agent commands quiesce uses (qemu-ga 7.2
// schema). Replies are checked: a reply of the wrong shape is a
// QgaProtocolError, not a silently wrong number.
//
// FREEZE SAFETY: qemu-ga 7.2 never thaws by itself. If the client goes away
// (crash, kill -9, closed socket) after a freeze, the guest's filesystems stay
// frozen and its writers block until someone sends guest-fsfreeze-thaw. So:
// - always thaw in a `finally`, under a deadline of its own;
// - a freeze that timed out or was aborted may still complete in the guest:
//   thaw anyway (thawing a thawed guest is harmless and returns 0);
// - after a service restart, read fsfreezeStatus() and thaw a frozen guest.
// While frozen the agent refuses most commands (CommandNotFound, "has been
// disabled: the agent is in frozen state"); ping, info, status and thaw work.
import { QgaProtocolError, type QgaConnection, type QgaExecuteOptions } from './connection.js';
import type { JsonValue } from './framer.js';

export type FsfreezeStatus = 'thawed' | 'frozen';

export interface QgaCommandInfo {
  name: string;
  enabled: boolean;
  /** False for commands the agent never answers (guest-shutdown, guest-suspend-*). */
  successResponse: boolean;
}

export interface QgaInfo {
  version: string;
  supportedCommands: QgaCommandInfo[];
}

/** A freeze always carries a time limit: a freeze with none could leave the caller waiting while the guest is frozen. */
export interface QgaFreezeOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

type Opts = QgaExecuteOptions | undefined;

function bad(command: string, value: JsonValue): QgaProtocolError {
  const text = JSON.stringify(value) ?? 'undefined';
  return new QgaProtocolError(`unexpected reply to ${command}: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`);
}

function isRecord(v: JsonValue): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function count(conn: QgaConnection, command: string, args: object | undefined, opts: Opts): Promise<number> {
  const n = await conn.execute(command, args, opts);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw bad(command, n);
  return n;
}

function freezeOpts(opts: QgaFreezeOptions): QgaExecuteOptions {
  if (!(opts.timeoutMs > 0)) throw new RangeError('a guest freeze needs a positive timeoutMs');
  return opts;
}

export async function ping(conn: QgaConnection, opts?: Opts): Promise<void> {
  await conn.execute('guest-ping', undefined, opts);
}

export async function info(conn: QgaConnection, opts?: Opts): Promise<QgaInfo> {
  const r = await conn.execute('guest-info', undefined, opts);
  if (!isRecord(r) || typeof r['version'] !== 'string' || !Array.isArray(r['supported_commands'])) throw bad('guest-info', r);
  const supportedCommands: QgaCommandInfo[] = [];
  for (const c of r['supported_commands']) {
    if (!isRecord(c) || typeof c['name'] !== 'string') throw bad('guest-info', r);
    supportedCommands.push({ name: c['name'], enabled: c['enabled'] === true, successResponse: c['success-response'] !== false });
  }
  return { version: r['version'], supportedCommands };
}

export async function fsfreezeStatus(conn: QgaConnection, opts?: Opts): Promise<FsfreezeStatus> {
  const r = await conn.execute('guest-fsfreeze-status', undefined, opts);
  if (r !== 'thawed' && r !== 'frozen') throw bad('guest-fsfreeze-status', r);
  return r;
}

/**
 * Freezes every freezable filesystem in the guest (syncing it first, so the
 * time grows with dirty data); resolves with how many were frozen.
 * The guest stays frozen until fsfreezeThaw(), even if this connection or
 * process dies: qemu-ga 7.2 has no thaw-on-disconnect (see the top of this file).
 */
export async function fsfreezeFreeze(conn: QgaConnection, opts: QgaFreezeOptions): Promise<number> {
  return count(conn, 'guest-fsfreeze-freeze', undefined, freezeOpts(opts));
}

/**
 * Freezes only the given mount points; resolves with how many were frozen.
 * qemu-ga 7.2 silently skips names that are not mount points (returns 0 for
 * them rather than failing). Same thaw obligation as fsfreezeFreeze().
 */
export async function fsfreezeFreezeList(conn: QgaConnection, mountpoints: readonly string[], opts: QgaFreezeOptions): Promise<number> {
  return count(conn, 'guest-fsfreeze-freeze-list', { mountpoints }, freezeOpts(opts));
}

/** Thaws every frozen filesystem; resolves with how many were thawed (0 when none was frozen). */
export async function fsfreezeThaw(conn: QgaConnection, opts?: Opts): Promise<number> {
  return count(conn, 'guest-fsfreeze-thaw', undefined, opts);
}

/**
 * The guest's wall clock in milliseconds since the epoch. The agent sends
 * nanoseconds (about 1.8e18, beyond a double's exact range), so sub-microsecond
 * digits are lost, which clock comparisons do not need. Refused while frozen.
 */
export async function getTime(conn: QgaConnection, opts?: Opts): Promise<number> {
  const ns = await conn.execute('guest-get-time', undefined, opts);
  if (typeof ns !== 'number' || !Number.isFinite(ns)) throw bad('guest-get-time', ns);
  return ns / 1e6;
}
