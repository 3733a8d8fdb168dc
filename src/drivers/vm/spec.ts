// The VM description the compute role hands over, its validation, and the
// QEMU command line built from it (pure: unit-testable without QEMU).
//
// Secrets: a TCP disk's PSK goes into DIR/tls/diskN/keys.psk (mode 0600);
// argv only names the directory and the identity, and spec.json drops the key.
import { isAbsolute, join } from 'node:path';

export type NbdDiskSource =
  | { transport: 'unix'; socketPath: string; exportName: string }
  | { transport: 'tcp'; host: string; port: number; exportName: string; pskIdentity: string; pskKey: string };

export interface VmDisk {
  source: NbdDiskSource;
  readOnly?: boolean;
  /** virtio-blk serial (at most 20 characters), e.g. the volume id's first 20 chars. */
  serial?: string;
}

export interface VmSpec {
  /** Instance id. */
  id: string;
  /** Absolute per-instance runtime dir (created 0700). */
  dir: string;
  kernel: string;
  initrd: string;
  commandLine: string;
  memoryMib: number;
  vcpus: number;
  /** Attached in order: the guest names them vda, vdb, ... */
  disks: VmDisk[];
  accel: 'kvm' | 'tcg';
}

/** Files of one instance directory. */
export interface VmPaths {
  readonly dir: string;
  readonly qmpSocket: string;
  readonly qgaSocket: string;
  readonly pidFile: string;
  readonly consoleLog: string;
  readonly specFile: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    qgaSocket: join(dir, 'qga.sock'),
    pidFile: join(dir, 'qemu.pid'),
    consoleLog: join(dir, 'console.log'),
    specFile: join(dir, 'spec.json'),
  };
}

/** Directory of the tls-creds-psk object of disk i (holds keys.psk). */
export const pskDirOf = (dir: string, i: number): string => join(dir, 'tls', `disk${i}`);

export class VmSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmSpecError';
  }
}

const MAX_SUN_PATH = 107;
/** virtio-blk's serial field is 20 bytes (VIRTIO_BLK_ID_BYTES). */
const MAX_SERIAL = 20;
const MAX_DISKS = 26;

/** QEMU option syntax (QemuOpts and keyval): a literal comma is written ",,". */
const opt = (v: string): string => v.replaceAll(',', ',,');

export function diskNode(i: number): string {
  return `disk${i}`;
}

function absolute(what: string, p: string): void {
  if (typeof p !== 'string' || !isAbsolute(p)) throw new VmSpecError(`${what} must be an absolute path (QEMU chdirs to / when daemonized): ${String(p)}`);
  // A newline or NUL would end up in spec.json diagnostics or QEMU's parser in odd ways.
  if (/[\0\n]/.test(p)) throw new VmSpecError(`${what} contains a NUL or newline`);
}

function socketPath(what: string, p: string): void {
  absolute(what, p);
  if (Buffer.byteLength(p) > MAX_SUN_PATH) throw new VmSpecError(`${what} is longer than a unix socket path may be (${MAX_SUN_PATH} bytes): ${p}`);
}

