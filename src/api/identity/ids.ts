// Stable identifiers. Every API process derives the same ids from the same
// config (uuid v5 over a fixed namespace), so tokens minted by one process name
// users and projects that every other process knows, with no shared database.
import { createHash } from 'node:crypto';

import type { RoleName } from './directory.js';

/** Fixed namespace for all Bulwark identity ids; changing it changes every id. */
export const BULWARK_NAMESPACE = 'd04121e8-52e7-42c4-90ab-9f3f40158ab5';

/** Keystone's bootstrap domain keeps its well-known id. */
export const DEFAULT_DOMAIN_ID = 'default';
export const DEFAULT_DOMAIN_NAME = 'Default';

const HEX32 = /^[0-9a-f]{32}$/;

/** RFC 4122 version-5 UUID, rendered as keystone renders ids: 32 hex digits, no dashes. */
export function uuidV5Hex(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (ns.length !== 16) throw new Error(`bad uuid namespace ${namespace}`);
  const digest = createHash('sha1').update(ns).update(name, 'utf8').digest();
  const b = digest.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}

// NUL separators keep ("a b","c") and ("a","b c") from colliding.
export function domainId(domainName: string): string {
  return domainName === DEFAULT_DOMAIN_NAME ? DEFAULT_DOMAIN_ID : uuidV5Hex(BULWARK_NAMESPACE, `domain\0${domainName}`);
}

export function projectId(domainName: string, projectName: string): string {
  return uuidV5Hex(BULWARK_NAMESPACE, `project\0${domainId(domainName)}\0${projectName}`);
}

export function userId(domainName: string, userName: string): string {
  return uuidV5Hex(BULWARK_NAMESPACE, `user\0${domainId(domainName)}\0${userName}`);
}

export function roleId(role: RoleName): string {
  return uuidV5Hex(BULWARK_NAMESPACE, `role\0${role}`);
}

export function serviceId(type: string, name: string): string {
  return uuidV5Hex(BULWARK_NAMESPACE, `service\0${type}\0${name}`);
}

export function endpointId(type: string, iface: string, urlTemplate: string): string {
  return uuidV5Hex(BULWARK_NAMESPACE, `endpoint\0${type}\0${iface}\0${urlTemplate}`);
}

/** 16 raw bytes of a 32-hex id, for the binary token; null if it is not one. */
export function idToBytes(id: string): Buffer | null {
  return HEX32.test(id) ? Buffer.from(id, 'hex') : null;
}

export function bytesToId(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
