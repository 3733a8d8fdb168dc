// QmpConnection against a fake QMP server that writes exactly what QSD 7.2
// writes: "\r\n"-terminated lines, ": " and ", " separators, the same greeting.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { QmpClosedError, QmpConnection, QmpError, QmpTimeoutError } from '../../src/drivers/qmp/connection.js';
import type { JsonObject, JsonValue, QmpEventMessage } from '../../src/drivers/qmp/framer.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n';

/** QEMU's JSON formatter: compact, but with a space after ':' and ','. */
function qemuJson(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(qemuJson).join(', ')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${qemuJson(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

interface Command {
  execute: string;
  arguments?: JsonObject;
  id: JsonValue;
}

type Handler = (cmd: Command, peer: FakePeer) => void;

class FakePeer {
  readonly received: Command[] = [];
  constructor(readonly socket: Socket) {}
  send(v: JsonValue): void {
    this.socket.write(`${qemuJson(v)}\r\n`);
  }
  reply(cmd: Command, ret: JsonValue): void {
    this.send({ return: ret, id: cmd.id });
  }
  event(name: string, data: JsonObject): void {
    this.send({ timestamp: { seconds: 1795241668, microseconds: 42718 }, event: name, data });
  }
}

let dir: string;
const servers: Server[] = [];

async function fakeServer(handler: Handler, opts: { greet?: boolean } = {}): Promise<{ path: string; peers: FakePeer[] }> {
  const path = join(dir, `qmp-${servers.length}.sock`);
  const peers: FakePeer[] = [];
  const server = createServer((socket) => {
    const peer = new FakePeer(socket);
    peers.push(peer);
    if (opts.greet !== false) socket.write(GREETING);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Command;
        buf = buf.slice(nl + 1);
        peer.received.push(cmd);
        if (cmd.execute === 'qmp_capabilities') peer.reply(cmd, {});
        else handler(cmd, peer);
      }
    });
    socket.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, peers };
}

describe('QmpConnection (fake QMP server)', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bw-qmp-'));
  });
  after(async () => {
    for (const s of servers) {
      s.close();
      s.unref();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the greeting and negotiates capabilities before anything else', async () => {
    const { path, peers } = await fakeServer((cmd, peer) => peer.reply(cmd, [{ id: 'j1', type: 'stream', status: 'running' }]));
    const qmp = await QmpConnection.connect(path);
    assert.deepEqual(qmp.greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 22 });
    const jobs = await qmp.execute<{ id: string }[]>('query-jobs');
    assert.equal(jobs[0]?.id, 'j1');
    const sent = peers[0]?.received ?? [];
    assert.equal(sent[0]?.execute, 'qmp_capabilities');
    assert.equal(sent[0]?.arguments, undefined);
    assert.deepEqual(sent.map((c) => c.id), [1, 2], 'monotonic numeric ids');
    await qmp.close();
    assert.equal(qmp.isClosed, true);
  });

  it('correlates out-of-order replies by id', async () => {
    const held: Command[] = [];
    const { path } = await fakeServer((cmd, peer) => {
      held.push(cmd);
      if (held.length === 3) for (const c of held.reverse()) peer.reply(c, { echo: c.arguments?.['n'] ?? null });
    });
    const qmp = await QmpConnection.connect(path);
    const results = await Promise.all([1, 2, 3].map((n) => qmp.execute<{ echo: number }>('echo', { n })));
    assert.deepEqual(results.map((r) => r.echo), [1, 2, 3]);
    await qmp.close();
  });

  it('rejects with a typed QmpError carrying class, desc and command', async () => {
    const { path } = await fakeServer((cmd, peer) => peer.send({ id: cmd.id, error: { class: 'GenericError', desc: "Duplicate nodes with node-name='l1'" } }));
    const qmp = await QmpConnection.connect(path);
    await assert.rejects(qmp.execute('blockdev-add', { driver: 'qcow2' }), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.errorClass, 'GenericError');
      assert.equal(e.desc, "Duplicate nodes with node-name='l1'");
      assert.equal(e.command, 'blockdev-add');
      return true;
    });
    await qmp.close();
  });

  it('times out one command, drops its late reply, and keeps working', async () => {
    let slow: Command | undefined;
    const { path } = await fakeServer((cmd, peer) => {
      if (cmd.execute === 'slow') slow = cmd;
      else {
        if (slow) peer.reply(slow, 'late');
        peer.reply(cmd, 'fast');
      }
    });
    const qmp = await QmpConnection.connect(path);
    const protocolErrors: Error[] = [];
    qmp.on('protocolError', (e) => protocolErrors.push(e));
    const started = Date.now();
    await assert.rejects(qmp.execute('slow', undefined, { timeoutMs: 100 }), QmpTimeoutError);
    assert.ok(Date.now() - started < 2000);
    assert.equal(await qmp.execute('fast'), 'fast');
    assert.equal(protocolErrors.length, 1);
    assert.match(protocolErrors[0]?.message ?? '', /uncorrelated/);
    await qmp.close();
  });

  it('honours an AbortSignal', async () => {
    const { path } = await fakeServer(() => undefined);
    const qmp = await QmpConnection.connect(path);
    const ac = new AbortController();
    const p = qmp.execute('never', undefined, { signal: ac.signal, timeoutMs: 0 });
    ac.abort(new Error('caller gave up'));
    await assert.rejects(p, /caller gave up/);
    await qmp.close();
  });

  it('delivers events, including ones sent before the reply of the command that caused them', async () => {
    const { path } = await fakeServer((cmd, peer) => {
      const id = String(cmd.arguments?.['job-id']);
      peer.event('JOB_STATUS_CHANGE', { status: 'created', id });
      peer.event('JOB_STATUS_CHANGE', { status: 'concluded', id });
      peer.reply(cmd, {});
    });
    const qmp = await QmpConnection.connect(path);
    const seen: QmpEventMessage[] = [];
    qmp.on('event', (ev) => seen.push(ev));
    const concluded = qmp.waitForEvent((ev) => ev.event === 'JOB_STATUS_CHANGE' && ev.data['status'] === 'concluded', { timeoutMs: 2000 });
    await qmp.execute('blockdev-create', { 'job-id': 'c1' });
    const ev = await concluded;
    assert.deepEqual(ev.data, { status: 'concluded', id: 'c1' });
    assert.deepEqual(ev.timestamp, { seconds: 1795241668, microseconds: 42718 });
    assert.deepEqual(seen.map((e) => e.data['status']), ['created', 'concluded']);
    await assert.rejects(qmp.waitForEvent(() => false, { timeoutMs: 50 }), QmpTimeoutError);
    await qmp.close();
  });

  it('handles replies written one byte at a time', async () => {
    const { path } = await fakeServer((cmd, peer) => {
      const bytes = Buffer.from(`${qemuJson({ return: { 'node-name': 'l0123abcd' }, id: cmd.id })}\r\n`);
      let i = 0;
      const tick = (): void => {
        if (i < bytes.length) {
          peer.socket.write(bytes.subarray(i, ++i));
          setImmediate(tick);
        }
      };
      tick();
    });
    const qmp = await QmpConnection.connect(path);
    assert.deepEqual(await qmp.execute('query'), { 'node-name': 'l0123abcd' });
    await qmp.close();
  });

  it('rejects pending commands and waiters and notifies when the peer goes away', async () => {
    const { path } = await fakeServer((_cmd, peer) => peer.socket.destroy());
    const qmp = await QmpConnection.connect(path);
    const closed = new Promise<QmpClosedError>((resolve) => qmp.on('closed', resolve));
    const waiter = qmp.waitForEvent(() => true);
    await assert.rejects(qmp.execute('quit'), (e: unknown) => e instanceof QmpClosedError && e.command === 'quit' && e.reason !== 'client');
    await assert.rejects(waiter, QmpClosedError);
    const err = await closed;
    assert.notEqual(err.reason, 'client');
    assert.equal(qmp.isClosed, true);
    await assert.rejects(qmp.execute('query-jobs'), QmpClosedError);
  });

  it('gives up when no greeting comes (monitor busy with another client)', async () => {
    const { path } = await fakeServer(() => undefined, { greet: false });
    await assert.rejects(QmpConnection.connect(path, { timeoutMs: 150 }), (e: unknown) => e instanceof QmpTimeoutError && /greeting/.test(e.message));
  });

  it('fails to connect to a missing socket', async () => {
    await assert.rejects(QmpConnection.connect(join(dir, 'nope.sock'), { timeoutMs: 1000 }), QmpClosedError);
  });
});
