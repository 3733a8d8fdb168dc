// A whole deployment for a test: all-in-one roles in this process (or split),
// a temp data dir, the API on a free loopback port, and a small HTTP client
// that logs in through Keystone like any OpenStack client.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { BulwarkConfig } from '../../src/config/schema.js';
import { startRoles, type RoleName, type RunningRoles } from '../../src/roles/runtime.js';
import { findVm } from '../../src/drivers/vm/index.js';

export interface Deployment {
  readonly url: string;
  readonly config: BulwarkConfig;
  readonly roles: RunningRoles;
  readonly admin: ApiSession;
  readonly member: ApiSession;
  readonly other: ApiSession;
  stop(opts?: { keepDaemon: boolean; keepDir?: boolean }): Promise<void>;
}

export const TEST_IDENTITY = {
  projects: [
    { name: 'admin', domain: 'Default' },
    { name: 'alpha', domain: 'Default' },
    { name: 'beta', domain: 'Default' },
  ],
  users: [
    { name: 'admin', password: 'admin-pw', domain: 'Default', roles: [{ project: 'admin', role: 'admin' as const }] },
    { name: 'alice', password: 'alice-pw', domain: 'Default', roles: [{ project: 'alpha', role: 'member' as const }] },
    { name: 'bob', password: 'bob-pw', domain: 'Default', roles: [{ project: 'beta', role: 'member' as const }] },
  ],
};

export interface DeployOptions {
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  readonly roles?: RoleName[];
  readonly overrides?: Record<string, unknown>;
}

export function testConfig(dataDir: string, opts: DeployOptions = {}): BulwarkConfig {
  return loadConfig({
    env: {},
    overrides: {
      dataDir,
      ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
      api: { listen: { host: '127.0.0.1', port: 0 } },
      identity: TEST_IDENTITY,
      logLevel: process.env['BULWARK_TEST_LOG'] ?? 'silent',
      jobs: { pollIntervalMs: 20, leaseTtlMs: 5_000, heartbeatIntervalMs: 1_000, serviceDownAfterMs: 10_000 },
      host: 'testhost',
      // The test guest ignores ACPI power-off: do not wait for it.
      compute: { shutdownGraceMs: 500 },
      ...(opts.overrides ?? {}),
    },
  });
}

/** Powers off every QEMU the compute role started under `instancesDir`. */
export async function killInstances(instancesDir: string): Promise<void> {
  if (!existsSync(instancesDir)) return;
  for (const name of readdirSync(instancesDir)) {
    const vm = await findVm(join(instancesDir, name)).catch(() => null);
    if (vm) await vm.powerOff(0).catch(() => undefined);
  }
}

export async function deploy(opts: DeployOptions = {}): Promise<Deployment> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'bulwark-aio-'));
  const config = testConfig(dataDir, opts);
  const roles = await startRoles(config, new Set(opts.roles ?? ['api', 'scheduler', 'volume', 'backup']));
  const url = roles.apiUrl!;
  const [admin, member, other] = await Promise.all([
    ApiSession.login(url, 'admin', 'admin-pw', 'admin'),
    ApiSession.login(url, 'alice', 'alice-pw', 'alpha'),
    ApiSession.login(url, 'bob', 'bob-pw', 'beta'),
  ]);
  return {
    url,
    config,
    roles,
    admin,
    member,
    other,
    async stop(stopOpts = { keepDaemon: false }) {
      await roles.stop({ keepDaemon: stopOpts.keepDaemon });
      // VMs outlive the compute role by design; a finished test must not leave them running.
      if (!stopOpts.keepDaemon) await killInstances(config.compute.instancesDir!);
      if (!stopOpts.keepDir && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

export class ApiSession {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
    readonly projectId: string,
    readonly version = '3.64',
  ) {}

  static async login(baseUrl: string, user: string, password: string, project: string): Promise<ApiSession> {
    const res = await fetch(`${baseUrl}/identity/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
          scope: { project: { name: project, domain: { name: 'Default' } } },
        },
      }),
    });
    if (res.status !== 201) throw new Error(`login of ${user} failed: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { token: { project: { id: string } } };
    return new ApiSession(baseUrl, res.headers.get('x-subject-token')!, body.token.project.id);
  }

  withVersion(version: string): ApiSession {
    return new ApiSession(this.baseUrl, this.token, this.projectId, version);
  }

  /** A Cinder call: path relative to /volume/v3/{project_id}. */
  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, projectId = this.projectId): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.baseUrl}/volume/v3/${projectId}${path}`, {
      method,
      headers: {
        'x-auth-token': this.token,
        'openstack-api-version': `volume ${this.version}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
  }

  /** Any API call by its path under the server root (e.g. /compute/v2.1/servers, /image/v2/images). */
  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { 'x-auth-token': this.token, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : body instanceof Uint8Array ? new Uint8Array(body) : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Polls GET path until `field` of `key` is one of `want` (or 404 when want includes 'deleted'). */
  async waitFor(path: string, key: string, want: readonly string[], timeoutMs = 30_000, pollMs = 25): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const res = await this.call<Record<string, Record<string, unknown>>>('GET', path);
      if (res.status === 404 && want.includes('deleted')) return {};
      const obj = res.body[key];
      last = obj?.['status'];
      if (obj && want.includes(String(obj['status']))) return obj;
      if (obj && String(obj['status']).startsWith('error') && !want.some((w) => w.startsWith('error'))) {
        throw new Error(`${path} went to ${String(obj['status'])}`);
      }
      if (Date.now() > deadline) throw new Error(`${path}: still ${String(last)} after ${timeoutMs} ms (want ${want.join('|')})`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
