// The identity "database": domains, projects, users and role assignments, all
// read-only and built from IdentityConfig at startup. Ids are derived (ids.ts),
// so two processes built from the same config agree on every id.
import { createHash, timingSafeEqual } from 'node:crypto';

import type { IdentityConfig } from '../../config/schema.js';
import { DEFAULT_DOMAIN_NAME, domainId, projectId, userId } from './ids.js';

export type RoleName = 'admin' | 'member' | 'reader';

/** Bit order is part of the token format (token-codec.ts): append only. */
export const ROLE_NAMES: readonly RoleName[] = ['admin', 'member', 'reader'];

export interface Domain {
  id: string;
  name: string;
}

export interface Project {
  id: string;
  name: string;
  domain: Domain;
}

export interface User {
  id: string;
  name: string;
  domain: Domain;
}

/** A domain, project or user reference as keystone accepts it: by id, or by name. */
export interface Ref {
  id?: string | undefined;
  name?: string | undefined;
}

interface UserRecord extends User {
  passwordDigest: Buffer;
  /** project id -> roles assigned directly (not the implied ones). */
  assignments: Map<string, Set<RoleName>>;
}

/**
 * Keystone's bootstrap creates the implied-role chain admin -> member -> reader
 * and expands it in every token, so clients (and Cinder's policies) see all three.
 */
export function effectiveRoles(assigned: Iterable<RoleName>): RoleName[] {
  const out = new Set<RoleName>(assigned);
  if (out.has('admin')) out.add('member');
  if (out.has('member')) out.add('reader');
  return ROLE_NAMES.filter((r) => out.has(r));
}

function digest(password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest();
}

// Strips the password digest and assignments before a user leaves this module.
function publicUser(rec: UserRecord): User {
  return { id: rec.id, name: rec.name, domain: rec.domain };
}

// Compared against when the user does not exist, so a miss costs the same as a hit.
const DUMMY_DIGEST = digest('bulwark: no such user');

export class Directory {
  private readonly domainsById = new Map<string, Domain>();
  private readonly projectsById = new Map<string, Project>();
  private readonly usersById = new Map<string, UserRecord>();

  private constructor() {}

  /** Throws on duplicates and on assignments to unknown projects: a bad config must not start. */
  static fromConfig(cfg: IdentityConfig): Directory {
    const d = new Directory();
    d.domain(DEFAULT_DOMAIN_NAME);
    for (const p of cfg.projects) {
      const project: Project = { id: projectId(p.domain, p.name), name: p.name, domain: d.domain(p.domain) };
      if (d.projectsById.has(project.id)) throw new Error(`identity: duplicate project ${p.domain}/${p.name}`);
      d.projectsById.set(project.id, project);
    }
    for (const u of cfg.users) {
      const rec: UserRecord = {
        id: userId(u.domain, u.name),
        name: u.name,
        domain: d.domain(u.domain),
        passwordDigest: digest(u.password),
        assignments: new Map(),
      };
      if (d.usersById.has(rec.id)) throw new Error(`identity: duplicate user ${u.domain}/${u.name}`);
      for (const a of u.roles) {
        const pid = projectId(a.projectDomain ?? u.domain, a.project);
        if (!d.projectsById.has(pid)) {
          throw new Error(`identity: user ${u.domain}/${u.name} has a role on unknown project ${a.projectDomain ?? u.domain}/${a.project}`);
        }
        const roles = rec.assignments.get(pid) ?? new Set<RoleName>();
        roles.add(a.role);
        rec.assignments.set(pid, roles);
      }
      d.usersById.set(rec.id, rec);
    }
    return d;
  }

  private domain(name: string): Domain {
    const id = domainId(name);
    let dom = this.domainsById.get(id);
    if (!dom) {
      dom = { id, name };
      this.domainsById.set(id, dom);
    }
    return dom;
  }

  findDomain(ref: Ref): Domain | null {
    if (ref.id !== undefined) return this.domainsById.get(ref.id) ?? null;
    if (ref.name !== undefined) return this.domainsById.get(domainId(ref.name)) ?? null;
    return null;
  }

  /** By id, or by name within `domain` (keystone requires the domain with a name). */
  findProject(ref: Ref, domain: Ref | undefined): Project | null {
    if (ref.id !== undefined) return this.projectsById.get(ref.id) ?? null;
    const dom = domain ? this.findDomain(domain) : null;
    if (ref.name === undefined || !dom) return null;
    return this.projectsById.get(projectId(dom.name, ref.name)) ?? null;
  }

  findUser(ref: Ref, domain: Ref | undefined): User | null {
    const rec = this.userRecord(ref, domain);
    return rec ? publicUser(rec) : null;
  }

  private userRecord(ref: Ref, domain: Ref | undefined): UserRecord | null {
    if (ref.id !== undefined) return this.usersById.get(ref.id) ?? null;
    const dom = domain ? this.findDomain(domain) : null;
    if (ref.name === undefined || !dom) return null;
    return this.usersById.get(userId(dom.name, ref.name)) ?? null;
  }

  /** The user if the password matches; constant-time over the digest either way. */
  checkPassword(ref: Ref, domain: Ref | undefined, password: string): User | null {
    const rec = this.userRecord(ref, domain);
    const ok = timingSafeEqual(digest(password), rec ? rec.passwordDigest : DUMMY_DIGEST);
    return ok && rec ? publicUser(rec) : null;
  }

  /** Roles assigned to the user on the project (not expanded). */
  assignedRoles(uid: string, pid: string): RoleName[] {
    const roles = this.usersById.get(uid)?.assignments.get(pid);
    return roles ? ROLE_NAMES.filter((r) => roles.has(r)) : [];
  }

  projectsOfUser(uid: string): Project[] {
    const rec = this.usersById.get(uid);
    if (!rec) return [];
    return [...rec.assignments.keys()].flatMap((pid) => this.projectsById.get(pid) ?? []);
  }

  listDomains(filter: { name?: string | undefined } = {}): Domain[] {
    return [...this.domainsById.values()].filter((d) => filter.name === undefined || d.name === filter.name);
  }

  listProjects(filter: { name?: string | undefined; domainId?: string | undefined } = {}): Project[] {
    return [...this.projectsById.values()].filter(
      (p) => (filter.name === undefined || p.name === filter.name) && (filter.domainId === undefined || p.domain.id === filter.domainId),
    );
  }

  listUsers(filter: { name?: string | undefined; domainId?: string | undefined } = {}): User[] {
    return [...this.usersById.values()]
      .filter((u) => (filter.name === undefined || u.name === filter.name) && (filter.domainId === undefined || u.domain.id === filter.domainId))
      .map(publicUser);
  }

  getProject(id: string): Project | null {
    return this.projectsById.get(id) ?? null;
  }

  getUser(id: string): User | null {
    const rec = this.usersById.get(id);
    return rec ? publicUser(rec) : null;
  }
}
