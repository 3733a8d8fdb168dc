// The `config` object: the one plaintext object of a repository. It says how
// to read everything else (format version, chunk size, algorithms) and holds
// the master key wrapped once per key slot. Its parameters are authenticated
// by an HMAC under a key derived from the master key, so they cannot be edited
// (say, to a different chunk size) without the edit being detected on open.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ChunkIdAlgorithm } from './chunk-format.js';
import { AuthError, RepositoryFormatError, WrongKeyError } from './errors.js';
import {
  deriveKek,
  deriveKeys,
  MASTER_KEY_BYTES,
  secretKind,
  unwrapKey,
  validateScrypt,
  wrapKey,
  type RepositoryKeys,
  type RepositorySecret,
  type ScryptParams,
  type SecretKind,
} from './keys.js';

export const CONFIG_KEY = 'config';
export const FORMAT = 'bulwark-backup-repository';
// 2: chunks live in packs located through the index (1 stored one object per chunk; never deployed, not read).
export const FORMAT_VERSION = 2;

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);

const KeySlotSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  kind: z.enum(['passphrase', 'keyfile']),
  kdf: z.object({ name: z.literal('scrypt'), N: z.number().int(), r: z.number().int(), p: z.number().int(), salt: b64 }),
  nonce: b64,
  wrapped: b64,
  createdAt: z.string(),
});

const ConfigSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(FORMAT_VERSION),
  repositoryId: z.string().regex(/^[0-9a-f-]{36}$/),
  createdAt: z.string(),
  chunker: z.object({ kind: z.literal('fixed'), size: z.number().int() }),
  compression: z.object({ algorithm: z.literal('zstd'), level: z.number().int().min(-7).max(22) }),
  encryption: z.object({ cipher: z.literal('aes-256-gcm'), chunkId: z.enum(['hmac-sha256', 'blake3-keyed']), keyDerivation: z.literal('hkdf-sha256') }),
  keySlots: z.array(KeySlotSchema).min(1),
  mac: b64,
});

export type KeySlot = z.infer<typeof KeySlotSchema>;
export type RepositoryConfig = z.infer<typeof ConfigSchema>;

export const MIN_CHUNK = 64 * 1024;
export const MAX_CHUNK = 64 * 1024 * 1024;

export function validateChunkSize(size: number): void {
  if (!Number.isInteger(size) || size < MIN_CHUNK || size > MAX_CHUNK || size % 4096 !== 0) {
    throw new Error(`chunk size must be a multiple of 4 KiB between 64 KiB and 64 MiB, got ${size}`);
  }
}

/** The authenticated parameters, in a fixed order (key slots carry their own tags). */
function macInput(c: Omit<RepositoryConfig, 'keySlots' | 'mac'>): Buffer {
  return Buffer.from(
    JSON.stringify([
      c.format,
      c.version,
      c.repositoryId,
      c.createdAt,
      c.chunker.kind,
      c.chunker.size,
      c.compression.algorithm,
      c.compression.level,
      c.encryption.cipher,
      c.encryption.chunkId,
      c.encryption.keyDerivation,
    ]),
  );
}

function slotAad(repositoryId: string, slotId: string, kind: SecretKind): Buffer {
  return Buffer.from(`bulwark.keyslot.v1\0${repositoryId}\0${slotId}\0${kind}`);
}

export async function makeSlot(repositoryId: string, master: Uint8Array, secret: RepositorySecret, params: ScryptParams): Promise<KeySlot> {
  validateScrypt(params);
  const id = randomBytes(8).toString('hex');
  const kind = secretKind(secret);
  const salt = randomBytes(32);
  const kek = await deriveKek(secret, params, salt);
  const { nonce, wrapped } = wrapKey(kek, master, slotAad(repositoryId, id, kind));
  kek.fill(0);
  return {
    id,
    kind,
    kdf: { name: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64') },
    nonce: nonce.toString('base64'),
    wrapped: wrapped.toString('base64'),
    createdAt: new Date().toISOString(),
  };
}

export interface NewConfigParams {
  readonly chunkSize: number;
  readonly compressionLevel: number;
  readonly chunkId: ChunkIdAlgorithm;
  readonly scrypt: ScryptParams;
}

export async function createConfig(secret: RepositorySecret, params: NewConfigParams): Promise<{ config: RepositoryConfig; master: Buffer }> {
  validateChunkSize(params.chunkSize);
  const master = randomBytes(MASTER_KEY_BYTES);
  const base = {
    format: FORMAT,
    version: FORMAT_VERSION,
    repositoryId: randomUUID(),
    createdAt: new Date().toISOString(),
    chunker: { kind: 'fixed', size: params.chunkSize },
    compression: { algorithm: 'zstd', level: params.compressionLevel },
    encryption: { cipher: 'aes-256-gcm', chunkId: params.chunkId, keyDerivation: 'hkdf-sha256' },
  } as const;
  const keys = deriveKeys(master, base.repositoryId);
  const slot = await makeSlot(base.repositoryId, master, secret, params.scrypt);
  const mac = createHmac('sha256', keys.macKey).update(macInput(base)).digest('base64');
  const config = ConfigSchema.parse({ ...base, keySlots: [slot], mac });
  return { config, master };
}

export function encodeConfig(config: RepositoryConfig): Uint8Array {
  return Buffer.from(`${JSON.stringify(config, null, 2)}\n`);
}

export function parseConfig(bytes: Uint8Array, location: string): RepositoryConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new RepositoryFormatError(`${location}: the config object is not JSON`);
  }
  if (typeof raw === 'object' && raw !== null && 'format' in raw && raw.format === FORMAT && 'version' in raw && raw.version !== FORMAT_VERSION) {
    throw new RepositoryFormatError(`${location}: repository format version ${String(raw.version)} is not supported (this build reads ${FORMAT_VERSION})`);
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) throw new RepositoryFormatError(`${location}: not a Bulwark backup repository config (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  validateChunkSize(parsed.data.chunker.size);
  return parsed.data;
}

/**
 * Tries the slots made for this kind of secret. Only "no slot opens" is
 * reported, never which step failed, so the config answers no other question.
 */
export async function unlockConfig(config: RepositoryConfig, secret: RepositorySecret, location: string): Promise<{ keys: RepositoryKeys; master: Buffer; slotId: string }> {
  const kind = secretKind(secret);
  for (const slot of config.keySlots) {
    if (slot.kind !== kind) continue;
    const kek = await deriveKek(secret, slot.kdf, Buffer.from(slot.kdf.salt, 'base64'));
    const master = unwrapKey(kek, Buffer.from(slot.nonce, 'base64'), Buffer.from(slot.wrapped, 'base64'), slotAad(config.repositoryId, slot.id, kind));
    kek.fill(0);
    if (!master) continue;
    const keys = deriveKeys(master, config.repositoryId);
    const expected = createHmac('sha256', keys.macKey).update(macInput(config)).digest();
    const actual = Buffer.from(config.mac, 'base64');
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw new AuthError(CONFIG_KEY, 'the repository parameters were altered');
    }
    return { keys, master, slotId: slot.id };
  }
  throw new WrongKeyError(location);
}
