// Freeze and thaw of the guests on this host, through each VM's guest agent.
// Safety first: the deadline is armed with the detached watchdog BEFORE the
// freeze is sent, so a freeze that lands after this process died is still
// thawed; a thaw disarms it only once the guest reports 'thawed'.
import { join } from 'node:path';
import { QgaConnection } from '../../drivers/qga/connection.js';
import { fsfreezeFreeze, fsfreezeStatus, fsfreezeThaw } from '../../drivers/qga/commands.js';
import { armFreezeDeadline, disarmFreezeDeadline } from '../../drivers/vm/freeze-watchdog.js';
import type { Executor } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { InstanceRow } from '../../store/schema.js';
import type { ComputeContext } from './context.js';
import { errorText } from '../worker.js';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across hosts' records. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface FreezeOutcome {
  instance_id: string;
  ok: boolean;
  /** True when the guest's filesystems were frozen. */
  quiesced: boolean;
  freeze_started_at: number | null;
  frozen_at: number | null;
  filesystems: number;
  error: string | null;
}

export interface ThawOutcome {
  instance_id: string;
  ok: boolean;
  thaw_started_at: number | null;
  thawed_at: number | null;
  error: string | null;
}

async function casQuiesce(ex: Executor, id: string, from: readonly string[], values: Partial<Pick<InstanceRow, 'quiesce_state' | 'quiesce_deadline_at' | 'quiesce_frozen_at' | 'quiesce_detail'>>): Promise<boolean> {
  const res = await ex
    .updateTable('instances')
    .set({ ...values, updated_at: nowIso() })
    .where('id', '=', id)
    .where('quiesce_state', 'in', [...from])
    .executeTakeFirst();
  return res.numUpdatedRows === 1n;
}


function agentSocket(ctx: ComputeContext, instanceId: string): string {
  return join(ctx.instanceDir(instanceId), 'qga.sock');
}

/** One short connection, closed at once: the agent socket serves one client at
 *  a time and the watchdog must be able to get in. */
