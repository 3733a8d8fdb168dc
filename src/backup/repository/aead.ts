// AES-256-GCM for the data path. The system's libcrypto through the small
// bulwark-aead binding when it is built (about 4x faster here than the OpenSSL
// bundled into node, ADR 0009), else node:crypto. Both produce and accept the
// same bytes, so the choice is per process and never recorded in the repository.
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
  return native ? `system libcrypto (${native.version()})` : `node:crypto (OpenSSL ${process.versions.openssl})`;
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

/** The plaintext, or null when the tag does not authenticate (no unauthenticated byte is returned). */
export function gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
  if (native) {
    // Its own ArrayBuffer (transferable), not zero-filled: every byte is written or wiped.
    const out = new Uint8Array(Buffer.allocUnsafeSlow(ciphertext.length).buffer, 0, ciphertext.length);
    return native.open(key, nonce, aad, ciphertext, tag, out) ? out : null;
  }
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch {
    return null; // `out` is dropped here, never returned
  }
  return out;
}
