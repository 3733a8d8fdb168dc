// The QEMU VM driver and the freeze watchdog against real QEMU (TCG) running
// the real test guest on real NBD exports. Boots are expensive under TCG
// (about 3 s each), so one VM serves the launcher-survival, runState and all
// watchdog checks; the TLS disk and the KVM trial take one boot each.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fsfreezeFreeze, fsfreezeStatus, fsfreezeThaw, type FsfreezeStatus } from '../../src/drivers/qga/commands.js';
import { QgaConnection } from '../../src/drivers/qga/connection.js';
import { blockdevAdd, blockExportAdd } from '../../src/drivers/qmp/commands.js';
import { QmpConnection } from '../../src/drivers/qmp/connection.js';
import { isPidAlive, QsdDaemon, writePskKeys } from '../../src/drivers/qsd/daemon.js';
import {
  armFreezeDeadline,
  chooseAccel,
  disarmFreezeDeadline,
  findVm,
  lastWatchdogAction,
  launchVm,
  VmSpecError,
  waitForAgent,
  type VmHandle,
  type VmSpec,
} from '../../src/drivers/vm/index.js';
import { buildGuest, guestUnsupportedReason, makeExt4Image, serveNbd, type GuestImage, type NbdServer } from '../harness/guest.js';
import { freePort } from '../harness/ports.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const QEMU = 'qemu-system-x86_64';
const unsupported = guestUnsupportedReason();
const BOOT_MS = 60_000;

const vmModule = new URL('../../src/drivers/vm/index.js', import.meta.url).href;

