// Runs Bulwark roles as separate OS processes (`node bin/bulwark.js <role>`),
// sharing one config file and store, so tests see what split deployments see
// and can kill -9 any of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './ports.js';
import { killInstances, TEST_IDENTITY } from './aio.js';

const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);

export interface RoleProcess {
  readonly role: string;
  readonly child: ChildProcess;
  readonly output: string[];
}

export interface Cluster {
  readonly dir: string;
  readonly configFile: string;
  readonly url: string;
  start(role: 'api' | 'scheduler' | 'volume' | 'backup' | 'compute', extraArgs?: string[]): Promise<RoleProcess>;
  kill9(p: RoleProcess): Promise<void>;
  /** Stops every role, then powers off the VMs the compute role started. */
  stopAll(): Promise<void>;
}

export async function makeCluster(opts: { databaseUrl?: string; extra?: Record<string, unknown> } = {}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-cluster-'));
  const port = await freePort();
  const config = {
    dataDir: dir,
    host: 'testhost',
    ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
    api: { listen: { host: '127.0.0.1', port } },
    identity: TEST_IDENTITY,
    logLevel: 'info',
    jobs: { pollIntervalMs: 20, leaseTtlMs: 3_000, heartbeatIntervalMs: 1_000, serviceDownAfterMs: 10_000 },
    ...(opts.extra ?? {}),
  };
  const configFile = join(dir, 'bulwark.json');
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  const procs = new Set<RoleProcess>();
  const url = `http://127.0.0.1:${port}`;
  return {
    dir,
    configFile,
    url,
    async start(role, extraArgs = []) {
      // BULWARK_ROLE_NODE_ARGS (space-separated) reaches node itself, e.g. "--cpu-prof" to profile a role.
      const nodeArgs = (process.env['BULWARK_ROLE_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
      const child = spawn(process.execPath, [...nodeArgs, BIN, role, '-c', configFile, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
      const output: string[] = [];
      child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
      child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
      const p: RoleProcess = { role, child, output };
      procs.add(p);
      child.once('exit', () => procs.delete(p));
      await waitUntilReady(p, role, url);
      return p;
    },
    async kill9(p) {
      const exited = new Promise((r) => p.child.once('exit', r));
      p.child.kill('SIGKILL');
      await exited;
    },
    async stopAll() {
      await Promise.all(
        [...procs].map(async (p) => {
          const exited = new Promise((r) => p.child.once('exit', r));
          p.child.kill('SIGTERM');
          const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(t);
        }),
      );
      // VMs are daemonized and outlive the compute role by design: power off the ones it started, as deploy()'s stop does.
      await killInstances(join(dir, 'instances'));
    },
  };
}

async function waitUntilReady(p: RoleProcess, role: string, url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`${role} exited at start:\n${p.output.join('')}`);
    if (role === 'api') {
      const ok = await fetch(`${url}/identity/v3`).then((r) => r.ok, () => false);
      if (ok) return;
    } else if (p.output.join('').includes('"msg":"ready"')) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`${role} not ready after 30 s:\n${p.output.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
