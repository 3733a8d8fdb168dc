// The per-request scope of every /v3/{project_id}/... route: who is calling, for
// which project, under which microversion. Built once by the plugin's hook.
import type { FastifyRequest } from 'fastify';
import type { Caller } from '../../services/deps.js';
import type { Microversion } from '../microversion.js';
import type { ViewContext } from './views/common.js';

export interface CinderScope extends Caller, ViewContext {
  readonly userName: string;
  readonly roles: readonly string[];
  readonly isReader: boolean;
}

/** The identity of a validated token, as the identity plugin reports it. */
export interface AuthenticatedUser {
  readonly userId: string;
  readonly userName: string;
  readonly projectId: string | null;
  readonly roles: readonly string[];
}

export type Authenticate = (token: string) => AuthenticatedUser | null;

declare module 'fastify' {
  interface FastifyRequest {
    cinder: CinderScope | null;
  }
}

export function scopeOf(req: FastifyRequest): CinderScope {
  if (!req.cinder) throw new Error('route used outside the Cinder scope');
  return req.cinder;
}

/** Cinder's default roles: admin, member, reader (read-only unless also member or admin). */
export function roleFlags(roles: readonly string[]): { isAdmin: boolean; isReader: boolean } {
  const isAdmin = roles.includes('admin');
  return { isAdmin, isReader: !isAdmin && !roles.includes('member') && roles.includes('reader') };
}

export function makeScope(user: AuthenticatedUser, projectId: string, baseUrl: string, version: Microversion): CinderScope {
  const { isAdmin, isReader } = roleFlags(user.roles);
  return {
    userId: user.userId,
    userName: user.userName,
    projectId,
    roles: user.roles,
    isAdmin,
    isReader,
    baseUrl,
    version,
  };
}
