// JSON documents shaped exactly like keystone's, so keystoneauth, keystoneclient,
// openstackclient and tempest parse them without special cases.
import type { RenderedService } from './catalog.js';
import type { Domain, Project, RoleName, User } from './directory.js';
import { roleId } from './ids.js';
import type { ValidToken } from './service.js';

/** Keystone's timestamps: microsecond precision, 'Z' suffix (tempest parses this format). */
export function keystoneTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function domainRef(d: Domain): { id: string; name: string } {
  return { id: d.id, name: d.name };
}

export function renderToken(v: ValidToken, catalog: RenderedService[] | null): Record<string, unknown> {
  const p = v.payload;
  const token: Record<string, unknown> = {
    methods: p.methods,
    user: { id: v.user.id, name: v.user.name, domain: domainRef(v.user.domain), password_expires_at: null },
    audit_ids: p.parentAuditId ? [p.auditId, p.parentAuditId] : [p.auditId],
    expires_at: keystoneTime(p.expiresAtMs),
    issued_at: keystoneTime(p.issuedAtMs),
  };
  // Unscoped tokens carry neither roles nor a catalog in keystone.
  if (v.project) {
    token.project = { id: v.project.id, name: v.project.name, domain: domainRef(v.project.domain) };
    token.is_domain = false;
    token.roles = v.roles.map((r) => ({ id: roleId(r), name: r }));
    if (catalog) token.catalog = catalog;
  }
  return { token };
}

export function renderProject(p: Project, base: string): Record<string, unknown> {
  return {
    id: p.id,
    name: p.name,
    domain_id: p.domain.id,
    description: '',
    enabled: true,
    is_domain: false,
    // Keystone reports a top-level project's parent as its domain.
    parent_id: p.domain.id,
    tags: [],
    options: {},
    links: { self: `${base}/v3/projects/${p.id}` },
  };
}

export function renderUser(u: User, base: string): Record<string, unknown> {
  return {
    id: u.id,
    name: u.name,
    domain_id: u.domain.id,
    enabled: true,
    password_expires_at: null,
    options: {},
    links: { self: `${base}/v3/users/${u.id}` },
  };
}

export function renderDomain(d: Domain, base: string): Record<string, unknown> {
  return {
    id: d.id,
    name: d.name,
    description: d.id === 'default' ? 'The default domain' : '',
    enabled: true,
    tags: [],
    options: {},
    links: { self: `${base}/v3/domains/${d.id}` },
  };
}

export function renderRole(r: RoleName, base: string): Record<string, unknown> {
  const id = roleId(r);
  return { id, name: r, domain_id: null, description: null, options: { immutable: true }, links: { self: `${base}/v3/roles/${id}` } };
}

/** Keystone's collection wrapper: {"<key>": [...], "links": {self, previous, next}}. */
export function renderCollection(key: string, items: unknown[], selfUrl: string): Record<string, unknown> {
  return { [key]: items, links: { self: selfUrl, previous: null, next: null } };
}