export function validateSpec(spec: VmSpec): void {
  if (typeof spec.id !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(spec.id)) throw new VmSpecError('id must be 1-64 chars of [A-Za-z0-9._-]');
  absolute('dir', spec.dir);
  const p = vmPaths(spec.dir);
  socketPath('qmp socket', p.qmpSocket);
  socketPath('qga socket', p.qgaSocket);
  absolute('kernel', spec.kernel);
  absolute('initrd', spec.initrd);
  if (typeof spec.commandLine !== 'string' || /[\0\n]/.test(spec.commandLine)) throw new VmSpecError('commandLine must be a single-line string');
  if (!Number.isInteger(spec.memoryMib) || spec.memoryMib < 32 || spec.memoryMib > 1024 * 1024) throw new VmSpecError('memoryMib must be an integer from 32 to 1048576');
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 255) throw new VmSpecError('vcpus must be an integer from 1 to 255');
  if (spec.accel !== 'kvm' && spec.accel !== 'tcg') throw new VmSpecError("accel must be 'kvm' or 'tcg'");
  if (!Array.isArray(spec.disks) || spec.disks.length > MAX_DISKS) throw new VmSpecError(`disks must be a list of at most ${MAX_DISKS}`);
  for (const [i, d] of spec.disks.entries()) {
    const s = d.source;
    if (typeof s.exportName !== 'string' || s.exportName.length === 0 || Buffer.byteLength(s.exportName) > 4096) throw new VmSpecError(`disk ${i}: exportName must be 1-4096 bytes`);
    if (s.transport === 'unix') socketPath(`disk ${i} socketPath`, s.socketPath);
    else if (s.transport === 'tcp') {
      if (typeof s.host !== 'string' || !/^[A-Za-z0-9.:-]{1,253}$/.test(s.host)) throw new VmSpecError(`disk ${i}: host must be a host name or IP address`);
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new VmSpecError(`disk ${i}: port must be 1-65535`);
      if (typeof s.pskIdentity !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(s.pskIdentity)) throw new VmSpecError(`disk ${i}: pskIdentity must be 1-64 chars of [A-Za-z0-9._-]`);
      // Do not echo the key in the message: it is a secret.
      if (typeof s.pskKey !== 'string' || !/^(?:[0-9a-fA-F]{2}){16,}$/.test(s.pskKey)) throw new VmSpecError(`disk ${i}: pskKey must be hex, at least 16 bytes`);
    } else throw new VmSpecError(`disk ${i}: transport must be 'unix' or 'tcp'`);
    if (d.serial !== undefined && (typeof d.serial !== 'string' || !/^[A-Za-z0-9._-]{1,20}$/.test(d.serial))) {
      throw new VmSpecError(`disk ${i}: serial must be 1-${MAX_SERIAL} chars of [A-Za-z0-9._-]`);
    }
  }
}

/** The spec as written to spec.json: everything but the PSKs. */
export function redactSpec(spec: VmSpec): unknown {
  return {
    ...spec,
    disks: spec.disks.map((d) => {
      if (d.source.transport !== 'tcp') return d;
      const { pskKey: _secret, ...source } = d.source;
      return { ...d, source };
    }),
  };
}

/**
 * Seconds the NBD client holds guest I/O while it reconnects to a restarted
 * server (a Bulwark storage daemon restart), instead of failing it at once.
 */
const NBD_RECONNECT_DELAY_S = 30;

export function buildQemuArgs(spec: VmSpec): string[] {
  const p = vmPaths(spec.dir);
  const args = [
    '-daemonize', '-pidfile', p.pidFile,
    '-name', `bulwark-${spec.id}`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-nic', 'none', '-no-reboot',
    // pc (i440fx) as in test/harness/guest.ts, where the tiny guest is proven to boot.
    '-machine', 'pc',
    '-accel', spec.accel,
    // KVM: the host's CPU. TCG: every feature TCG can emulate.
    '-cpu', spec.accel === 'kvm' ? 'host' : 'max',
    '-m', String(spec.memoryMib), '-smp', String(spec.vcpus),
    '-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.commandLine,
    '-chardev', `file,id=console0,path=${opt(p.consoleLog)},append=on`,
    '-serial', 'chardev:console0',
  ];
  for (const [i, d] of spec.disks.entries()) {
    const node = diskNode(i);
    const s = d.source;
    const common = `node-name=${node},export=${opt(s.exportName)},reconnect-delay=${NBD_RECONNECT_DELAY_S}${d.readOnly ? ',read-only=on' : ''}`;
    if (s.transport === 'unix') {
      args.push('-blockdev', `driver=nbd,server.type=unix,server.path=${opt(s.socketPath)},${common}`);
    } else {
      const tls = `tls${i}`;
      args.push('-object', `tls-creds-psk,id=${tls},endpoint=client,dir=${opt(pskDirOf(spec.dir, i))},username=${s.pskIdentity}`);
      args.push('-blockdev', `driver=nbd,server.type=inet,server.host=${opt(s.host)},server.port=${s.port},tls-creds=${tls},${common}`);
    }
    // A read-only node makes virtio-blk present a read-only disk by itself.
    args.push('-device', `virtio-blk-pci,drive=${node},id=vd${i}${d.serial ? `,serial=${d.serial}` : ''}`);
  }
  args.push(
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=qga0,path=${opt(p.qgaSocket)},server=on,wait=off`,
    '-device', 'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    '-chardev', `socket,id=qmp0,path=${opt(p.qmpSocket)},server=on,wait=off`,
    '-mon', 'chardev=qmp0,mode=control',
  );
  return args;
}
