// The repository's building blocks, without a store: chunk sealing, the id
// set, the manifest's chunk table encoding, the semaphore.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { computeChunkId, openChunk, sealChunk, sealObject, openObject } from '../../src/backup/repository/chunk-format.js';
import { ChunkTable } from '../../src/backup/repository/chunk-table.js';
import { AuthError } from '../../src/backup/repository/errors.js';
import { addIdBytes, ChunkIdSet } from '../../src/backup/repository/id-set.js';
import { Semaphore } from '../../src/backup/repository/semaphore.js';
import { MiB, textLike } from './helpers.js';

const encKey = randomBytes(32);
const idKey = randomBytes(32);

describe('chunk format', () => {
  it('seals and opens; compresses text, stores random raw', () => {
    for (const [data, compressed] of [
      [textLike(MiB, 3), 1],
      [randomBytes(MiB), 0],
    ] as const) {
      const id = computeChunkId(idKey, data);
      const sealed = sealChunk(encKey, id, data, 1);
      assert.equal(sealed[0], 1);
      assert.equal(sealed[1], compressed);
      assert.ok(compressed ? sealed.length < data.length * 0.7 : sealed.length === data.length + 30);
      assert.ok(Buffer.from(openChunk(encKey, idKey, id, sealed, MiB)).equals(data));
    }
  });

  it('BLAKE3 keyed ids: the reference vector, and the tag-and-id check on open', () => {
    // BLAKE3's official test_vectors.json, input_len 0, keyed_hash.
    const key = Buffer.from('whats the Elvish word for friend');
    assert.equal(computeChunkId({ key, algorithm: 'blake3-keyed' }, Buffer.alloc(0)), '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26');
    const b3 = { key: idKey, algorithm: 'blake3-keyed' } as const;
    const data = textLike(MiB, 5);
    const id = computeChunkId(b3, data);
    assert.notEqual(id, computeChunkId(idKey, data), 'not the HMAC id');
    const sealed = sealChunk(encKey, id, data, 1);
    assert.ok(Buffer.from(openChunk(encKey, b3, id, sealed, MiB)).equals(data));
    // Checked with the other algorithm, the id does not match the content.
    assert.throws(() => openChunk(encKey, idKey, id, sealed, MiB), (err: unknown) => err instanceof AuthError && /does not match its id/.test(err.detail));
  });

  it('ids are keyed: the same bytes under another repository key get another id', () => {
    const data = textLike(4096, 9);
    assert.notEqual(computeChunkId(idKey, data), computeChunkId(randomBytes(32), data));
    assert.equal(computeChunkId(idKey, data), computeChunkId(idKey, Buffer.from(data)));
  });

  it('rejects a chunk whose content does not match its id even when the tag is valid', () => {
    // What a writer bug (sealing bytes under the wrong id) would store.
    const id = computeChunkId(idKey, Buffer.from('one'));
    const sealed = sealChunk(encKey, id, Buffer.from('two'), 1);
    assert.throws(() => openChunk(encKey, idKey, id, sealed, MiB), (err: unknown) => err instanceof AuthError && /does not match its id/.test(err.detail));
  });

  it('never inflates past the chunk size', () => {
    const data = Buffer.alloc(2 * MiB, 7); // would compress to a few bytes
    data[0] = 1;
    const id = computeChunkId(idKey, data);
    const sealed = sealChunk(encKey, id, data, 1);
    assert.throws(() => openChunk(encKey, idKey, id, sealed, MiB), AuthError);
  });

  it('sealed objects are bound to their kind and name', () => {
    const sealed = sealObject(encKey, 'manifest', 'b1', Buffer.from('{}'));
    assert.equal(Buffer.from(openObject(encKey, 'manifest', 'b1', 'manifests/b1', sealed)).toString(), '{}');
    assert.throws(() => openObject(encKey, 'manifest', 'b2', 'manifests/b2', sealed), AuthError);
    assert.throws(() => openObject(encKey, 'index', 'b1', 'index/b1', sealed), AuthError);
    assert.throws(() => openObject(randomBytes(32), 'manifest', 'b1', 'manifests/b1', sealed), AuthError);
  });
});

describe('ChunkIdSet', () => {
  it('adds, finds, grows and round-trips through bytes', () => {
    const set = new ChunkIdSet(4);
    const ids = Array.from({ length: 5000 }, () => randomBytes(32).toString('hex'));
    for (const id of ids) assert.equal(set.add(id), true);
    assert.equal(set.add(ids[0]!), false);
    assert.equal(set.size, ids.length);
    for (const id of ids) assert.ok(set.has(id));
    assert.ok(!set.has(randomBytes(32).toString('hex')));
    const copy = new ChunkIdSet();
    addIdBytes(copy, set.toBytes());
    assert.deepEqual([...copy].sort(), [...ids].sort());
  });
});

describe('ChunkTable', () => {
  it('encodes runs of data slots; everything else decodes as zero', () => {
    const t = new ChunkTable(10 * MiB + 5, MiB);
    assert.equal(t.slots, 11);
    assert.equal(t.slotLength(10), 5);
    const ids = new Map<number, string>();
    for (const i of [0, 1, 2, 5, 9, 10]) {
      const id = randomBytes(32).toString('hex');
      ids.set(i, id);
      t.setData(i, id);
    }
    for (const i of [3, 4, 6, 7, 8]) t.setZero(i);
    const bytes = t.encode();
    assert.equal(bytes.length, 3 * 8 + 6 * 32); // runs [0,3) [5,6) [9,11)
    const d = ChunkTable.decode(10 * MiB + 5, MiB, bytes);
    for (let i = 0; i < 11; i++) assert.deepEqual(d.get(i), ids.has(i) ? { kind: 'data', id: ids.get(i) } : { kind: 'zero' });
    assert.throws(() => ChunkTable.decode(MiB, MiB, bytes), /malformed/);
  });
});

describe('Semaphore', () => {
  it('bounds what is in flight, first come first served', async () => {
    const s = new Semaphore(10);
    const order: string[] = [];
    await s.acquire(8);
    const big = s.acquire(5).then(() => order.push('big'));
    const small = s.acquire(1).then(() => order.push('small')); // fits, but must not overtake
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, []);
    s.release(8);
    await Promise.all([big, small]);
    assert.deepEqual(order, ['big', 'small']);
    s.release(5);
    s.release(1);
    await s.acquire(50); // above capacity: clamped, waits for all of it
    s.release(50);
  });
});
