// Boots the tiny Linux test guest (scripts/guest/build-guest.sh) under QEMU/TCG
// for tests that need a real VM: a QMP socket, the guest agent socket, and
// data disks that are either local image files or NBD exports on unix sockets.
// The NBD form is how the compute role attaches Bulwark volumes, so tests can
// boot a guest on volumes exactly as production will.
//
// Only unix sockets, -nic none: the guest has no network at all.
// TCG, never KVM: /dev/kvm on these machines cannot boot a stock kernel.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ping } from '../../src/drivers/qga/commands.js';
import { QgaConnection } from '../../src/drivers/qga/connection.js';
import type { NbdTarget } from './nbd.js';

const run = promisify(execFile);
const REPO = resolve(new URL('../../..', import.meta.url).pathname);
const BUILD_SCRIPT = join(REPO, 'scripts/guest/build-guest.sh');
const MiB = 1024 * 1024;

export interface GuestImage {
  readonly kernel: string;
  readonly initrd: string;
}

/** A disk the harness creates: a fresh image file, ext4 unless told otherwise. */
export interface FileDisk {
  kind: 'file';
  format?: 'raw' | 'qcow2';
  sizeMiB?: number;
  /** 'none': a blank disk the guest does not mount. Default 'ext4'. */
  filesystem?: 'ext4' | 'none';
}

/** A disk served by the caller over NBD; mounted as ext4 unless mount is false. */
export interface NbdDisk extends NbdTarget {
  kind: 'nbd';
  mount?: boolean;
}

export type GuestDisk = FileDisk | NbdDisk;

export interface BootGuestOptions {
  /** Attached in order: the guest names them vda, vdb, ... */
  disks?: GuestDisk[];
  /** Start the guest's record writer on every mounted disk. Default true. */
  writer?: boolean;
  /** Extra kernel options, e.g. 'bulwark.writer_usleep=5000'. */
  append?: string;
  memMiB?: number;
  /** Budget for QEMU start to the first answered guest-ping. Default 60 s. */
  bootTimeoutMs?: number;
  /** Keep the work directory after stop() (for debugging). */
  keep?: boolean;
}

export interface BootedDisk {
  /** Guest device name (vda, vdb, ...). */
  readonly name: string;
  /** Where the guest mounts it, or null when it is not mounted. */
  readonly mountpoint: string | null;
  /** The image file for file disks, null for NBD disks. */
  readonly file: string | null;
  readonly format: 'raw' | 'qcow2' | 'nbd';
}

