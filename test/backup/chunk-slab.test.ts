// The shared slab of chunk slots: handed out once each, freed once each.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkSlab } from '../../src/backup/repository/chunk-slab.js';

test('slots are handed out once, run out without blocking, and a double free is refused', () => {
  const slab = new ChunkSlab(4096, 3);
  const a = slab.take(100)!;
  const b = slab.take()!;
  const c = slab.take(4096)!;
  assert.equal(slab.take(), null, 'exhausted: the caller falls back to its own buffer');
  assert.equal(slab.take(4097), null, 'larger than a slot');
  assert.deepEqual([a.length, b.length, c.length], [100, 4096, 4096]);
  assert.equal(new Set([a.byteOffset, b.byteOffset, c.byteOffset]).size, 3);
  a.fill(1);
  assert.ok(b.every((x) => x === 0) && c.every((x) => x === 0), 'slots do not overlap');
  slab.release(b);
  assert.equal(slab.idle, 1);
  assert.throws(() => slab.release(b), /released twice/);
  slab.release(new Uint8Array(10)); // not a slot: ignored
  slab.release(a.subarray(1)); // not the start of a slot: ignored
  assert.equal(slab.idle, 1);
  assert.equal(slab.take()!.byteOffset, b.byteOffset, 'the freed slot is reused');
});
