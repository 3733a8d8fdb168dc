// QgaFramer against the exact bytes qemu-ga 7.2 writes (captured from the test guest).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QgaFramer, type QgaFrame } from '../../src/drivers/qga/framer.js';

const FF = Buffer.from([0xff]);
/** What the agent writes for the 0xFF byte a client sends. */
const STRAY_FF = '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n';

function bytes(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

function feedAll(framer: QgaFramer, ...chunks: (string | Buffer)[]): QgaFrame[] {
  return chunks.flatMap((c) => framer.feed(typeof c === 'string' ? Buffer.from(c, 'utf8') : c));
}

/** Feeds `input` cut at every possible pair of points; every split must give the same frames. */
function assertSplitInvariant(input: Buffer, expected: QgaFrame[]): void {
  for (let a = 0; a <= input.length; a++) {
    for (let b = a; b <= input.length; b += 7) {
      const framer = new QgaFramer();
      const got = feedAll(framer, input.subarray(0, a), input.subarray(a, b), input.subarray(b));
      assert.deepEqual(got, expected, `split at ${a}/${b}`);
      assert.equal(framer.bufferedBytes, 0);
    }
  }
}

describe('QgaFramer', () => {
  it('classifies return and error replies, with and without an echoed id', () => {
    const frames = feedAll(
      new QgaFramer(),
      '{"return": {}}\n',
      '{"return": "thawed"}\n',
      '{"return": 2}\n',
      '{"return": {}, "id": 7}\n',
      '{"error": {"class": "CommandNotFound", "desc": "Command guest-fsfreeze-freeze has been disabled: the agent is in frozen state"}}\n',
    );
    assert.deepEqual(frames, [
      { kind: 'return', return: {}, id: undefined },
      { kind: 'return', return: 'thawed', id: undefined },
      { kind: 'return', return: 2, id: undefined },
      { kind: 'return', return: {}, id: 7 },
      { kind: 'error', error: { class: 'CommandNotFound', desc: 'Command guest-fsfreeze-freeze has been disabled: the agent is in frozen state' }, id: undefined },
    ]);
  });

  it('reads the parse error the agent answers a client 0xFF with as an ordinary error', () => {
    assert.deepEqual(feedAll(new QgaFramer(), STRAY_FF), [
      { kind: 'error', error: { class: 'GenericError', desc: "JSON parse error, stray '\uFFFD'" }, id: undefined },
    ]);
  });

  it('reports the 0xFF before a guest-sync-delimited reply as a delimiter, whatever the chunking', () => {
    const input = bytes(STRAY_FF, FF, '{"return": 123}\n', '{"return": {}}\n');
    assertSplitInvariant(input, [
      { kind: 'error', error: { class: 'GenericError', desc: "JSON parse error, stray '\uFFFD'" }, id: undefined },
      { kind: 'delimiter' },
      { kind: 'return', return: 123, id: undefined },
      { kind: 'return', return: {}, id: undefined },
    ]);
  });

  it('discards a partial line cut off by 0xFF and reports it as invalid', () => {
    const input = bytes('{"return": "stale from an earlier cli', FF, '{"return": 42}\n');
    assertSplitInvariant(input, [
      { kind: 'invalid', reason: 'partial line discarded at a 0xFF delimiter', line: '{"return": "stale from an earlier cli' },
      { kind: 'delimiter' },
      { kind: 'return', return: 42, id: undefined },
    ]);
  });

  it('handles back-to-back 0xFF bytes and 0xFF right after a newline without invalid frames', () => {
    const frames = feedAll(new QgaFramer(), bytes('{"return": 1}\n', FF, FF, '{"return": 2}\n'));
    assert.deepEqual(frames, [
      { kind: 'return', return: 1, id: undefined },
      { kind: 'delimiter' },
      { kind: 'delimiter' },
      { kind: 'return', return: 2, id: undefined },
    ]);
  });

  it('reports garbage, non-objects and unknown objects as invalid and carries on', () => {
    const frames = feedAll(new QgaFramer(), 'garbage\n', '[1]\n', '{"event": "X"}\n', '\n  \n', '{"return": {}}\n');
    assert.equal(frames.length, 4);
    assert.equal(frames[0]?.kind, 'invalid');
    assert.match(frames[0]?.kind === 'invalid' ? frames[0].reason : '', /invalid JSON/);
    assert.deepEqual(frames[1], { kind: 'invalid', reason: 'agent message is not a JSON object', line: '[1]' });
    assert.deepEqual(frames[2], { kind: 'invalid', reason: 'unrecognised agent message (no error/return member)', line: '{"event": "X"}' });
    assert.deepEqual(frames[3], { kind: 'return', return: {}, id: undefined });
  });

  it('reassembles a reply fed one byte at a time and keeps split UTF-8 intact', () => {
    const framer = new QgaFramer();
    const input = Buffer.from('{"return": {"host-name": "Zürich ✓"}}\r\n');
    const frames: QgaFrame[] = [];
    for (let i = 0; i < input.length; i++) frames.push(...framer.feed(input.subarray(i, i + 1)));
    assert.deepEqual(frames, [{ kind: 'return', return: { 'host-name': 'Zürich ✓' }, id: undefined }]);
    assert.equal(framer.bufferedBytes, 0);
  });

  it('copies buffered bytes (the caller may reuse its buffer)', () => {
    const framer = new QgaFramer();
    const buf = Buffer.from('{"return": 1');
    framer.feed(buf);
    buf.fill(0x20);
    assert.deepEqual(framer.feed(Buffer.from('}\n')), [{ kind: 'return', return: 1, id: undefined }]);
  });

  it('drops an over-long line up to the next newline or 0xFF, then recovers', () => {
    const framer = new QgaFramer({ maxLineBytes: 32 });
    const long = `{"return": "${'x'.repeat(100)}"}`;
    const frames = feedAll(framer, long.slice(0, 50), long.slice(50), '\n', '{"return": 1}\n', long.slice(0, 60), FF, '{"return": 2}\n');
    assert.deepEqual(
      frames.map((f) => f.kind),
      ['invalid', 'return', 'invalid', 'delimiter', 'return'],
    );
    assert.match(frames[0]?.kind === 'invalid' ? frames[0].reason : '', /exceeds 32 bytes/);
    assert.deepEqual(frames[4], { kind: 'return', return: 2, id: undefined });
    assert.equal(framer.bufferedBytes, 0);
  });

  it('reset() forgets a partial line', () => {
    const framer = new QgaFramer();
    framer.feed(Buffer.from('{"return": '));
    framer.reset();
    assert.equal(framer.bufferedBytes, 0);
    assert.deepEqual(framer.feed(Buffer.from('{"return": 5}\n')), [{ kind: 'return', return: 5, id: undefined }]);
  });
});
