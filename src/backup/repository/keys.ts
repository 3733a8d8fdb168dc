// Key material. A repository has one random 32-byte master key; the keys that
// encrypt objects, derive chunk ids and authenticate the config are derived
// from it with HKDF, so no key serves two algorithms. The master key is stored
// only wrapped (AES-256-GCM) under a key-encryption key that scrypt derives
// from a passphrase or a key file, once per key slot.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scrypt } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export type RepositorySecret = { readonly passphrase: string } | { readonly keyFile: Uint8Array };
export type SecretKind = 'passphrase' | 'keyfile';

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** 128 MiB and 0.3-0.6 s per attempt on a 2-core VM: costly to guess, cheap enough to open. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

export interface RepositoryKeys {
  /** AES-256-GCM key for chunks and every sealed object. */
  readonly encKey: Buffer;
  /** HMAC-SHA256 key that turns plaintext into a chunk id. */
  readonly idKey: Buffer;
  /** HMAC-SHA256 key over the config's parameters. */
  readonly macKey: Buffer;
}

export const MASTER_KEY_BYTES = 32;
const NONCE = 12;
const TAG = 16;

/** Reads a key file; its bytes are the secret (at least 16 of them). */
export async function secretFromKeyFile(path: string): Promise<RepositorySecret> {
  return { keyFile: await readFile(path) };
}

export function secretKind(secret: RepositorySecret): SecretKind {
  return 'passphrase' in secret ? 'passphrase' : 'keyfile';
}

function secretBytes(secret: RepositorySecret): Buffer {
  if ('passphrase' in secret) {
    if (secret.passphrase.length === 0) throw new Error('the repository passphrase is empty');
    // NFKC so the same passphrase typed on different keyboards derives the same key.
    return Buffer.from(secret.passphrase.normalize('NFKC'), 'utf8');
  }
  if (secret.keyFile.length < 16) throw new Error('a repository key file must hold at least 16 bytes');
  return Buffer.from(secret.keyFile);
}

export function validateScrypt(params: ScryptParams): void {
  const { N, r, p } = params;
  if (!Number.isInteger(N) || N < 2 || (N & (N - 1)) !== 0 || N > 2 ** 24) throw new Error(`scrypt N must be a power of two up to 2^24, got ${N}`);
  if (!Number.isInteger(r) || r < 1 || r > 32) throw new Error(`scrypt r out of range: ${r}`);
  if (!Number.isInteger(p) || p < 1 || p > 16) throw new Error(`scrypt p out of range: ${p}`);
}

/** The key-encryption key of one slot. scrypt runs on libuv's pool, off the event loop. */
export function deriveKek(secret: RepositorySecret, params: ScryptParams, salt: Uint8Array): Promise<Buffer> {
  validateScrypt(params);
  const input = secretBytes(secret);
  const maxmem = 128 * params.N * params.r * params.p + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(input, salt, 32, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) => {
      input.fill(0);
      if (err) reject(err);
      else resolve(key);
    });
  });
}

export function wrapKey(kek: Uint8Array, key: Uint8Array, aad: Uint8Array): { nonce: Buffer; wrapped: Buffer } {
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', kek, nonce);
  c.setAAD(aad);
  const wrapped = Buffer.concat([c.update(key), c.final(), c.getAuthTag()]);
  return { nonce, wrapped };
}

/** The unwrapped key, or null when this KEK (or the slot) is not the right one. */
export function unwrapKey(kek: Uint8Array, nonce: Uint8Array, wrapped: Uint8Array, aad: Uint8Array): Buffer | null {
  if (nonce.length !== NONCE || wrapped.length !== MASTER_KEY_BYTES + TAG) return null;
  const d = createDecipheriv('aes-256-gcm', kek, nonce);
  d.setAAD(aad);
  d.setAuthTag(wrapped.subarray(MASTER_KEY_BYTES));
  const out = d.update(wrapped.subarray(0, MASTER_KEY_BYTES));
  try {
    d.final();
    return out;
  } catch {
    out.fill(0);
    return null;
  }
}

export function deriveKeys(master: Uint8Array, repositoryId: string): RepositoryKeys {
  const sub = (info: string): Buffer => Buffer.from(hkdfSync('sha256', master, Buffer.from(repositoryId), Buffer.from(info), 32));
  return {
    encKey: sub('bulwark backup repository v1: object encryption'),
    idKey: sub('bulwark backup repository v1: chunk id'),
    macKey: sub('bulwark backup repository v1: config mac'),
  };
}
