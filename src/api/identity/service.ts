// Authentication and token validation, independent of HTTP: the routes and
// requireToken() (context.ts) both go through here.
import type { IdentityConfig } from '../../config/schema.js';
import type { RequestContext, TokenVerifier } from '../context.js';
import type { AuthBody, ScopedRef } from './auth-request.js';
import type { CatalogService } from './catalog.js';
import { Directory, effectiveRoles, type Project, type RoleName, type User } from './directory.js';
import { badRequest, unauthorized } from './errors.js';
import { type AuthMethod, TokenCodec, type TokenPayload, newAuditId } from './token-codec.js';

export interface IdentityServiceOptions {
  config: IdentityConfig;
  /** Resolved token key bytes (see loadOrCreateTokenKey); same key => same valid tokens. */
  tokenKey: Uint8Array;
  /** Services rendered into project-scoped tokens (see defaultCatalogServices). */
  catalog: readonly CatalogService[];
  /** Clock in ms; injectable for tests. */
  now?: () => number;
}

/** A token that opened with our key, has not expired and still names live identities. */
export interface ValidToken {
  token: string;
  payload: TokenPayload;
  user: User;
  project: Project | null;
  /** Effective roles (implied ones included). */
  roles: RoleName[];
}

const SUPPORTED_METHODS: ReadonlySet<string> = new Set<AuthMethod>(['password', 'token']);

export class IdentityService implements TokenVerifier {
  readonly directory: Directory;
  readonly catalog: readonly CatalogService[];
  private readonly codec: TokenCodec;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: IdentityServiceOptions) {
    this.directory = Directory.fromConfig(opts.config);
    this.catalog = opts.catalog;
    this.codec = new TokenCodec(opts.tokenKey);
    this.ttlMs = opts.config.tokenTtlMs;
    this.now = opts.now ?? Date.now;
  }

  /** POST /v3/auth/tokens minus HTTP. Throws KeystoneError (400/401). */
  authenticate(body: AuthBody): ValidToken {
    const { identity, scope } = body.auth;
    const methods = [...new Set(identity.methods)];
    if (methods.some((m) => !SUPPORTED_METHODS.has(m))) throw unauthorized();

    let user: User | null = null;
    let parent: ValidToken | null = null;
    if (methods.includes('password')) {
      const u = identity.password?.user;
      if (!u) throw badRequest("Expecting to find password in identity.");
      if (u.id === undefined) requireNamedWithDomain(u, 'user');
      user = this.directory.checkPassword(u, u.domain, u.password);
      if (!user) throw unauthorized();
    }
    if (methods.includes('token')) {
      if (!identity.token) throw badRequest('Expecting to find token in identity.');
      parent = this.validate(identity.token.id);
      // Every method must authenticate the same user, as in keystone.
      if (!parent || (user && user.id !== parent.user.id)) throw unauthorized();
      user = parent.user;
    }
    if (!user) throw unauthorized();

    let project: Project | null = null;
    if (scope !== undefined && scope !== 'unscoped') {
      // Domain, system and trust scopes are not implemented: refuse rather than
      // silently hand out an unscoped token the client did not ask for.
      if (!scope.project) throw unauthorized();
      if (scope.project.id === undefined) requireNamedWithDomain(scope.project, 'project');
      project = this.directory.findProject(scope.project, scope.project.domain);
      if (!project) throw unauthorized();
    }

    const roles = project ? this.directory.assignedRoles(user.id, project.id) : [];
    if (project && roles.length === 0) throw unauthorized();

    const now = this.now();
    const payload: TokenPayload = {
      userId: user.id,
      projectId: project?.id ?? null,
      roles,
      methods: methods.filter((m): m is AuthMethod => SUPPORTED_METHODS.has(m)),
      issuedAtMs: now,
      // A rescoped token never outlives the one it came from (keystone does the same).
      expiresAtMs: parent ? parent.payload.expiresAtMs : now + this.ttlMs,
      auditId: newAuditId(),
      parentAuditId: parent ? (parent.payload.parentAuditId ?? parent.payload.auditId) : null,
    };
    const token = this.codec.seal(payload);
    return { token, payload, user, project, roles: effectiveRoles(roles) };
  }

  /** The token if it is ours, unexpired, and its user (and project) still exist. */
  validate(token: string): ValidToken | null {
    const payload = this.codec.open(token);
    if (!payload || this.now() >= payload.expiresAtMs) return null;
    const user = this.directory.getUser(payload.userId);
    if (!user) return null;
    if (payload.projectId === null) return { token, payload, user, project: null, roles: [] };
    const project = this.directory.getProject(payload.projectId);
    if (!project) return null;
    // Roles removed from the config since issue are dropped at once, like keystone
    // which recomputes roles on every validation; none left means no access.
    const current = this.directory.assignedRoles(user.id, project.id);
    const roles = payload.roles.filter((r) => current.includes(r));
    if (roles.length === 0) return null;
    return { token, payload, user, project, roles: effectiveRoles(roles) };
  }

  verifyToken(token: string): RequestContext | null {
    const v = this.validate(token);
    return v?.project ? toRequestContext(v, v.project) : null;
  }
}

function toRequestContext(v: ValidToken, project: Project): RequestContext {
  const isAdmin = v.roles.includes('admin');
  return {
    userId: v.user.id,
    userName: v.user.name,
    projectId: project.id,
    projectName: project.name,
    roles: [...v.roles],
    isAdmin,
    isReader: v.roles.includes('reader') && !isAdmin && !v.roles.includes('member'),
  };
}

// Keystone answers a name without a domain with 400, naming the missing attribute.
function requireNamedWithDomain(ref: ScopedRef, target: 'user' | 'project'): void {
  if (ref.name === undefined) throw badRequest(`Expecting to find id or name in ${target}.`);
  if (!ref.domain || (ref.domain.id === undefined && ref.domain.name === undefined)) {
    throw badRequest(`Expecting to find domain in ${target}.`);
  }
}
