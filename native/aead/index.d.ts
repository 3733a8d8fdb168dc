/** Writes the ciphertext then the 16-byte tag into `out` (plaintext.length + 16 bytes). */
export function seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
/** Decrypts into `out` (ciphertext.length bytes); false (and `out` wiped) when the tag does not authenticate. */
export function open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
/** The libcrypto this binding runs on, e.g. "OpenSSL 3.0.17 1 Jul 2025". */
export function version(): string;
