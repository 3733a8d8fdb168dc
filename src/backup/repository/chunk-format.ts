// The bytes of chunk objects and of the repository's other sealed objects.
// Pure functions over keys and bytes: the worker threads run them for chunks,
// the main thread for the small metadata objects.
//
// chunk object  = version(1) | compression(1) | nonce(12) | AES-256-GCM ciphertext | tag(16)
//   AAD         = "bulwark.chunk.v1" | 0 | version | compression | chunk id (32 bytes)
// sealed object = version(1) | nonce(12) | ciphertext | tag(16)
//   AAD         = "bulwark.<kind>.v1" | 0 | object name
// Binding the id (or the name) into the AAD is what makes a swapped object fail
// authentication; binding the header makes a flipped compression flag fail too.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { gcmOpen, gcmSealInto } from './aead.js';
import { AuthError } from './errors.js';
import { zstdCompress, zstdDecompress } from './zstd.js';

export const CHUNK_VERSION = 1;
export const COMPRESSION_NONE = 0;
export const COMPRESSION_ZSTD = 1;
const NONCE = 12;
const TAG = 16;
const CHUNK_HEADER = 2;
const CHUNK_OVERHEAD = CHUNK_HEADER + NONCE + TAG;
const OBJECT_VERSION = 1;
const ID_HEX = /^[0-9a-f]{64}$/;

export function isChunkId(id: string): boolean {
  return ID_HEX.test(id);
}

export function chunkKey(id: string): string {
  return `chunks/${id}`;
}

/** HMAC-SHA256 under the id key: equal plaintexts dedup, yet ids reveal no content hash. */
export function computeChunkId(idKey: Uint8Array, plaintext: Uint8Array): string {
  return createHmac('sha256', idKey).update(plaintext).digest('hex');
}

function chunkAad(id: string, version: number, compression: number): Buffer {
  return Buffer.concat([Buffer.from('bulwark.chunk.v1\0'), Buffer.from([version, compression]), Buffer.from(id, 'hex')]);
}

export function sealChunk(encKey: Uint8Array, id: string, plaintext: Uint8Array, level: number): Uint8Array {
  const packed = zstdCompress(plaintext, level); // a scratch view: encrypted right away
  const compression = packed ? COMPRESSION_ZSTD : COMPRESSION_NONE;
  const body = packed ?? plaintext;
  // Its own ArrayBuffer (transferable back to the main thread), not zero-filled: every byte is written below.
  const out = new Uint8Array(Buffer.allocUnsafeSlow(CHUNK_OVERHEAD + body.length).buffer);
  const nonce = randomBytes(NONCE);
  out[0] = CHUNK_VERSION;
  out[1] = compression;
  out.set(nonce, CHUNK_HEADER);
  gcmSealInto(encKey, nonce, chunkAad(id, CHUNK_VERSION, compression), body, out.subarray(CHUNK_HEADER + NONCE));
  return out;
}

/**
 * Authenticates and opens a chunk object stored under `id`: the GCM tag (with
 * the id as AAD) and then, unless `checkId` is false, the id itself,
 * recomputed over the plaintext. Throws AuthError on any mismatch; never
 * returns bytes before the checks pass. The tag alone already proves the
 * object was sealed for this id by a holder of the repository key (the id key
 * derives from the same master key); recomputing the id also catches a writer
 * that sealed the wrong bytes under an id. Restores skip it (a third of their
 * CPU), verify keeps it.
 */
export function openChunk(encKey: Uint8Array, idKey: Uint8Array, id: string, sealed: Uint8Array, maxSize: number, checkId = true): Uint8Array {
  const key = chunkKey(id);
  if (sealed.length < CHUNK_OVERHEAD) throw new AuthError(key, 'object too short');
  const version = sealed[0]!;
  const compression = sealed[1]!;
  if (version !== CHUNK_VERSION) throw new AuthError(key, `unknown chunk version ${version}`);
  const body = decrypt(encKey, sealed.subarray(CHUNK_HEADER), chunkAad(id, version, compression), key);
  let plain: Uint8Array;
  if (compression === COMPRESSION_ZSTD) {
    try {
      plain = zstdDecompress(body, maxSize);
    } catch (err) {
      throw new AuthError(key, `authenticated but undecodable (${err instanceof Error ? err.message : String(err)})`);
    }
  } else if (compression === COMPRESSION_NONE) {
    plain = body;
  } else {
    throw new AuthError(key, `unknown compression ${compression}`);
  }
  if (!checkId) return plain;
  const actual = Buffer.from(computeChunkId(idKey, plain), 'hex');
  if (!timingSafeEqual(actual, Buffer.from(id, 'hex'))) throw new AuthError(key, 'content does not match its id');
  return plain;
}

function decrypt(encKey: Uint8Array, nonceCtTag: Uint8Array, aad: Uint8Array, key: string): Uint8Array {
  if (nonceCtTag.length < NONCE + TAG) throw new AuthError(key, 'object too short');
  const nonce = nonceCtTag.subarray(0, NONCE);
  const ct = nonceCtTag.subarray(NONCE, nonceCtTag.length - TAG);
  const tag = nonceCtTag.subarray(nonceCtTag.length - TAG);
  const out = gcmOpen(encKey, nonce, aad, ct, tag);
  if (!out) throw new AuthError(key, 'tag mismatch (damaged, tampered with or swapped)');
  return out;
}

function objectAad(kind: string, name: string): Buffer {
  return Buffer.from(`bulwark.${kind}.v1\0${name}`);
}

/** Seals a metadata object (manifest, index, lock, gc record) bound to its kind and name. */
export function sealObject(encKey: Uint8Array, kind: string, name: string, plaintext: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE);
  const out = Buffer.allocUnsafe(1 + NONCE + plaintext.length + TAG);
  out[0] = OBJECT_VERSION;
  nonce.copy(out, 1);
  gcmSealInto(encKey, nonce, objectAad(kind, name), plaintext, out.subarray(1 + NONCE));
  return out;
}

export function openObject(encKey: Uint8Array, kind: string, name: string, key: string, sealed: Uint8Array): Uint8Array {
  if (sealed.length < 1 || sealed[0] !== OBJECT_VERSION) throw new AuthError(key, 'unknown object version');
  return decrypt(encKey, sealed.subarray(1), objectAad(kind, name), key);
}
