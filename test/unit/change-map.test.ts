import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeChangeMap } from '../../src/roles/volume/change-map.js';

const MiB = 1024 * 1024;
// Chain: top (depth 1), mid (2), base (3). Layout of a 8 MiB volume:
// [0,1) depth 3 data, [1,2) depth 1 data, [2,3) depth 2 data, [3,4) depth 1 zero
// (discarded after the base), [4,8) depth 0 (never written).
const depth = [
  { offset: 0, length: MiB, flags: 3 },
  { offset: MiB, length: MiB, flags: 1 },
  { offset: 2 * MiB, length: MiB, flags: 2 },
  { offset: 3 * MiB, length: MiB, flags: 1 },
  { offset: 4 * MiB, length: 4 * MiB, flags: 0 },
];
const alloc = [
  { offset: 0, length: 3 * MiB, flags: 0 },
  { offset: 3 * MiB, length: 5 * MiB, flags: 3 },
];
const chain = ['top', 'mid', 'base'];

describe('change map', () => {
  it('a full backup reads every allocated non-zero extent', () => {
    const m = mergeChangeMap(8 * MiB, depth, alloc, chain, null);
    assert.equal(m.tracking, 'allocation-depth');
    assert.deepEqual(m.extents, [
      { offset: 0, length: 3 * MiB, kind: 'changed' },
      { offset: 3 * MiB, length: 5 * MiB, kind: 'zero' },
    ]);
    assert.equal(m.changedBytes, 3 * MiB);
  });

  it('an incremental over base "mid" reads only what the top layer wrote', () => {
    const m = mergeChangeMap(8 * MiB, depth, alloc, chain, 'mid');
    assert.deepEqual(m.extents, [
      { offset: 0, length: MiB, kind: 'unchanged' },
      { offset: MiB, length: MiB, kind: 'changed' },
      { offset: 2 * MiB, length: MiB, kind: 'unchanged' },
      { offset: 3 * MiB, length: 5 * MiB, kind: 'zero' },
    ]);
    assert.equal(m.changedBytes, MiB);
  });

  it('falls back to reading everything when the base left the chain', () => {
    const m = mergeChangeMap(8 * MiB, depth, alloc, chain, 'gone');
    assert.equal(m.tracking, 'full-read');
    assert.equal(m.changedBytes, 3 * MiB);
  });
});
