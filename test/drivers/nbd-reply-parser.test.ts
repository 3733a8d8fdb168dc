// The NBD reply push parser on its own (pure logic): replies cut at every
// possible place, read data landing straight in the caller's buffer, and the
// protocol errors that must fail every request rather than corrupt one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  NbdError, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_ERROR, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
  SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
} from '../../src/drivers/nbd/protocol.js';
import { ReplyParser, type PendingReply } from '../../src/drivers/nbd/reply-parser.js';

function simple(handle: bigint, errno = 0, payload = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  h.writeUInt32BE(errno, 4);
  h.writeBigUInt64BE(handle, 8);
  return Buffer.concat([h, payload]);
}

function chunk(handle: bigint, type: number, payload: Buffer, done: boolean): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(done ? REPLY_FLAG_DONE : 0, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(handle, 8);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

interface Tracked {
  readonly pending: Map<bigint, PendingReply>;
  readonly results: Map<bigint, Buffer | Error>;
  add(handle: bigint, p: Partial<PendingReply>): void;
  fatal: Error | null;
}

function track(): Tracked {
  const pending = new Map<bigint, PendingReply>();
  const results = new Map<bigint, Buffer | Error>();
  const t: Tracked = {
    pending,
    results,
    fatal: null,
    add(handle, p) {
      pending.set(handle, { readLength: 0, offset: 0, ...p, resolve: (d) => results.set(handle, d), reject: (e) => results.set(handle, e) });
    },
  };
  return t;
}

/** Feeds `bytes` to the parser as a socket with onread would: each read lands where nextBuffer() says, at most `cut` bytes at a time. */
function deliver(parser: ReplyParser, bytes: Buffer, cut: number): void {
  for (let i = 0; i < bytes.length; ) {
    const dst = parser.nextBuffer();
    const n = Math.min(cut, dst.length, bytes.length - i);
    bytes.copy(dst, 0, i, i + n);
    parser.landed(dst, n);
    i += n;
  }
}

describe('NBD reply parser', () => {
  it('parses simple read and write replies cut at every size, data landing in the caller buffer', () => {
    const data = randomBytes(100_000);
    const wire = Buffer.concat([simple(1n), simple(2n, 0, data), simple(3n, 5)]);
    for (const cut of [1, 3, 16, 17, 4096, 70_000, wire.length]) {
      const t = track();
      const into = Buffer.alloc(100_000);
      t.add(1n, {});
      t.add(2n, { readLength: data.length, buffer: into });
      t.add(3n, { readLength: 10 });
      const parser = new ReplyParser(t.pending, (e) => (t.fatal = e));
      deliver(parser, wire, cut);
      assert.equal((t.results.get(1n) as Buffer).length, 0, `cut ${cut}: write ack`);
      const got = t.results.get(2n) as Buffer;
      assert.ok(got.equals(data), `cut ${cut}: read data`);
      assert.equal(got.buffer, into.buffer, `cut ${cut}: returned in the caller's buffer`);
      assert.ok(t.results.get(3n) instanceof NbdError && /NBD error 5/.test((t.results.get(3n) as Error).message), 'an error reply carries no payload');
      assert.equal(t.pending.size, 0);
      assert.equal(t.fatal, null);
    }
  });

  it('the payload of a large read goes straight to the caller buffer, not through staging', () => {
    const t = track();
    const into = Buffer.alloc(1 << 20);
    t.add(7n, { readLength: into.length, buffer: into });
    const parser = new ReplyParser(t.pending, (e) => (t.fatal = e));
    const wire = simple(7n, 0, randomBytes(into.length));
    // First read: the header plus a little data, through staging.
    let at = 0;
    let dst = parser.nextBuffer();
    wire.copy(dst, 0, 0, 100);
    parser.landed(dst, 100);
    at = 100;
    dst = parser.nextBuffer();
    assert.equal(dst.buffer, into.buffer, 'the next read targets the caller buffer');
    assert.equal(dst.byteOffset - into.byteOffset, 84, 'right after the 84 data bytes already copied');
    wire.copy(dst, 0, at);
    parser.landed(dst, wire.length - at);
    assert.ok((t.results.get(7n) as Buffer).equals(wire.subarray(16)));
  });

  it('parses structured replies: data chunks out of order, holes, block status, errors', () => {
    const req = 4096;
    const a = randomBytes(1000);
    const b = randomBytes(2000);
    const status = Buffer.alloc(4 + 16);
    status.writeUInt32BE(2, 0);
    status.writeUInt32BE(4096, 4);
    status.writeUInt32BE(0, 8);
    status.writeUInt32BE(8192, 12);
    status.writeUInt32BE(3, 16);
    const err = Buffer.alloc(6 + 4);
    err.writeUInt32BE(22, 0);
    err.writeUInt16BE(4, 4);
    err.write('nope', 6);
    const hole = Buffer.concat([u64(req + 3000), Buffer.from([0, 0, 0x04, 0x00])]);
    const wire = Buffer.concat([
      chunk(1n, REPLY_TYPE_OFFSET_DATA, Buffer.concat([u64(req + 1000), b]), false),
      chunk(1n, REPLY_TYPE_OFFSET_HOLE, hole, false),
      chunk(2n, REPLY_TYPE_BLOCK_STATUS, status, true),
      chunk(1n, REPLY_TYPE_OFFSET_DATA, Buffer.concat([u64(req), a]), true),
      chunk(3n, REPLY_TYPE_ERROR, err, false),
      chunk(3n, REPLY_TYPE_NONE, Buffer.alloc(0), true),
    ]);
    for (const cut of [1, 7, 20, 1024, wire.length]) {
      const t = track();
      const into = Buffer.alloc(4096, 0xee);
      t.add(1n, { offset: req, buffer: into });
      const extents = new Map();
      t.add(2n, { offset: 0, extents });
      t.add(3n, { offset: 0 });
      const parser = new ReplyParser(t.pending, (e) => (t.fatal = e));
      deliver(parser, wire, cut);
      const got = t.results.get(1n) as Buffer;
      assert.ok(got.subarray(0, 1000).equals(a) && got.subarray(1000, 3000).equals(b), `cut ${cut}: data in place`);
      assert.ok(got.subarray(3000, 4024).every((x) => x === 0), 'the hole is zeros');
      assert.ok(got.subarray(4024).every((x) => x === 0xee), 'bytes no chunk named are left alone');
      assert.deepEqual(extents.get(2), [{ offset: 0, length: 4096, flags: 0 }, { offset: 4096, length: 8192, flags: 3 }]);
      assert.match((t.results.get(3n) as Error).message, /NBD error 22: nope/);
      assert.equal(t.fatal, null);
    }
  });

  it('a bad magic, an unknown handle or a chunk outside its request fails every request', () => {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['bad magic', Buffer.from('XXXXXXXXXXXXXXXXXXXX'), /bad reply magic/],
      ['unknown handle', simple(99n), /unknown handle 99/],
      ['data outside the request', chunk(1n, REPLY_TYPE_OFFSET_DATA, Buffer.concat([u64(5000), Buffer.alloc(100)]), true), /outside the request/],
    ];
    for (const [name, wire, why] of cases) {
      const t = track();
      t.add(1n, { offset: 0, buffer: Buffer.alloc(4096) });
      t.add(2n, {});
      const parser = new ReplyParser(t.pending, (e) => (t.fatal = e));
      parser.feed(wire);
      assert.match(String(t.fatal), why, name);
      assert.ok(t.results.get(2n) instanceof Error, `${name}: the other request failed too`);
      assert.equal(t.pending.size, 0);
    }
  });
});
