// AES-256-GCM for the data path. The small bulwark-aead binding calls
// OpenSSL's EVP interface on buffers the caller provides (the sealed chunk's
// own slot); node:crypto's Cipheriv allocates a fresh output buffer for every
// update, which with 1 MiB chunks cost ~0.8 ms/MiB of page faults and copies
// on top of the cipher's 0.25 (ADR 0009). In a node process the binding's
// EVP calls bind to the OpenSSL that node itself exports, so both paths run
// the same cipher code and produce the same bytes; node:crypto is the fallback
// when the binding is not built.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { createRequire } from 'node:module';

export const GCM_TAG = 16;

interface NativeAead {
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
  version(): string;
}

function loadNative(): NativeAead | null {
  if (process.env['BULWARK_AEAD'] === 'node') return null; // forces the fallback (tests of both paths)
  try {
    return createRequire(import.meta.url)('bulwark-aead') as NativeAead;
  } catch {
    return null;
  }
}

const native = loadNative();

/** Which implementation this process uses, for logs and the bench. */
export function aeadImplementation(): string {
  return native ? `bulwark-aead, EVP into caller buffers (${native.version()})` : `node:crypto (OpenSSL ${process.versions.openssl})`;
}

/** Encrypts `plaintext` into `out`: ciphertext, then the tag (out.length = plaintext.length + 16). */
export function gcmSealInto(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
  if (out.length !== plaintext.length + GCM_TAG) throw new RangeError('GCM output must be the plaintext length + 16');
  if (native) return native.seal(key, nonce, aad, plaintext, out);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const a = cipher.update(plaintext);
  out.set(a, 0);
  const b = cipher.final();
  out.set(b, a.length);
  out.set(cipher.getAuthTag(), a.length + b.length);
}

/**
 * The plaintext, or null when the tag does not authenticate (no unauthenticated
 * byte is returned). With `into` (at least ciphertext.length bytes) the
 * plaintext is written there and a view of it returned; on failure it is wiped.
 */
export function gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, into?: Uint8Array): Uint8Array | null {
  if (into && into.length < ciphertext.length) throw new RangeError('GCM output buffer is shorter than the ciphertext');
  if (native) {
    // Its own ArrayBuffer (transferable), not zero-filled: every byte is written or wiped.
    const out = into ? into.subarray(0, ciphertext.length) : new Uint8Array(Buffer.allocUnsafeSlow(ciphertext.length).buffer, 0, ciphertext.length);
    return native.open(key, nonce, aad, ciphertext, tag, out) ? out : null;
  }
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch {
    out.fill(0);
    return null; // `out` is dropped here, never returned
  }
  if (!into) return out;
  into.set(out);
  return into.subarray(0, out.length);
}
