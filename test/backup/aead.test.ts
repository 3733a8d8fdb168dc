// The data path's AES-256-GCM: the bulwark-aead binding must be the one in
// use (a silent fallback would cost 4x the CPU), and its bytes must be plain
// AES-256-GCM, interchangeable with node:crypto's, in both directions.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { aeadImplementation, gcmOpen, gcmSealInto, GCM_TAG } from '../../src/backup/repository/aead.js';

const key = randomBytes(32);
const aad = Buffer.from('bulwark.chunk.v1\0test');

test('the bulwark-aead binding is built and loaded', () => {
  assert.match(aeadImplementation(), /^bulwark-aead, EVP into caller buffers \(OpenSSL 3\./);
});

for (const size of [0, 1, 4095, 1024 * 1024 + 17]) {
  test(`sealed by the binding opens with node:crypto and back (${size} bytes)`, () => {
    const plain = randomBytes(size);
    const nonce = randomBytes(12);
    const out = Buffer.alloc(size + GCM_TAG);
    gcmSealInto(key, nonce, aad, plain, out);
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAAD(aad);
    d.setAuthTag(out.subarray(size));
    assert.ok(Buffer.concat([d.update(out.subarray(0, size)), d.final()]).equals(plain));

    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(plain), c.final()]);
    assert.ok(ct.equals(out.subarray(0, size)), 'same key and nonce give the same ciphertext');
    const opened = gcmOpen(key, nonce, aad, ct, c.getAuthTag());
    assert.ok(opened && Buffer.from(opened).equals(plain));
  });
}

test('a flipped bit, a wrong AAD or a wrong key is refused with no plaintext', () => {
  const plain = randomBytes(70_000);
  const nonce = randomBytes(12);
  const out = Buffer.alloc(plain.length + GCM_TAG);
  gcmSealInto(key, nonce, aad, plain, out);
  const ct = out.subarray(0, plain.length);
  const tag = out.subarray(plain.length);
  const flipped = Buffer.from(ct);
  flipped[12_345]! ^= 0x10;
  assert.equal(gcmOpen(key, nonce, aad, flipped, tag), null);
  assert.equal(gcmOpen(key, nonce, Buffer.from('other'), ct, tag), null);
  assert.equal(gcmOpen(randomBytes(32), nonce, aad, ct, tag), null);
  assert.ok(gcmOpen(key, nonce, aad, ct, tag));
});

test('bad arguments are refused, not read out of bounds', () => {
  assert.throws(() => gcmSealInto(key, randomBytes(12), aad, randomBytes(10), Buffer.alloc(10)), RangeError);
  assert.throws(() => gcmSealInto(key.subarray(0, 16), randomBytes(12), aad, randomBytes(10), Buffer.alloc(26)), /key must be 32 bytes/);
  assert.throws(() => gcmOpen(key, randomBytes(8), aad, randomBytes(10), randomBytes(16)), /nonce must be 12 bytes/);
  assert.throws(() => gcmOpen(key, randomBytes(12), aad, randomBytes(10), randomBytes(15)), /tag must be 16 bytes/);
});
