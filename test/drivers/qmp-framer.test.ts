import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QmpFramer, type QmpFrame } from '../../src/drivers/qmp/framer.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n';

function feedAll(framer: QmpFramer, ...chunks: (string | Buffer)[]): QmpFrame[] {
  return chunks.flatMap((c) => framer.feed(typeof c === 'string' ? Buffer.from(c, 'utf8') : c));
}

describe('QmpFramer', () => {
  it('parses the real QSD 7.2 greeting', () => {
    const [g, ...rest] = feedAll(new QmpFramer(), GREETING);
    assert.equal(rest.length, 0);
    assert.deepEqual(g, {
      kind: 'greeting',
      QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }, capabilities: ['oob'] },
    });
  });

  it('classifies return, error and event messages', () => {
    const frames = feedAll(
      new QmpFramer(),
      '{"return": {}, "id": 1}\r\n',
      '{"id": [1, 2], "error": {"class": "CommandNotFound", "desc": "The command nonexist has not been found"}}\r\n',
      '{"timestamp": {"seconds": 1795241668, "microseconds": 31880}, "event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "c2"}}\r\n',
      '{"return": [{"id": "e1", "node-name": "l2", "shutting-down": false, "type": "nbd"}], "id": "x"}\r\n',
    );
    assert.deepEqual(frames, [
      { kind: 'return', return: {}, id: 1 },
      { kind: 'error', error: { class: 'CommandNotFound', desc: 'The command nonexist has not been found' }, id: [1, 2] },
      { kind: 'event', event: 'JOB_STATUS_CHANGE', data: { status: 'created', id: 'c2' }, timestamp: { seconds: 1795241668, microseconds: 31880 } },
      { kind: 'return', return: [{ id: 'e1', 'node-name': 'l2', 'shutting-down': false, type: 'nbd' }], id: 'x' },
    ]);
  });

  it('reassembles a message split across many chunks, byte by byte', () => {
    const framer = new QmpFramer();
    const bytes = Buffer.from('{"return": {"a": "b"}, "id": 7}\r\n');
    const frames: QmpFrame[] = [];
    for (let i = 0; i < bytes.length; i++) {
      frames.push(...framer.feed(bytes.subarray(i, i + 1)));
      if (i < bytes.length - 2) assert.equal(frames.length, 0, `no frame before the newline (byte ${i})`);
    }
    assert.deepEqual(frames, [{ kind: 'return', return: { a: 'b' }, id: 7 }]);
    assert.equal(framer.bufferedBytes, 0);
  });

  it('keeps a multi-byte UTF-8 character cut between chunks intact', () => {
    const bytes = Buffer.from('{"return": "Zürich ✓", "id": 1}\n');
    const cut = bytes.indexOf(0x9c) ; // inside the 3-byte check mark
    assert.ok(cut > 0);
    const frames = feedAll(new QmpFramer(), bytes.subarray(0, cut), bytes.subarray(cut));
    assert.deepEqual(frames, [{ kind: 'return', return: 'Zürich ✓', id: 1 }]);
  });

  it('returns several messages from one chunk, in order, and buffers the tail', () => {
    const framer = new QmpFramer();
    const frames = feedAll(framer, '{"return": 1, "id": 1}\r\n{"return": 2, "id": 2}\r\n{"return": 3, "id"');
    assert.deepEqual(frames.map((f) => (f.kind === 'return' ? f.return : null)), [1, 2]);
    assert.ok(framer.bufferedBytes > 0);
    assert.deepEqual(feedAll(framer, ': 3}\r\n'), [{ kind: 'return', return: 3, id: 3 }]);
  });

  it('reports invalid JSON as a frame and carries on', () => {
    const frames = feedAll(new QmpFramer(), '{bad json\r\n[1,2]\r\n{"foo": 1}\r\n\r\n{"return": null, "id": 4}\r\n');
    assert.equal(frames.length, 4);
    assert.equal(frames[0]?.kind, 'invalid');
    assert.match(frames[0]?.kind === 'invalid' ? frames[0].reason : '', /invalid JSON/);
    assert.equal(frames[1]?.kind, 'invalid');
    assert.equal(frames[2]?.kind, 'invalid');
    assert.deepEqual(frames[3], { kind: 'return', return: null, id: 4 });
  });

  it('rejects an over-long line, then resynchronises at the next newline', () => {
    const framer = new QmpFramer({ maxLineBytes: 32 });
    const frames = feedAll(framer, '{"return": "' + 'x'.repeat(40), 'yyyy', '"}\r\n{"return": 5, "id": 5}\r\n');
    assert.equal(frames.length, 2);
    assert.equal(frames[0]?.kind, 'invalid');
    assert.deepEqual(frames[1], { kind: 'return', return: 5, id: 5 });
    assert.equal(framer.bufferedBytes, 0);
  });

  it('treats a message without id as uncorrelated (id undefined)', () => {
    const [f] = feedAll(new QmpFramer(), '{"error": {"class": "GenericError", "desc": "JSON parse error"}}\n');
    assert.deepEqual(f, { kind: 'error', error: { class: 'GenericError', desc: 'JSON parse error' }, id: undefined });
  });
});