/** Runs `script` (ESM) in a child node process; resolves with the child once it printed `marker`. */
async function childUntil(script: string, marker: RegExp): Promise<{ match: RegExpExecArray; kill: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let out = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = marker.exec(out);
      if (m) resolve(m);
    });
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before ${marker}: ${out}`)));
  });
  return {
    match,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

async function guestFreezeStatus(qgaSocket: string): Promise<FsfreezeStatus> {
  const qga = await QgaConnection.connect(qgaSocket, { timeoutMs: 10_000 });
  try {
    return await fsfreezeStatus(qga, { timeoutMs: 5000 });
  } finally {
    await qga.close();
  }
}

async function freezeGuest(qgaSocket: string): Promise<number> {
  const qga = await QgaConnection.connect(qgaSocket, { timeoutMs: 10_000 });
  try {
    return await fsfreezeFreeze(qga, { timeoutMs: 20_000 });
  } finally {
    // The socket serves one client at a time: the watchdog must be able to get in.
    await qga.close();
  }
}

/** A freeze syncs the guest's filesystems; thawing right after leaves the records on the disks for debugfs. */
async function flushGuest(qgaSocket: string): Promise<void> {
  const qga = await QgaConnection.connect(qgaSocket, { timeoutMs: 10_000 });
  try {
    await fsfreezeFreeze(qga, { timeoutMs: 20_000 });
  } finally {
    await fsfreezeThaw(qga, { timeoutMs: 5000 });
    await qga.close();
  }
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Lines of /records.log in an ext4 image, read without mounting. */
async function records(image: string): Promise<string[]> {
  const { stdout } = await run('debugfs', ['-R', 'cat /records.log', image], { maxBuffer: 64 << 20 });
  return stdout.split('\n').filter((l) => /^seq \d+ \d+\.\d+$/.test(l));
}

/** True while any process's argv mentions the dir (QEMU or a watchdog). */
function processMentions(dir: string): boolean {
  return spawnSync('pgrep', ['-f', dir], { encoding: 'utf8' }).stdout.trim() !== '';
}

describe('VM driver (real QEMU under TCG)', { skip: unsupported ?? false }, () => {
  let work: string;
  let image: GuestImage;
  const images: string[] = [];
  const nbd: NbdServer[] = [];
  const vms: VmHandle[] = [];
  let qsd: QsdDaemon | null = null;
  let vm: VmHandle;
  let vmDir: string;

  const spec = (dir: string, over: Partial<VmSpec>): VmSpec => ({
    id: 'i-test',
    dir,
    kernel: image.kernel,
    initrd: image.initrd,
    commandLine: 'console=ttyS0 pci=noacpi',
    memoryMib: 256,
    vcpus: 1,
    disks: [],
    accel: 'tcg',
    ...over,
  });

  before(async () => {
    image = await buildGuest();
    work = mkdtempSync(join(tmpdir(), 'bw-vm-'));
    for (const name of ['a', 'b']) {
      const file = join(work, `${name}.raw`);
      await makeExt4Image(file, { format: 'raw', sizeMiB: 64 });
      images.push(file);
      nbd.push(await serveNbd(file, { format: 'raw', socketPath: join(work, `nbd-${name}.sock`), exportName: `vol-${name}` }));
    }
  });

  after(async () => {
    for (const h of vms) await h.powerOff(0).catch(() => undefined);
    // A VM a killed launcher left behind that findVm never picked up.
    for (const d of [vmDir].filter(Boolean)) {
      const h = await findVm(d).catch(() => null);
      await h?.powerOff(0);
    }
    await qsd?.stop().catch(() => undefined);
    for (const s of nbd) await s.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('rejects a bad spec before creating anything, without echoing the key', async () => {
    const dir = join(work, 'bad');
    await assert.rejects(launchVm(spec('relative/dir', {}), { qemuBinary: QEMU }), VmSpecError);
    const key = 'ab'.repeat(15); // too short
    await assert.rejects(
      launchVm(spec(dir, { disks: [{ source: { transport: 'tcp', host: '127.0.0.1', port: 1, exportName: 'x', pskIdentity: 'id', pskKey: key } }] }), { qemuBinary: QEMU }),
      (e: unknown) => e instanceof VmSpecError && !e.message.includes(key),
    );
    await assert.rejects(launchVm(spec(dir, { disks: [{ source: { transport: 'unix', socketPath: '/x.sock', exportName: 'x' }, serial: 'x'.repeat(21) }] }), { qemuBinary: QEMU }), VmSpecError);
    assert.equal(existsSync(dir), false);
  });

  it('a VM outlives the process that launched it; findVm re-attaches', { timeout: 120_000 }, async () => {
    vmDir = join(work, 'vm1');
    const s = spec(vmDir, {
      commandLine: 'console=ttyS0 pci=noacpi bulwark.data=vda,vdb bulwark.writer=1',
      disks: nbd.map((n, i) => ({ source: { transport: 'unix' as const, socketPath: n.socketPath, exportName: n.exportName }, serial: `vol-${i}` })),
    });
    const script = `
      const { launchVm } = await import(${JSON.stringify(vmModule)});
      const vm = await launchVm(${JSON.stringify(s)}, { qemuBinary: ${JSON.stringify(QEMU)} });
      process.stdout.write('launched ' + vm.pid + '\\n');
      setInterval(() => undefined, 1000);
    `;
    const launcher = await childUntil(script, /launched (\d+)/);
    const pid = Number(launcher.match[1]);
    await launcher.kill(); // kill -9 of the "compute role": holds the QMP connection at that moment
    assert.ok(isPidAlive(pid), 'QEMU died with its launcher');

    const found = await findVm(vmDir);
    assert.ok(found, 'findVm found no VM');
    vm = found;
    vms.push(vm);
    assert.equal(vm.pid, pid);
    const waited = await waitForAgent(vm.qgaSocket, BOOT_MS);
    assert.equal(await vm.runState(), 'running');
    console.log(`# agent answered ${waited} ms after re-attach`);

    assert.equal(statSync(vmDir).mode & 0o777, 0o700);
    const written = JSON.parse(readFileSync(join(vmDir, 'spec.json'), 'utf8')) as { id: string; disks: unknown[] };
    assert.equal(written.id, 'i-test');
    assert.equal(written.disks.length, 2);
    assert.match(readFileSync(join(vmDir, 'console.log'), 'utf8'), /bulwark-init: mounted \/dev\/vdb/);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(argv.includes('-daemonize') && argv.includes('-nodefaults') && argv.includes('none'));

    // A second handle while one is attached would fight over QMP; closing ours and re-finding works.
    await vm.close();
    const again = await findVm(vmDir);
    assert.ok(again);
    vm = again;
    vms.push(vm);
    assert.equal(await vm.runState(), 'running');
  });

  it('the watchdog thaws a frozen guest at the deadline', { timeout: 60_000 }, async () => {
    const frozen = await freezeGuest(vm.qgaSocket);
    assert.ok(frozen >= 2, `froze ${frozen} filesystems`);
    const armedAt = Date.now();
    const deadlineAt = armedAt + 1500;
    await armFreezeDeadline(vmDir, deadlineAt);
    assert.ok(existsSync(join(vmDir, 'watchdog.pid')));
    await sleep(300);
    assert.equal(await guestFreezeStatus(vm.qgaSocket), 'frozen', 'thawed before the deadline');
    const action = await waitUntil('the watchdog to act', 20_000, async () => {
      const a = await lastWatchdogAction(vmDir);
      return a && a.thawedAt >= armedAt ? a : null;
    });
    assert.equal(action.error, undefined);
    assert.equal(action.statusAfter, 'thawed');
    assert.ok(action.thawedAt >= deadlineAt, 'thawed before the deadline');
    console.log(`# watchdog thawed ${action.thawedAt - deadlineAt} ms after the deadline`);
    assert.equal(await guestFreezeStatus(vm.qgaSocket), 'thawed');
    // Its job done, the watchdog goes away and leaves no deadline behind.
    await waitUntil('the watchdog to exit', 5000, async () => (existsSync(join(vmDir, 'watchdog.pid')) ? null : true));
    assert.equal(existsSync(join(vmDir, 'freeze-deadline.json')), false);
  });

  it('a client holding the agent socket delays the thaw until it lets go', { timeout: 60_000 }, async () => {
    const holder = await QgaConnection.connect(vm.qgaSocket, { timeoutMs: 10_000 });
    const armedAt = Date.now();
    let released = 0;
    try {
      await fsfreezeFreeze(holder, { timeoutMs: 20_000 });
      await armFreezeDeadline(vmDir, armedAt + 800);
      await sleep(2500); // past the deadline: the watchdog keeps retrying its connect
      const a = await lastWatchdogAction(vmDir);
      assert.ok(!a || a.thawedAt < armedAt, 'the watchdog thawed through a busy socket?');
      assert.equal(await fsfreezeStatus(holder, { timeoutMs: 5000 }), 'frozen');
    } finally {
      await holder.close();
      released = Date.now();
    }
    const action = await waitUntil('the watchdog to act', 20_000, async () => {
      const a = await lastWatchdogAction(vmDir);
      return a && a.thawedAt >= armedAt ? a : null;
    });
    assert.equal(action.statusAfter, 'thawed');
    console.log(`# thawed ${action.thawedAt - released} ms after the socket was released`);
    assert.equal(await guestFreezeStatus(vm.qgaSocket), 'thawed');
  });

  it('the watchdog thaws even when the process that armed it was killed', { timeout: 60_000 }, async () => {
    await freezeGuest(vm.qgaSocket);
    const armedAt = Date.now();
    const deadlineAt = armedAt + 1500;
    const script = `
      const { armFreezeDeadline } = await import(${JSON.stringify(vmModule)});
      await armFreezeDeadline(${JSON.stringify(vmDir)}, ${deadlineAt});
      process.stdout.write('armed\\n');
      setInterval(() => undefined, 1000);
    `;
    const armer = await childUntil(script, /armed/);
    await armer.kill();
    const action = await waitUntil('the watchdog to act', 20_000, async () => {
      const a = await lastWatchdogAction(vmDir);
      return a && a.thawedAt >= armedAt ? a : null;
    });
    assert.equal(action.statusAfter, 'thawed');
    assert.equal(await guestFreezeStatus(vm.qgaSocket), 'thawed');
  });

  it('disarming before the deadline leaves the guest frozen', { timeout: 60_000 }, async () => {
    await freezeGuest(vm.qgaSocket);
    const before = await lastWatchdogAction(vmDir);
    const deadlineAt = Date.now() + 1500;
    await armFreezeDeadline(vmDir, deadlineAt);
    await disarmFreezeDeadline(vmDir);
    await waitUntil('the watchdog to exit', 5000, async () => (existsSync(join(vmDir, 'watchdog.pid')) ? null : true));
    await sleep(Math.max(0, deadlineAt - Date.now()) + 700);
    try {
      assert.equal(await guestFreezeStatus(vm.qgaSocket), 'frozen');
      assert.deepEqual(await lastWatchdogAction(vmDir), before);
    } finally {
      const qga = await QgaConnection.connect(vm.qgaSocket, { timeoutMs: 10_000 });
      await fsfreezeThaw(qga, { timeoutMs: 5000 });
      await qga.close();
    }
    assert.equal(await guestFreezeStatus(vm.qgaSocket), 'thawed');
  });

  it('powerOff leaves no QEMU, and the guest wrote records to both disks', { timeout: 60_000 }, async () => {
    const pid = vm.pid;
    await flushGuest(vm.qgaSocket);
    const t0 = Date.now();
    await vm.powerOff(500); // the tiny guest ignores ACPI: quit follows the grace period
    console.log(`# powerOff took ${Date.now() - t0} ms`);
    assert.equal(isPidAlive(pid), false);
    assert.equal(await vm.runState(), 'exited');
    await vm.powerOff(500); // idempotent
    assert.equal(await findVm(vmDir), null);
    assert.equal(processMentions(vmDir), false, 'a process of the VM dir survived');
    for (const file of images) {
      const lines = await records(file);
      assert.ok(lines.length > 10, `${file}: only ${lines.length} records`);
    }
  });

  it('chooseAccel: auto decides once by a trial boot and caches it; tcg never tries KVM', { timeout: 120_000 }, async () => {
    const cacheFile = join(work, 'accel', 'decision.json');
    const t0 = Date.now();
    const first = await chooseAccel({ mode: 'auto', qemuBinary: QEMU, kernel: image.kernel, initrd: image.initrd, cacheFile, trialTimeoutMs: 20_000 });
    const trialMs = Date.now() - t0;
    console.log(`# auto: ${first.accel} in ${trialMs} ms: ${first.reason}`);
    if (first.accel === 'tcg') assert.match(first.reason, /KVM trial boot failed|\/dev\/kvm/);
    else assert.match(first.reason, /KVM trial boot succeeded/);
    const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as { accel: string; kernel: string; qemuBinary: string };
    assert.equal(cached.accel, first.accel);
    assert.equal(cached.kernel, image.kernel);

    const t1 = Date.now();
    const second = await chooseAccel({ mode: 'auto', qemuBinary: QEMU, kernel: image.kernel, initrd: image.initrd, cacheFile });
    assert.ok(Date.now() - t1 < 100, `cached call took ${Date.now() - t1} ms`);
    assert.equal(second.accel, first.accel);
    assert.match(second.reason, /cached/);

    const tcgCache = join(work, 'accel', 'tcg.json');
    const t2 = Date.now();
    assert.deepEqual(await chooseAccel({ mode: 'tcg', qemuBinary: QEMU, kernel: image.kernel, initrd: image.initrd, cacheFile: tcgCache }), {
      accel: 'tcg',
      reason: 'accel configured as tcg',
    });
    assert.ok(Date.now() - t2 < 50);
    assert.equal(existsSync(tcgCache), false, 'tcg mode ran a trial');
  });

  it('boots from a TCP+TLS-PSK disk; the key is in no argv', { timeout: 120_000 }, async () => {
    const identity = 'bulwark-vm-test';
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)).toString('hex');
    const serverPsk = join(work, 'psk-server');
    writePskKeys(serverPsk, identity, key);
    const port = await freePort();
    qsd = await QsdDaemon.start({ pidFile: join(work, 'qsd.pid'), qmpSocket: join(work, 'qsd-qmp.sock'), nbdTcp: { host: '127.0.0.1', port, pskDir: serverPsk } });
    const file = join(work, 'tls.raw');
    await makeExt4Image(file, { format: 'raw', sizeMiB: 64 });
    await blockdevAdd(qsd.qmp, { driver: 'file', 'node-name': 'tlsvol', filename: file });
    await blockExportAdd(qsd.qmp, { id: 'tlsvol', 'node-name': 'tlsvol', name: 'tlsvol', writable: true });

    const dir = join(work, 'vm-tls');
    const h = await launchVm(
      spec(dir, {
        id: 'i-tls',
        commandLine: 'console=ttyS0 pci=noacpi bulwark.data=vda bulwark.writer=1',
        disks: [
          { source: { transport: 'tcp', host: '127.0.0.1', port, exportName: 'tlsvol', pskIdentity: identity, pskKey: key } },
          // vdb: a read-only unix disk the guest does not mount (vm1 is off, so its image is free).
          { source: { transport: 'unix', socketPath: nbd[0]!.socketPath, exportName: nbd[0]!.exportName }, readOnly: true, serial: 'ro-disk' },
        ],
      }),
      { qemuBinary: QEMU },
    );
    vms.push(h);
    const waited = await waitForAgent(h.qgaSocket, BOOT_MS);
    console.log(`# TLS-disk guest agent answered after ${waited} ms`);
    assert.equal(await h.runState(), 'running');

    const cmdline = readFileSync(`/proc/${h.pid}/cmdline`, 'utf8');
    assert.ok(!cmdline.toLowerCase().includes(key), 'the PSK is in QEMU argv');
    assert.match(cmdline, /tls-creds-psk,id=tls0,endpoint=client,dir=[^\0]+,username=bulwark-vm-test/);
    for (const f of ['spec.json', 'console.log']) assert.ok(!readFileSync(join(dir, f), 'utf8').toLowerCase().includes(key), `the PSK is in ${f}`);
    const keys = join(dir, 'tls', 'disk0', 'keys.psk');
    assert.equal(statSync(keys).mode & 0o777, 0o600);
    assert.equal(readFileSync(keys, 'utf8').trim(), `${identity}:${key}`);
    assert.match(readFileSync(join(dir, 'console.log'), 'utf8'), /mounted \/dev\/vda/);

    // Our handle holds the single QMP connection: drop it to look at the block devices ourselves.
    await h.close();
    const qmp = await QmpConnection.connect(h.qmpSocket, { timeoutMs: 10_000 });
    try {
      const blocks = await qmp.execute<{ inserted?: { 'node-name': string; ro: boolean } }[]>('query-block');
      const ro = new Map(blocks.flatMap((b) => (b.inserted ? [[b.inserted['node-name'], b.inserted.ro] as const] : [])));
      assert.equal(ro.get('disk0'), false);
      assert.equal(ro.get('disk1'), true);
    } finally {
      await qmp.close();
    }

    await sleep(1000); // let the writer run a little
    await flushGuest(h.qgaSocket);
    await h.powerOff(0); // reconnects QMP after close() for a clean quit
    assert.equal(isPidAlive(h.pid), false);
    await qsd.stop();
    qsd = null;
    const lines = await records(file);
    assert.ok(lines.length > 0, 'the guest wrote no records to the TLS disk');
    console.log(`# ${lines.length} records on the TLS disk`);
  });
});

