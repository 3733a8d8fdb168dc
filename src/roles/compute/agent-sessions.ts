// Guest agent connections held across a plan run: opened before the first
// freeze, used for the freeze and the thaw, closed after the thaw. That keeps
// connect + resync out of the freeze window. The agent socket serves one
// client at a time, so a held connection would lock the freeze watchdog out:
// every session is closed a second before its deadline whatever happens, and
// the OS closes them all if this process dies.
import { QgaConnection } from '../../drivers/qga/connection.js';

const CLOSE_BEFORE_DEADLINE_MS = 1_000;

interface Session {
  conn: QgaConnection;
  timer: NodeJS.Timeout;
}

export class AgentSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly connectTimeoutMs: number) {}

  /** The held connection, or a fresh one (held until `deadlineAt` minus a second). */
  async get(instanceId: string, socketPath: string, deadlineAt: number): Promise<QgaConnection> {
    const held = this.sessions.get(instanceId);
    if (held && !held.conn.isClosed) return held.conn;
    if (held) this.drop(instanceId);
    const conn = await QgaConnection.connect(socketPath, { timeoutMs: this.connectTimeoutMs, commandTimeoutMs: this.connectTimeoutMs });
    const ttl = Math.max(0, deadlineAt - CLOSE_BEFORE_DEADLINE_MS - Date.now());
    const timer = setTimeout(() => this.drop(instanceId), ttl);
    timer.unref();
    this.sessions.set(instanceId, { conn, timer });
    return conn;
  }

  /** The held connection, if a plan run opened one and it is still usable. */
  peek(instanceId: string): QgaConnection | null {
    const held = this.sessions.get(instanceId);
    if (held && !held.conn.isClosed) return held.conn;
    if (held) this.drop(instanceId);
    return null;
  }

  /** Opens a session ahead of a freeze; a guest whose agent does not answer now is simply not pre-connected. */
  async warm(instanceId: string, socketPath: string, deadlineAt: number): Promise<boolean> {
    try {
      await this.get(instanceId, socketPath, deadlineAt);
      return true;
    } catch {
      return false;
    }
  }

  drop(instanceId: string): void {
    const held = this.sessions.get(instanceId);
    if (!held) return;
    this.sessions.delete(instanceId);
    clearTimeout(held.timer);
    void held.conn.close().catch(() => undefined);
  }

  dropAll(): void {
    for (const id of [...this.sessions.keys()]) this.drop(id);
  }
}