async function withAgent<T>(ctx: ComputeContext, inst: InstanceRow, fn: (conn: QgaConnection) => Promise<T>): Promise<T> {
  const conn = await QgaConnection.connect(agentSocket(ctx, inst.id), { timeoutMs: ctx.agentTimeoutMs, commandTimeoutMs: ctx.agentTimeoutMs });
  try {
    return await fn(conn);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Before a plan's first freeze: deadlines armed, agent connections opened. */
export async function prepareInstance(ctx: ComputeContext, instanceId: string, deadlineAt: number): Promise<{ instance_id: string; agent: boolean }> {
  await armFreezeDeadline(ctx.instanceDir(instanceId), deadlineAt);
  const agent = await ctx.sessions.warm(instanceId, agentSocket(ctx, instanceId), deadlineAt);
  return { instance_id: instanceId, agent };
}

export async function freezeInstance(ctx: ComputeContext, instanceId: string, deadlineAt: number): Promise<FreezeOutcome> {
  const out: FreezeOutcome = { instance_id: instanceId, ok: false, quiesced: false, freeze_started_at: null, frozen_at: null, filesystems: 0, error: null };
  const db = ctx.deps.store.db;
  const inst = await db.selectFrom('instances').selectAll().where('id', '=', instanceId).executeTakeFirst();
  if (!inst || inst.host !== ctx.host || inst.status !== 'ACTIVE') {
    out.error = `instance ${instanceId} is not running on ${ctx.host}`;
    return out;
  }
  if (!(await casQuiesce(db, instanceId, ['thawed', 'frozen', 'error'], { quiesce_state: 'freezing', quiesce_deadline_at: deadlineAt, quiesce_detail: null }))) {
    out.error = `instance ${instanceId} is busy freezing or thawing`;
    return out;
  }
  const dir = ctx.instanceDir(instanceId);
  try {
    await armFreezeDeadline(dir, deadlineAt);
  } catch (err) {
    // No watchdog, no freeze: nothing would thaw the guest if we died.
    out.error = `freeze watchdog: ${errorText(err)}`;
    await casQuiesce(db, instanceId, ['freezing'], { quiesce_state: 'thawed', quiesce_deadline_at: null, quiesce_detail: out.error });
    return out;
  }
  let sent = false;
  try {
    const freeze = async (conn: QgaConnection): Promise<number> => {
      out.freeze_started_at = preciseNow();
      sent = true;
      return fsfreezeFreeze(conn, { timeoutMs: Math.max(1_000, deadlineAt - Date.now()) });
    };
    // A plan run's session (opened when it prepared) stays open until the thaw;
    // a lone quiesce uses a short connection so others can reach the agent.
    const held = ctx.sessions.peek(instanceId);
    const n = held ? await freeze(held) : await withAgent(ctx, inst, freeze);
    out.frozen_at = preciseNow();
    out.filesystems = n;
    out.quiesced = true;
    out.ok = true;
    await casQuiesce(db, instanceId, ['freezing'], { quiesce_state: 'frozen', quiesce_frozen_at: Math.round(out.frozen_at), quiesce_detail: `${n} filesystem(s) frozen` });
  } catch (err) {
    out.error = `guest agent: ${errorText(err)}`;
    ctx.sessions.drop(instanceId);
    // A freeze that was sent may still complete in the guest: thaw anyway. If
    // that fails too the watchdog stays armed and thaws at the deadline.
    const thawed = sent ? await thawQuietly(ctx, inst) : true;
    if (thawed) await disarmFreezeDeadline(dir);
    await casQuiesce(db, instanceId, ['freezing'], { quiesce_state: thawed ? 'thawed' : 'error', quiesce_detail: out.error, ...(thawed ? { quiesce_deadline_at: null } : {}) });
  }
  return out;
}

async function thawQuietly(ctx: ComputeContext, inst: InstanceRow): Promise<boolean> {
  try {
    await withAgent(ctx, inst, async (conn) => {
      await fsfreezeThaw(conn);
      if ((await fsfreezeStatus(conn)) !== 'thawed') throw new Error('still frozen after thaw');
    });
    return true;
  } catch {
    return false;
  }
}

export async function thawInstance(ctx: ComputeContext, instanceId: string): Promise<ThawOutcome> {
  const out: ThawOutcome = { instance_id: instanceId, ok: false, thaw_started_at: null, thawed_at: null, error: null };
  const db = ctx.deps.store.db;
  const inst = await db.selectFrom('instances').selectAll().where('id', '=', instanceId).executeTakeFirst();
  if (!inst || inst.host !== ctx.host) {
    out.error = `instance ${instanceId} is not on ${ctx.host}`;
    return out;
  }
  const before = inst.quiesce_state;
  // The thaw goes out first and the row follows: a thaw is harmless to repeat,
  // and a store write here would sit inside a plan's freeze window.
  try {
    const thaw = async (conn: QgaConnection) => {
      out.thaw_started_at = preciseNow();
      // A successful guest-fsfreeze-thaw has thawed every filesystem: no second
      // round trip to ask, which would sit inside a plan's freeze window.
      await fsfreezeThaw(conn);
      out.thawed_at = preciseNow();
    };
    const held = ctx.sessions.peek(instanceId);
    try {
      if (!held) throw new Error('no held session');
      await thaw(held);
    } catch {
      // No session, or the held one broke: a short connection.
      ctx.sessions.drop(instanceId);
      await withAgent(ctx, inst, thaw);
    }
    ctx.sessions.drop(instanceId);
    out.ok = true;
    await disarmFreezeDeadline(ctx.instanceDir(instanceId));
    await casQuiesce(db, instanceId, ['frozen', 'error', 'thawed', 'thawing'], { quiesce_state: 'thawed', quiesce_deadline_at: null, quiesce_frozen_at: null, quiesce_detail: null });
  } catch (err) {
    ctx.sessions.drop(instanceId);
    out.error = `guest agent: ${errorText(err)}`;
    // The watchdog stays armed: it thaws at the deadline whatever happens here.
    // A guest that was never frozen stays 'thawed' (a cleanup thaw found no agent).
    const after = before === 'thawed' ? 'thawed' : 'error';
    await casQuiesce(db, instanceId, ['frozen', 'error', 'thawed', 'thawing'], { quiesce_state: after, quiesce_detail: `thaw failed: ${out.error}` });
  }
  return out;
}
