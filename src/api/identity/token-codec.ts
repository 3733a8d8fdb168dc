// Stateless tokens: AES-256-GCM over a small binary payload, base64url.
// GCM both hides the payload (tokens stay opaque, like keystone's fernet tokens)
// and authenticates it, so any process holding the same key can validate a
// token without a shared store.
//
// Wire format (all integers big-endian):
//   token  = base64url( version:u8 | iv:12 | ciphertext | tag:16 ), version byte is GCM AAD
//   plain  = flags:u8 | user:16 | project:16 | roles:u8 | issuedMs:u64 | expiresMs:u64
//            | audit:16 [ | parentAudit:16 ]
//   flags  = bit0 project-scoped, bit1 has parentAudit, bit2 method password, bit3 method token
//   roles  = bit i set <=> ROLE_NAMES[i] assigned
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

import { ROLE_NAMES, type RoleName } from './directory.js';
import { bytesToId, idToBytes } from './ids.js';

export type AuthMethod = 'password' | 'token';

export interface TokenPayload {
  userId: string;
  /** null for an unscoped token. */
  projectId: string | null;
  /** Roles assigned on the project when the token was issued (not expanded). */
  roles: RoleName[];
  methods: AuthMethod[];
  issuedAtMs: number;
  expiresAtMs: number;
  /** keystone-style audit id: 16 random bytes, base64url (22 chars); also the token's unique id. */
  auditId: string;
  /** Audit id of the token this one was rescoped from (keystone's audit chain). */
  parentAuditId: string | null;
}

const VERSION = 0x01;
const IV_LEN = 12;
const TAG_LEN = 16;
const BASE_LEN = 1 + 16 + 16 + 1 + 8 + 8 + 16;
const MAX_TOKEN_CHARS = 512;
const B64URL = /^[A-Za-z0-9_-]+$/;

const F_SCOPED = 1;
const F_PARENT = 2;
const F_PASSWORD = 4;
const F_TOKEN = 8;

export const MIN_TOKEN_KEY_BYTES = 32;

export function newAuditId(): string {
  return randomBytes(16).toString('base64url');
}

function auditBytes(id: string): Buffer {
  const b = Buffer.from(id, 'base64url');
  if (b.length !== 16 || !B64URL.test(id)) throw new Error('token: bad audit id');
  return b;
}

function idBytes(id: string): Buffer {
  const b = idToBytes(id);
  if (!b) throw new Error(`token: id ${id} is not 32 hex digits`);
  return b;
}

export class TokenCodec {
  private readonly aesKey: Buffer;

  constructor(secret: Uint8Array) {
    if (secret.length < MIN_TOKEN_KEY_BYTES) throw new Error(`token key must be at least ${MIN_TOKEN_KEY_BYTES} bytes`);
    // HKDF so the key file can be any length and is never used raw; the info
    // string binds the derived key to this format version.
    this.aesKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'bulwark token v1 aes-256-gcm', 32));
  }

  seal(p: TokenPayload): string {
    const plain = Buffer.alloc(BASE_LEN + (p.parentAuditId ? 16 : 0));
    let flags = 0;
    if (p.projectId) flags |= F_SCOPED;
    if (p.parentAuditId) flags |= F_PARENT;
    if (p.methods.includes('password')) flags |= F_PASSWORD;
    if (p.methods.includes('token')) flags |= F_TOKEN;
    plain[0] = flags;
    idBytes(p.userId).copy(plain, 1);
    if (p.projectId) idBytes(p.projectId).copy(plain, 17);
    plain[33] = ROLE_NAMES.reduce((bits, r, i) => (p.roles.includes(r) ? bits | (1 << i) : bits), 0);
    plain.writeBigUInt64BE(BigInt(p.issuedAtMs), 34);
    plain.writeBigUInt64BE(BigInt(p.expiresAtMs), 42);
    auditBytes(p.auditId).copy(plain, 50);
    if (p.parentAuditId) auditBytes(p.parentAuditId).copy(plain, 66);

    const header = Buffer.from([VERSION]);
    const iv = randomBytes(IV_LEN);
    const cipher = createCipheriv('aes-256-gcm', this.aesKey, iv, { authTagLength: TAG_LEN });
    cipher.setAAD(header);
    const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([header, iv, ct, cipher.getAuthTag()]).toString('base64url');
  }

  /** The payload, or null for anything not sealed by this key (expiry is the caller's check). */
  open(token: string): TokenPayload | null {
    if (token.length > MAX_TOKEN_CHARS || !B64URL.test(token)) return null;
    const raw = Buffer.from(token, 'base64url');
    if (raw.length < 1 + IV_LEN + BASE_LEN + TAG_LEN || raw[0] !== VERSION) return null;
    const iv = raw.subarray(1, 1 + IV_LEN);
    const ct = raw.subarray(1 + IV_LEN, raw.length - TAG_LEN);
    const tag = raw.subarray(raw.length - TAG_LEN);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.aesKey, iv, { authTagLength: TAG_LEN });
      decipher.setAAD(raw.subarray(0, 1));
      decipher.setAuthTag(tag);
      plain = Buffer.concat([decipher.update(ct), decipher.final()]);
    } catch {
      return null;
    }
    const flags = plain[0]!;
    const hasParent = (flags & F_PARENT) !== 0;
    if (plain.length !== BASE_LEN + (hasParent ? 16 : 0)) return null;
    const roleBits = plain[33]!;
    const methods: AuthMethod[] = [];
    if (flags & F_PASSWORD) methods.push('password');
    if (flags & F_TOKEN) methods.push('token');
    return {
      userId: bytesToId(plain.subarray(1, 17)),
      projectId: flags & F_SCOPED ? bytesToId(plain.subarray(17, 33)) : null,
      roles: ROLE_NAMES.filter((_, i) => (roleBits & (1 << i)) !== 0),
      methods,
      issuedAtMs: Number(plain.readBigUInt64BE(34)),
      expiresAtMs: Number(plain.readBigUInt64BE(42)),
      auditId: plain.subarray(50, 66).toString('base64url'),
      parentAuditId: hasParent ? plain.subarray(66, 82).toString('base64url') : null,
    };
  }
}