// Kept apart from the real-QEMU suite: argv shape of a unix disk, checked without booting.
describe('buildQemuArgs', () => {
  it('wires disks, agent, monitor and console as documented', async () => {
    const { buildQemuArgs } = await import('../../src/drivers/vm/index.js');
    const args = buildQemuArgs({
      id: 'i1',
      dir: '/run/bw/i1',
      kernel: '/k',
      initrd: '/i',
      commandLine: 'console=ttyS0',
      memoryMib: 128,
      vcpus: 2,
      accel: 'tcg',
      disks: [{ source: { transport: 'unix', socketPath: '/run/nbd,1.sock', exportName: 'v1' }, readOnly: true, serial: 'abc' }],
    });
    const s = args.join(' ');
    assert.match(s, /-daemonize -pidfile \/run\/bw\/i1\/qemu\.pid/);
    assert.match(s, /-blockdev driver=nbd,server\.type=unix,server\.path=\/run\/nbd,,1\.sock,node-name=disk0,export=v1,reconnect-delay=30,read-only=on/);
    assert.match(s, /-device virtio-blk-pci,drive=disk0,id=vd0,serial=abc/);
    assert.match(s, /-chardev socket,id=qga0,path=\/run\/bw\/i1\/qga\.sock,server=on,wait=off/);
    assert.match(s, /-mon chardev=qmp0,mode=control/);
    assert.match(s, /-chardev file,id=console0,path=\/run\/bw\/i1\/console\.log/);
    for (const a of ['-nodefaults', '-no-user-config', '-nic', '-accel']) assert.ok(args.includes(a), a);
  });
});
