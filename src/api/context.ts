// Who is calling: the validated X-Auth-Token of a request, as the Cinder routes
// see it. The 401 mimics keystonemiddleware's auth_token filter, which is what
// answers unauthenticated requests in front of a real Cinder.
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';

import { UNAUTHORIZED_MESSAGE, openstackErrorBody } from './identity/errors.js';

export interface RequestContext {
  userId: string;
  userName: string;
  projectId: string;
  projectName: string;
  /** Effective role names, implied ones included (admin -> member -> reader), as in the token. */
  roles: string[];
  isAdmin: boolean;
  /**
   * Read-only caller: holds reader but neither member nor admin. (Every valid
   * token carries the implied reader role, so "has reader" would always be true.)
   */
  isReader: boolean;
}

/** Implemented by IdentityService; anything that turns a token into a context will do. */
export interface TokenVerifier {
  /** The context for a valid, unexpired, project-scoped token; null otherwise. */
  verifyToken(token: string): RequestContext | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireToken(); only meaningful on routes that use it. */
    ctx: RequestContext;
  }
}

const contexts = new WeakMap<FastifyRequest, RequestContext>();

/**
 * Declares request.ctx on the root instance (call once, before the routes).
 * Optional: requireToken works without it, but with it a route that reads
 * request.ctx without requireToken() fails loudly instead of seeing undefined.
 */
export function decorateRequestContext(app: FastifyInstance): void {
  if (app.hasRequestDecorator('ctx')) return;
  app.decorateRequest('ctx', {
    getter(this: FastifyRequest): RequestContext {
      const ctx = contexts.get(this);
      if (!ctx) throw new Error('request.ctx read on a route without the requireToken() preHandler');
      return ctx;
    },
    setter(this: FastifyRequest, value: RequestContext): void {
      contexts.set(this, value);
    },
  });
}

export interface RequireTokenOptions {
  /** keystonemiddleware's www_authenticate_uri: where clients should authenticate. */
  wwwAuthenticateUri?: string | undefined;
}

/** keystonemiddleware's rejection: same body for a missing, malformed, expired or unscoped token. */
export function sendUnauthorized(reply: FastifyReply, opts: RequireTokenOptions = {}): FastifyReply {
  if (opts.wwwAuthenticateUri) reply.header('WWW-Authenticate', `Keystone uri="${opts.wwwAuthenticateUri}"`);
  return reply.code(401).type('application/json; charset=UTF-8').send(openstackErrorBody(401, UNAUTHORIZED_MESSAGE));
}

export function requireToken(verifier: TokenVerifier, opts: RequireTokenOptions = {}): preHandlerAsyncHookHandler {
  return async function requireTokenHook(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const header = request.headers['x-auth-token'];
    const token = typeof header === 'string' ? header.trim() : '';
    const ctx = token ? verifier.verifyToken(token) : null;
    // Returning the reply tells fastify the response was sent and the route must not run.
    if (!ctx) return sendUnauthorized(reply, opts);
    request.ctx = ctx;
    return undefined;
  };
}
