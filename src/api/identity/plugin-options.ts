// Options of identityPlugin and the URLs derived from them.
import type { FastifyRequest } from 'fastify';

import type { IdentityService } from './service.js';

export interface IdentityPluginOptions {
  identity: IdentityService;
  /**
   * Mount point of the Keystone API: '' serves /v3/auth/tokens, '/identity' serves
   * /identity/v3/auth/tokens. Use a prefix when Cinder shares the server: both
   * APIs own GET / and GET /v3 with different documents. Default ''.
   */
  identityPrefix?: string | undefined;
  /** Mount point of the Glance discovery stub; null disables it. Default '/image'. */
  imagePrefix?: string | null | undefined;
  /**
   * Public base URL (scheme://host[:port][/path]) for links and for relative
   * catalog URLs; default: the request's own scheme and Host header.
   */
  publicUrl?: string | undefined;
}

export interface BaseUrls {
  origin(request: FastifyRequest): string;
  identityBase(request: FastifyRequest): string;
  imageBase(request: FastifyRequest): string;
}

export function normalizePrefix(prefix: string | undefined, fallback: string): string {
  const p = (prefix ?? fallback).replace(/\/+$/, '');
  if (p !== '' && !p.startsWith('/')) throw new Error(`identity: prefix ${JSON.stringify(prefix)} must start with '/'`);
  return p;
}

export function baseUrls(publicUrl: string | undefined, identityPrefix: string, imagePrefix: string): BaseUrls {
  const fixed = publicUrl?.replace(/\/+$/, '');
  const origin = (request: FastifyRequest): string => fixed ?? `${request.protocol}://${request.host}`;
  return {
    origin,
    identityBase: (request) => origin(request) + identityPrefix,
    imageBase: (request) => origin(request) + imagePrefix,
  };
}