export interface Guest {
  readonly dir: string;
  readonly qmpSocket: string;
  readonly qgaSocket: string;
  readonly pid: number;
  readonly disks: readonly BootedDisk[];
  /** QEMU start to the first answered guest-ping, in ms. */
  readonly bootMs: number;
  readonly consoleFile: string;
  consoleTail(lines?: number): string;
  /** SIGTERM (SIGKILL after 10 s), then removes the work directory. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** QEMU outlives a crashed test run otherwise. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** Why guest tests cannot run here, or null when they can. */
export function guestUnsupportedReason(): string | null {
  for (const tool of ['qemu-system-x86_64', 'qemu-img', 'mke2fs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return null;
}

let built: Promise<GuestImage> | null = null;

/** Builds (or reuses the cached) test guest; once per process. */
export function buildGuest(): Promise<GuestImage> {
  built ??= run('bash', [BUILD_SCRIPT], { maxBuffer: 16 * MiB }).then(({ stdout }) => {
    const get = (key: string): string => {
      const m = new RegExp(`^${key}=(.+)$`, 'm').exec(stdout);
      if (!m?.[1]) throw new Error(`build-guest.sh printed no ${key}:\n${stdout}`);
      return m[1].trim();
    };
    return { kernel: get('BULWARK_GUEST_KERNEL'), initrd: get('BULWARK_GUEST_INITRD') };
  });
  return built;
}

/** Makes an ext4 image: mke2fs on a raw file, converted when qcow2 is wanted (formats always explicit). */
export async function makeExt4Image(path: string, opts: { sizeMiB?: number; format?: 'raw' | 'qcow2'; label?: string } = {}): Promise<void> {
  const size = `${opts.sizeMiB ?? 64}M`;
  const format = opts.format ?? 'raw';
  const rawPath = format === 'raw' ? path : `${path}.tmp.raw`;
  await run('qemu-img', ['create', '-q', '-f', 'raw', rawPath, size]);
  await run('mke2fs', ['-q', '-F', '-t', 'ext4', ...(opts.label ? ['-L', opts.label] : []), rawPath]);
  if (format === 'qcow2') {
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, path]);
    rmSync(rawPath, { force: true });
  }
}

/** QEMU's option parser splits on ','; a literal comma is written ',,'. */
function opt(value: string): string {
  return value.replaceAll(',', ',,');
}

function diskName(i: number): string {
  if (i >= 26) throw new Error('the harness names disks vda..vdz only');
  return `vd${String.fromCharCode(0x61 + i)}`;
}

/** Boots a guest and resolves once its agent answers guest-ping (and the agent socket is free again). */
export async function bootGuest(opts: BootGuestOptions = {}): Promise<Guest> {
  const image = await buildGuest();
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-guest-'));
  const qmpSocket = join(dir, 'qmp.sock');
  const qgaSocket = join(dir, 'qga.sock');
  const consoleFile = join(dir, 'console.log');

  const disks: BootedDisk[] = [];
  const blockArgs: string[] = [];
  for (const [i, d] of (opts.disks ?? []).entries()) {
    const name = diskName(i);
    if (d.kind === 'file') {
      const format = d.format ?? 'raw';
      const file = join(dir, `${name}.${format}`);
      if ((d.filesystem ?? 'ext4') === 'ext4') await makeExt4Image(file, { format, label: name, ...(d.sizeMiB ? { sizeMiB: d.sizeMiB } : {}) });
      else await run('qemu-img', ['create', '-q', '-f', format, file, `${d.sizeMiB ?? 16}M`]);
      blockArgs.push('-blockdev', `driver=file,node-name=f-${name},filename=${opt(file)}`);
      blockArgs.push('-blockdev', `driver=${format},node-name=${name},file=f-${name}`);
      disks.push({ name, mountpoint: (d.filesystem ?? 'ext4') === 'ext4' ? `/data/${name}` : null, file, format });
    } else {
      blockArgs.push('-blockdev', `driver=nbd,server.type=unix,server.path=${opt(d.socketPath)},export=${opt(d.exportName)},node-name=${name}`);
      disks.push({ name, mountpoint: d.mount === false ? null : `/data/${name}`, file: null, format: 'nbd' });
    }
    blockArgs.push('-device', `virtio-blk-pci,drive=${name}`);
  }

  const data = disks.filter((d) => d.mountpoint !== null).map((d) => d.name);
  const append = [
    'console=ttyS0',
    // Skipping ACPI PCI enumeration saves about half a second of boot under TCG.
    'pci=noacpi',
    ...(data.length > 0 ? [`bulwark.data=${data.join(',')}`] : []),
    ...(opts.writer === false ? [] : ['bulwark.writer=1']),
    ...(opts.append ? [opts.append] : []),
  ].join(' ');
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-m', String(opts.memMiB ?? 256), '-smp', '1',
    '-nographic', '-nic', 'none', '-no-reboot',
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', append,
    ...blockArgs,
    '-device', 'virtio-serial-pci',
    '-chardev', `socket,id=qga0,path=${opt(qgaSocket)},server=on,wait=off`,
    '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
    '-qmp', `unix:${opt(qmpSocket)},server=on,wait=off`,
  ];

  installExitHook();
  const consoleFd = openSync(consoleFile, 'a');
  const started = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', consoleFd, consoleFd] });
  closeSync(consoleFd);
  live.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => live.delete(child));

  const consoleTail = (lines = 40): string => {
    const text = existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : '';
    return text.split('\n').slice(-lines).join('\n');
  };
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  let bootMs = 0;
  const ac = new AbortController();
  child.once('exit', (code, signal) => ac.abort(new Error(`qemu exited (${signal ?? code}) before the agent answered`)));
  try {
    const qga = await QgaConnection.connect(qgaSocket, { timeoutMs: opts.bootTimeoutMs ?? 60_000, signal: ac.signal });
    try {
      await ping(qga, { timeoutMs: 10_000 });
      bootMs = Date.now() - started;
    } finally {
      await qga.close();
    }
  } catch (e) {
    const tail = consoleTail();
    await stop();
    throw new Error(`guest did not come up: ${e instanceof Error ? e.message : String(e)}\n---- console ----\n${tail}`, { cause: e });
  }
  if (child.pid === undefined) throw new Error('qemu has no pid');
  return { dir, qmpSocket, qgaSocket, pid: child.pid, disks, bootMs, consoleFile, consoleTail, stop };
}

export interface NbdServer extends NbdTarget {
  readonly pid: number;
  stop(): Promise<void>;
}

/** Serves an image over NBD on a unix socket with qemu-nbd (explicit format), for guests booted with an NbdDisk. */
export async function serveNbd(file: string, opts: { format: 'raw' | 'qcow2'; socketPath: string; exportName: string }): Promise<NbdServer> {
  installExitHook();
  const child = spawn('qemu-nbd', ['--format', opts.format, '--socket', opts.socketPath, '--export-name', opts.exportName, '--persistent', '--shared', '4', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(child);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => live.delete(child));
  const deadline = Date.now() + 10_000;
  while (!existsSync(opts.socketPath)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`qemu-nbd did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (child.pid === undefined) throw new Error('qemu-nbd has no pid');
  return {
    socketPath: opts.socketPath,
    exportName: opts.exportName,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
