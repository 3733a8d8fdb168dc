// QgaConnection and the typed commands against a fake agent that writes exactly
// what qemu-ga 7.2 writes (bytes captured from the test guest). The same client
// against a real guest: qga-guest.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fsfreezeFreeze, fsfreezeFreezeList, fsfreezeStatus, fsfreezeThaw, getTime, info, ping } from '../../src/drivers/qga/commands.js';
import { QgaClosedError, QgaConnection, QgaError, QgaProtocolError, QgaTimeoutError } from '../../src/drivers/qga/connection.js';
import type { JsonObject, JsonValue } from '../../src/drivers/qga/framer.js';

// ---- a byte-exact fake qemu-ga ---------------------------------------------------

/** qemu-ga's JSON formatter: compact, with a space after ':' and ','. */
function qemuJson(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(qemuJson).join(', ')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${qemuJson(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

const FF = Buffer.from([0xff]);
const STRAY_FF = '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n';

interface Request {
  execute: string;
  arguments?: JsonObject;
  id?: JsonValue;
}

/** Every element of the input stream in order: a 0xFF byte or a parsed request. */
type Input = { kind: 'ff' } | { kind: 'request'; req: Request };

type Handler = (req: Request, peer: FakePeer) => void;

interface FakeOptions {
  /** Like QEMU before the guest opens the port: input waits unread until bringUp(). */
  up?: boolean;
  /** qemu-ga 7.2 echoes "id"; older agents do not. */
  echoIds?: boolean;
  onConnect?: (peer: FakePeer) => void;
}

class FakePeer {
  readonly input: Input[] = [];
  readonly raw: Buffer[] = [];
  private pending = Buffer.alloc(0);
  private up: boolean;

  constructor(
    readonly socket: Socket,
    private readonly handler: Handler,
    private readonly opts: FakeOptions,
  ) {
    this.up = opts.up !== false;
    socket.on('data', (d: Buffer) => {
      this.raw.push(d);
      this.pending = Buffer.concat([this.pending, d]);
      if (this.up) this.process();
    });
    socket.on('error', () => undefined);
  }

  get requests(): Request[] {
    return this.input.flatMap((i) => (i.kind === 'request' ? [i.req] : []));
  }

  bringUp(): void {
    this.up = true;
    this.process();
  }

  write(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  reply(req: Request, ret: JsonValue): void {
    this.write(`${qemuJson(this.withId({ return: ret }, req))}\n`);
  }

  error(req: Request, cls: string, desc: string): void {
    this.write(`${qemuJson(this.withId({ error: { class: cls, desc } }, req))}\n`);
  }

  private withId(msg: JsonObject, req: Request): JsonObject {
    return this.opts.echoIds !== false && req.id !== undefined ? { ...msg, id: req.id } : msg;
  }

  /** qemu-ga's reader: 0xFF resets the parser (answered with a parse error); otherwise one request per line. */
  private process(): void {
    for (;;) {
      const ff = this.pending.indexOf(0xff);
      const nl = this.pending.indexOf(0x0a);
      if (ff >= 0 && (nl < 0 || ff < nl)) {
        this.pending = this.pending.subarray(ff + 1);
        this.input.push({ kind: 'ff' });
        this.write(STRAY_FF);
        continue;
      }
      if (nl < 0) return;
      const line = this.pending.subarray(0, nl).toString('utf8').trim();
      this.pending = this.pending.subarray(nl + 1);
      if (line === '') continue;
      const req = JSON.parse(line) as Request;
      this.input.push({ kind: 'request', req });
      if (req.execute === 'guest-sync-delimited') this.write(Buffer.concat([FF, Buffer.from(`${qemuJson(this.withId({ return: req.arguments?.['id'] ?? null }, req))}\n`)]));
      else this.handler(req, this);
    }
  }
}

let dir: string;
const servers: Server[] = [];

async function fakeAgent(handler: Handler, opts: FakeOptions = {}): Promise<{ path: string; peers: FakePeer[] }> {
  const path = join(dir, `qga-${servers.length}.sock`);
  const peers: FakePeer[] = [];
  const server = createServer((socket) => {
    const peer = new FakePeer(socket, handler, opts);
    peers.push(peer);
    opts.onConnect?.(peer);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, peers };
}

const answerPing: Handler = (req, peer) => peer.reply(req, {});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('QgaConnection (fake agent)', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bw-qga-'));
  });
  after(() => {
    for (const s of servers) {
      s.close();
      s.unref();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('resyncs on connect with one raw 0xFF byte and guest-sync-delimited, then runs commands', async () => {
    const { path, peers } = await fakeAgent(answerPing);
    const qga = await QgaConnection.connect(path);
    await ping(qga);
    const raw = Buffer.concat(peers[0]?.raw ?? []);
    assert.equal(raw[0], 0xff, 'the first byte is 0xFF');
    assert.equal(raw.indexOf(Buffer.from('\xff', 'utf8')), -1, "never the UTF-8 encoding of '\\xff'");
    const input = peers[0]?.input ?? [];
    assert.equal(input[0]?.kind, 'ff');
    const sync = input[1]?.kind === 'request' ? input[1].req : undefined;
    assert.equal(sync?.execute, 'guest-sync-delimited');
    assert.ok(Number.isSafeInteger(sync?.arguments?.['id']), 'integer sync id');
    assert.equal(input[2]?.kind === 'request' ? input[2].req.execute : '', 'guest-ping');
    assert.equal(qga.resyncs, 1);
    assert.equal(qga.needsResync, false);
    await qga.close();
    assert.equal(qga.isClosed, true);
  });

  it('drops garbage, a stale reply, a stale sync reply and the parse error before its own sync reply', async () => {
    const { path, peers } = await fakeAgent(answerPing, {
      // Left over from an earlier client: half a line, garbage, a reply nobody waits for.
      onConnect: (peer) => peer.write(Buffer.concat([Buffer.from('garbage\n{"return": "stale"}\n'), FF, Buffer.from('{"return": 999}\n{"ret')])),
    });
    const qga = await QgaConnection.connect(path);
    const dropped: Error[] = [];
    qga.on('protocolError', (e) => dropped.push(e));
    assert.deepEqual(await qga.execute('guest-ping'), {});
    assert.equal(peers[0]?.requests.length, 2);
    assert.equal(dropped.length, 0, 'everything before the sync reply was consumed by the resync');
    await qga.close();
  });

  it('keeps resyncing with fresh ids while the agent is not up, then takes only the latest id', async () => {
    const { path, peers } = await fakeAgent(answerPing, { up: false });
    setTimeout(() => peers[0]?.bringUp(), 400);
    const qga = await QgaConnection.connect(path, { syncAttemptMs: 100 });
    const syncs = peers[0]?.requests.filter((r) => r.execute === 'guest-sync-delimited') ?? [];
    assert.ok(syncs.length >= 3, `several attempts (${syncs.length})`);
    assert.equal(new Set(syncs.map((s) => s.arguments?.['id'])).size, syncs.length, 'a fresh id per attempt');
    assert.deepEqual(await qga.execute('guest-ping'), {});
    await qga.close();
  });

  it('after a timeout, resyncs before the next command so the late reply is never taken for it', async () => {
    let slow: Request | undefined;
    const { path, peers } = await fakeAgent(
      (req, peer) => {
        if (req.execute === 'slow') slow = req;
        else peer.reply(req, 'fast');
      },
      { echoIds: false }, // as with an agent that does not echo ids: only order correlates
    );
    const qga = await QgaConnection.connect(path);
    const started = Date.now();
    await assert.rejects(qga.execute('slow', undefined, { timeoutMs: 150 }), QgaTimeoutError);
    assert.ok(Date.now() - started < 1000);
    assert.equal(qga.needsResync, true);
    // The slow command finishes now: its reply is on the wire before the next command runs.
    peers[0]?.reply(slow as Request, 'late');
    assert.equal(await qga.execute('fast'), 'fast');
    const kinds = (peers[0]?.input ?? []).map((i) => (i.kind === 'ff' ? 'ff' : i.req.execute));
    assert.deepEqual(kinds, ['ff', 'guest-sync-delimited', 'slow', 'ff', 'guest-sync-delimited', 'fast']);
    assert.equal(qga.resyncs, 2);
    await qga.close();
  });

  it('drops a reply whose echoed id is not the running command', async () => {
    const { path } = await fakeAgent((req, peer) => {
      peer.write('{"return": "other", "id": 999}\n');
      peer.reply(req, 'mine');
    });
    const qga = await QgaConnection.connect(path);
    const dropped: Error[] = [];
    qga.on('protocolError', (e) => dropped.push(e));
    assert.equal(await qga.execute('guest-x'), 'mine');
    assert.equal(dropped.length, 1);
    assert.match(dropped[0]?.message ?? '', /stale agent reply/);
    await qga.close();
  });

  it('honours an AbortSignal, then resyncs', async () => {
    const { path, peers } = await fakeAgent((req, peer) => {
      if (req.execute !== 'never') peer.reply(req, {});
    });
    const qga = await QgaConnection.connect(path);
    const ac = new AbortController();
    const p = qga.execute('never', undefined, { signal: ac.signal, timeoutMs: 0 });
    await sleep(20);
    ac.abort(new Error('caller gave up'));
    await assert.rejects(p, /caller gave up/);
    assert.equal(qga.needsResync, true);
    await ping(qga);
    assert.equal(qga.resyncs, 2);
    assert.equal(peers[0]?.requests.filter((r) => r.execute === 'guest-sync-delimited').length, 2);
    await qga.close();
  });

  it('runs concurrent callers strictly one at a time, in call order', async () => {
    let outstanding = 0;
    let maxOutstanding = 0;
    const { path } = await fakeAgent((req, peer) => {
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      setTimeout(() => {
        outstanding--;
        peer.reply(req, req.arguments?.['n'] ?? null);
      }, 20);
    });
    const qga = await QgaConnection.connect(path);
    const results = await Promise.all([1, 2, 3, 4].map((n) => qga.execute('echo', { n })));
    assert.deepEqual(results, [1, 2, 3, 4]);
    assert.equal(maxOutstanding, 1);
    await qga.close();
  });

  it('a queued command times out while waiting for its turn and leaves the queue', async () => {
    const { path } = await fakeAgent((req, peer) => setTimeout(() => peer.reply(req, req.execute), 150));
    const qga = await QgaConnection.connect(path);
    const first = qga.execute('first');
    await assert.rejects(qga.execute('second', undefined, { timeoutMs: 50 }), /second \(waiting for earlier commands\) timed out/);
    assert.equal(await first, 'first');
    assert.equal(qga.needsResync, false, 'a command that was never sent does not dirty the stream');
    assert.equal(await qga.execute('third'), 'third');
    await qga.close();
  });

  it('turns an agent error into QgaError and stays in sync', async () => {
    const { path } = await fakeAgent((req, peer) => peer.error(req, 'CommandNotFound', `The command ${req.execute} has not been found`));
    const qga = await QgaConnection.connect(path);
    await assert.rejects(qga.execute('nope'), (e: unknown) => {
      assert.ok(e instanceof QgaError);
      assert.equal(e.errorClass, 'CommandNotFound');
      assert.equal(e.desc, 'The command nope has not been found');
      assert.equal(e.command, 'nope');
      return true;
    });
    assert.equal(qga.needsResync, false);
    await qga.close();
  });

  it('fails the command on an invalid reply line and resyncs before the next', async () => {
    const { path } = await fakeAgent((req, peer) => {
      if (req.execute === 'bad') peer.write('{"return": oops}\n');
      else peer.reply(req, 'ok');
    });
    const qga = await QgaConnection.connect(path);
    await assert.rejects(qga.execute('bad'), QgaProtocolError);
    assert.equal(qga.needsResync, true);
    assert.equal(await qga.execute('good'), 'ok');
    await qga.close();
  });

  it('detects the peer closing: running and queued commands reject, later ones too', async () => {
    const { path } = await fakeAgent((req, peer) => {
      if (req.execute === 'die') peer.socket.destroy();
    });
    const qga = await QgaConnection.connect(path);
    const closed = new Promise<QgaClosedError>((r) => qga.on('closed', r));
    const running = qga.execute('die');
    const queued = qga.execute('queued');
    await assert.rejects(running, (e: unknown) => e instanceof QgaClosedError && e.reason === 'peer' && e.command === 'die');
    await assert.rejects(queued, (e: unknown) => e instanceof QgaClosedError && e.reason === 'peer');
    assert.equal((await closed).reason, 'peer');
    assert.equal(qga.isClosed, true);
    await assert.rejects(qga.execute('after'), QgaClosedError);
  });

  it('connect times out when the agent never answers, and honours abort', async () => {
    const { path } = await fakeAgent(answerPing, { up: false });
    const started = Date.now();
    await assert.rejects(QgaConnection.connect(path, { timeoutMs: 300, syncAttemptMs: 100 }), (e: unknown) => {
      assert.ok(e instanceof QgaTimeoutError);
      assert.match(e.message, /agent not up, or another client holds the socket/);
      return true;
    });
    assert.ok(Date.now() - started < 1000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop waiting')), 100);
    await assert.rejects(QgaConnection.connect(path, { timeoutMs: 5000, signal: ac.signal }), /stop waiting/);
  });

  it('connect waits for the socket to appear (QEMU still starting)', async () => {
    const path = join(dir, 'late.sock');
    const server = createServer((socket) => new FakePeer(socket, answerPing, {}));
    servers.push(server);
    setTimeout(() => server.listen(path), 200);
    const qga = await QgaConnection.connect(path, { timeoutMs: 3000 });
    await ping(qga);
    await qga.close();
    await assert.rejects(QgaConnection.connect(join(dir, 'never.sock'), { timeoutMs: 200 }), /ENOENT/);
  });

  it('typed commands check the shapes of replies', async () => {
    const replies: Record<string, JsonValue> = {
      'guest-fsfreeze-freeze': 2,
      'guest-fsfreeze-freeze-list': 1,
      'guest-fsfreeze-thaw': 2,
      'guest-fsfreeze-status': 'frozen',
      'guest-get-time': 1.795245235123457e18,
      'guest-info': { version: '7.2.22', supported_commands: [{ enabled: true, name: 'guest-ping', 'success-response': true }, { enabled: true, name: 'guest-shutdown', 'success-response': false }] },
      'guest-weird': 'x',
    };
    const { path, peers } = await fakeAgent((req, peer) => peer.reply(req, replies[req.execute] ?? 'not-a-count'));
    const qga = await QgaConnection.connect(path);
    assert.equal(await fsfreezeFreeze(qga, { timeoutMs: 1000 }), 2);
    assert.equal(await fsfreezeFreezeList(qga, ['/data/vdb'], { timeoutMs: 1000 }), 1);
    assert.deepEqual(peers[0]?.requests.at(-1)?.arguments, { mountpoints: ['/data/vdb'] });
    assert.equal(await fsfreezeStatus(qga), 'frozen');
    assert.equal(await fsfreezeThaw(qga), 2);
    assert.equal(await getTime(qga), 1.795245235123457e18 / 1e6);
    assert.deepEqual(await info(qga), {
      version: '7.2.22',
      supportedCommands: [
        { name: 'guest-ping', enabled: true, successResponse: true },
        { name: 'guest-shutdown', enabled: true, successResponse: false },
      ],
    });
    replies['guest-fsfreeze-status'] = 'melting';
    await assert.rejects(fsfreezeStatus(qga), QgaProtocolError);
    replies['guest-fsfreeze-thaw'] = -1;
    await assert.rejects(fsfreezeThaw(qga), QgaProtocolError);
    await assert.rejects(fsfreezeFreeze(qga, { timeoutMs: 0 }), RangeError);
    await qga.close();
  });
});
