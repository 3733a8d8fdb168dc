// The QSD driver against a real qemu-storage-daemon 7.2, with real NBD
// clients (qemu-io writes, nbdcopy reads) and byte-for-byte comparisons.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { supportsDirectIo } from '../../src/util/direct-write.js';
import { promisify } from 'node:util';
import { JobFailedError, blockCommit, blockdevMirror, completeReadyJob, queryJobs } from '../../src/drivers/qmp/commands.js';
import { QmpError } from '../../src/drivers/qmp/connection.js';
import { QsdAlreadyRunningError, QsdDaemon, isOurQsd, isPidAlive, writePskKeys, type QsdDaemonOptions, type QsdExitInfo } from '../../src/drivers/qsd/daemon.js';
import {
  LayerStateError, addExport, closeLayer, commitInto, createLayerImage, listExports, listOpenNodes, openLayer, readQcow2Header, removeExport, resizeLayer, snapshotLayers, streamInto,
} from '../../src/drivers/qsd/images.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

let dir: string;
let opts: QsdDaemonOptions;
let daemon: QsdDaemon;
const started: { pid: number; pidFile: string }[] = [];
const layer = (id: string): string => join(dir, 'layers', `${id}.qcow2`);
const uri = (name: string, socket = opts.nbdSocket ?? ''): string => `nbd+unix:///${name}?socket=${socket}`;

/** Runs a command to completion; never throws on a non-zero exit. */
function runAll(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: `${stdout}${stderr}` }));
  });
}

async function qemuIo(target: string, cmd: string, extra: string[] = []): Promise<string> {
  const { stdout, stderr } = await run('qemu-io', [...extra, '-f', 'raw', target, '-c', cmd]);
  const out = stdout + stderr;
  if (/fail|error/i.test(out)) throw new Error(`qemu-io ${cmd}: ${out}`);
  return out;
}

/** Reads a whole export with nbdcopy (a real NBD client) into memory; the default socket is the first suite's daemon. */
async function readExport(name: string, socket?: string, scratchDir = dir): Promise<Buffer> {
  const out = join(scratchDir, `read-${name}-${Date.now()}.raw`);
  await run('nbdcopy', ['--', uri(name, socket), out]);
  try {
    return readFileSync(out);
  } finally {
    rmSync(out, { force: true });
  }
}

function image(size: number, ...fills: [byte: number, offset: number, length: number][]): Buffer {
  const b = Buffer.alloc(size);
  for (const [byte, off, len] of fills) b.fill(byte, off, off + len);
  return b;
}

function assertBytes(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  if (actual.equals(expected)) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  assert.fail(`${what}: first difference at byte ${i}: got 0x${actual[i]?.toString(16)}, want 0x${expected[i]?.toString(16)}`);
}

/** Pids of every live process started with this pidfile, to catch a second daemon. */
function daemonsFor(pidFile: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => isOurQsd(pid, pidFile));
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms))]);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

async function startTracked(o: QsdDaemonOptions): Promise<{ daemon: QsdDaemon; attached: boolean }> {
  const r = await QsdDaemon.attachOrStart(o);
  started.push({ pid: r.daemon.pid, pidFile: o.pidFile });
  return r;
}

/** Stops a suite's daemon, SIGKILLs whatever a failed test left running (verified to be ours, so a reused pid is never hit), removes its directory. */
async function stopTracked(d: QsdDaemon | undefined, dir: string): Promise<void> {
  await d?.stop().catch(() => undefined);
  for (const { pid, pidFile } of started) if (isOurQsd(pid, pidFile)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

describe('qemu-storage-daemon driver (real QSD)', { timeout: 120_000 }, () => {
  let snapshotContent: Buffer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bw-qsd-'));
    mkdirSync(join(dir, 'layers'));
    opts = { pidFile: join(dir, 'run', 'qsd.pid'), qmpSocket: join(dir, 'run', 'qmp.sock'), nbdSocket: join(dir, 'run', 'nbd.sock') };
    const r = await startTracked(opts);
    assert.equal(r.attached, false);
    daemon = r.daemon;
  });

  after(() => stopTracked(daemon, dir));

  it('creates, opens and exports a layer; NBD writes land in it', async () => {
    const qmp = daemon.qmp;
    assert.deepEqual(await createLayerImage(qmp, { path: layer('lbase'), sizeBytes: SIZE }), { created: true });
    assert.deepEqual(await createLayerImage(qmp, { path: layer('lbase'), sizeBytes: SIZE }), { created: false });
    await assert.rejects(createLayerImage(qmp, { path: layer('lbase'), sizeBytes: 2 * SIZE }), LayerStateError);
    assert.deepEqual(await readQcow2Header(layer('lbase')), { virtualSizeBytes: SIZE, backingFile: null });
    assert.deepEqual(await queryJobs(qmp), [], 'create jobs are dismissed');

    assert.deepEqual(await openLayer(qmp, { layerId: 'lbase', path: layer('lbase'), backingLayerId: null }), { opened: true });
    assert.deepEqual(await openLayer(qmp, { layerId: 'lbase', path: layer('lbase'), backingLayerId: null }), { opened: false });
    const nodes = await listOpenNodes(qmp);
    assert.deepEqual([...nodes.keys()].sort(), ['lbase', 'lbase-f'], 'no temporary nodes left behind');
    assert.equal(nodes.get('lbase')?.path, layer('lbase'));
    assert.equal(nodes.get('lbase')?.fileNodeName, 'lbase-f');
    assert.equal(nodes.get('lbase')?.virtualSizeBytes, SIZE);

    await addExport(qmp, { exportId: 'vol1', layerId: 'lbase', name: 'vol1', writable: true });
    assert.deepEqual(await addExport(qmp, { exportId: 'vol1', layerId: 'lbase', name: 'vol1', writable: true }), { added: false });
    await qemuIo(uri('vol1'), 'write -P 0xab 0 1M');
    assertBytes(await readExport('vol1'), image(SIZE, [0xab, 0, MiB]), 'vol1 after first write');
  });

  it('opens a layer past the host page cache (cache.direct, native AIO) when asked; data round-trips', async () => {
    const qmp = daemon.qmp;
    assert.equal(await supportsDirectIo(join(dir, 'layers')), true, 'ext4 takes O_DIRECT');
    await createLayerImage(qmp, { path: layer('ldirect'), sizeBytes: SIZE });
    await openLayer(qmp, { layerId: 'ldirect', path: layer('ldirect'), backingLayerId: null, directIo: true });
    const nodes = await qmp.execute<Array<{ 'node-name': string; cache: { direct: boolean } }>>('query-named-block-nodes');
    assert.equal(nodes.find((n) => n['node-name'] === 'ldirect-f')?.cache.direct, true);
    assert.equal(nodes.find((n) => n['node-name'] === 'lbase-f')?.cache.direct, false, 'the default stays buffered');
    // QSD keeps its bounce buffers in the heap (glibc's malloc settings): set in its environment, nothing else of ours is.
    const environ = readFileSync(`/proc/${daemon.pid}/environ`, 'utf8').split('\0').filter(Boolean);
    assert.ok(environ.includes('MALLOC_MMAP_THRESHOLD_=33554432') && environ.includes('MALLOC_TRIM_THRESHOLD_=268435456'), environ.join(' '));
    assert.deepEqual(environ.map((e) => e.split('=')[0]).sort(), ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'PATH']);
    await addExport(qmp, { exportId: 'vdirect', layerId: 'ldirect', name: 'vdirect', writable: true });
    await qemuIo(uri('vdirect'), 'write -P 0x5a 4096 1M');
    assertBytes(await readExport('vdirect'), image(SIZE, [0x5a, 4096, MiB]), 'direct layer');
    await removeExport(qmp, 'vdirect');
    await closeLayer(qmp, 'ldirect');
  });

  it('snapshots through one transaction: the export follows the overlay, the old layer keeps the old bytes', async () => {
    const qmp = daemon.qmp;
    await createLayerImage(qmp, { path: layer('lov1'), sizeBytes: SIZE, backing: { path: layer('lbase') } });
    assert.deepEqual(await readQcow2Header(layer('lov1')), { virtualSizeBytes: SIZE, backingFile: layer('lbase') });
    await openLayer(qmp, { layerId: 'lov1', path: layer('lov1'), backingLayerId: null });
    assert.equal((await listOpenNodes(qmp)).get('lov1')?.backingNodeName, null, 'header backing is not opened by itself');
    await createLayerImage(qmp, { path: layer('lbad'), sizeBytes: SIZE });
    await openLayer(qmp, { layerId: 'lbad', path: layer('lbad'), backingLayerId: null });
    await assert.rejects(snapshotLayers(qmp, [{ activeLayerId: 'lbase', overlayLayerId: 'lbad' }]), /header names backing none/);
    await closeLayer(qmp, 'lbad');

    await snapshotLayers(qmp, [{ activeLayerId: 'lbase', overlayLayerId: 'lov1' }]);
    await snapshotLayers(qmp, [{ activeLayerId: 'lbase', overlayLayerId: 'lov1' }]); // retry is a no-op
    const nodes = await listOpenNodes(qmp);
    assert.equal(nodes.get('lov1')?.backingNodeName, 'lbase');
    assert.equal(nodes.get('lbase')?.readOnly, true, 'QEMU reopens the frozen layer read-only');
    assert.deepEqual((await listExports(qmp)).map((e) => [e.id, e.nodeName]), [['vol1', 'lov1']]);

    await qemuIo(uri('vol1'), 'write -P 0xcd 512K 1M');
    await addExport(qmp, { exportId: 'snap1', layerId: 'lbase', name: 'snap1', writable: false });
    assertBytes(await readExport('vol1'), image(SIZE, [0xab, 0, MiB / 2], [0xcd, MiB / 2, MiB]), 'volume after snapshot');
    assertBytes(await readExport('snap1'), image(SIZE, [0xab, 0, MiB]), 'snapshot layer');
  });

  it('switches two volumes in one transaction, and a failing transaction switches none', async () => {
    const qmp = daemon.qmp;
    for (const [id, byte] of [['la0', 0x11], ['lb0', 0x22]] as const) {
      await createLayerImage(qmp, { path: layer(id), sizeBytes: SIZE });
      await openLayer(qmp, { layerId: id, path: layer(id), backingLayerId: null });
      await addExport(qmp, { exportId: `e-${id}`, layerId: id, name: `e-${id}`, writable: true });
      await qemuIo(uri(`e-${id}`), `write -P 0x${byte.toString(16)} 0 1M`);
    }
    for (const [id, base] of [['la1', 'la0'], ['lb1', 'lb0']] as const) {
      await createLayerImage(qmp, { path: layer(id), sizeBytes: SIZE, backing: { path: layer(base) } });
      await openLayer(qmp, { layerId: id, path: layer(id), backingLayerId: null });
    }
    const pairs = [{ activeLayerId: 'la0', overlayLayerId: 'la1' }, { activeLayerId: 'lb0', overlayLayerId: 'lb1' }];

    await assert.rejects(
      snapshotLayers(qmp, pairs, { extraActions: [{ type: 'block-dirty-bitmap-disable', data: { node: 'lb1', name: 'no-such-bitmap' } }] }),
      QmpError,
    );
    let nodes = await listOpenNodes(qmp);
    assert.equal(nodes.get('la1')?.backingNodeName, null, 'failed transaction rolled back volume A');
    assert.equal(nodes.get('lb1')?.backingNodeName, null, 'failed transaction rolled back volume B');

    await snapshotLayers(qmp, pairs, {
      extraActions: [{ type: 'block-dirty-bitmap-add', data: { node: 'la1', name: 'since-snap', persistent: true } }],
    });
    nodes = await listOpenNodes(qmp);
    assert.equal(nodes.get('la1')?.backingNodeName, 'la0');
    assert.equal(nodes.get('lb1')?.backingNodeName, 'lb0');
    assert.deepEqual(nodes.get('la1')?.dirtyBitmaps, ['since-snap']);
    const exportsByVolume = new Map((await listExports(qmp)).map((e) => [e.id, e.nodeName]));
    assert.equal(exportsByVolume.get('e-la0'), 'la1');
    assert.equal(exportsByVolume.get('e-lb0'), 'lb1');

    await qemuIo(uri('e-la0'), 'write -P 0x33 0 64K');
    assertBytes(await readExport('e-la0'), image(SIZE, [0x11, 0, MiB], [0x33, 0, 64 * 1024]), 'volume A after its write');
    assertBytes(await readExport('e-lb0'), image(SIZE, [0x22, 0, MiB]), 'volume B untouched');
  });

  it('streams a middle layer away without changing what the volume reads', async () => {
    const qmp = daemon.qmp;
    await createLayerImage(qmp, { path: layer('lov2'), sizeBytes: SIZE, backing: { path: layer('lov1') } });
    await openLayer(qmp, { layerId: 'lov2', path: layer('lov2'), backingLayerId: null });
    await snapshotLayers(qmp, [{ activeLayerId: 'lov1', overlayLayerId: 'lov2' }]);
    await qemuIo(uri('vol1'), 'write -P 0xef 4M 1M');
    const before = await readExport('vol1');
    assertBytes(before, image(SIZE, [0xab, 0, MiB / 2], [0xcd, MiB / 2, MiB], [0xef, 4 * MiB, MiB]), 'three-layer chain');

    await streamInto(qmp, { topLayerId: 'lov2', baseLayerId: 'lbase', jobId: 'stream-lov2' });
    await streamInto(qmp, { topLayerId: 'lov2', baseLayerId: 'lbase', jobId: 'stream-lov2' }); // retry is a no-op
    assert.equal((await listOpenNodes(qmp)).get('lov2')?.backingNodeName, 'lbase');
    assert.equal((await readQcow2Header(layer('lov2')))?.backingFile, layer('lbase'), 'header names the base by absolute path');
    assert.deepEqual(await queryJobs(qmp), []);
    assertBytes(await readExport('vol1'), before, 'volume after stream');

    await closeLayer(qmp, 'lov1');
    await closeLayer(qmp, 'lov1');
    const nodes = await listOpenNodes(qmp);
    assert.equal(nodes.has('lov1') || nodes.has('lov1-f'), false);
    assertBytes(await readExport('vol1'), before, 'volume after closing the streamed-out layer');
    assertBytes(await readExport('snap1'), image(SIZE, [0xab, 0, MiB]), 'snapshot layer still intact');
    await assert.rejects(closeLayer(qmp, 'lbase'), QmpError, 'a layer in use cannot be closed');

    await assert.rejects(streamInto(qmp, { topLayerId: 'lov2', baseLayerId: 'nope', jobId: 'stream-x' }), LayerStateError);
    snapshotContent = before;
  });

  it('resizes only unexported layers, never shrinks, and exports can be swapped around it', async () => {
    const qmp = daemon.qmp;
    await assert.rejects(resizeLayer(qmp, 'lov2', 2 * SIZE), /exported/);
    await assert.rejects(resizeLayer(qmp, 'lov2', SIZE / 2), /shrink/);

    // A connected client blocks a safe removal; the default (hard) drops it.
    const client = spawn('qemu-io', ['-f', 'raw', uri('vol1')], { stdio: ['pipe', 'ignore', 'ignore'] });
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(removeExport(qmp, 'vol1', { mode: 'safe' }), /still in use/);
    await removeExport(qmp, 'vol1');
    await removeExport(qmp, 'vol1');
    client.stdin.end();
    assert.deepEqual((await listExports(qmp)).map((e) => e.id).sort(), ['e-la0', 'e-lb0', 'snap1']);

    await resizeLayer(qmp, 'lov2', 2 * SIZE);
    await resizeLayer(qmp, 'lov2', 2 * SIZE);
    await addExport(qmp, { exportId: 'vol1', layerId: 'lov2', name: 'vol1', writable: true });
    const { stdout } = await run('nbdinfo', ['--size', uri('vol1')]);
    assert.equal(Number(stdout.trim()), 2 * SIZE);
    const grown = Buffer.concat([snapshotContent, Buffer.alloc(SIZE)]);
    assertBytes(await readExport('vol1'), grown, 'volume after resize');
    snapshotContent = grown;
  });

  it('mirrors a live volume onto a new layer, then actively commits an overlay back down', async () => {
    const qmp = daemon.qmp;
    for (const id of ['lm0', 'lm1']) {
      await createLayerImage(qmp, { path: layer(id), sizeBytes: SIZE });
      await openLayer(qmp, { layerId: id, path: layer(id), backingLayerId: null });
    }
    await addExport(qmp, { exportId: 'em', layerId: 'lm0', name: 'em', writable: true });
    await qemuIo(uri('em'), 'write -P 0x44 0 1M');

    assert.equal(await blockdevMirror(qmp, { 'job-id': 'mirror-lm0', device: 'lm0', target: 'lm1', sync: 'full' }), 'ready');
    await completeReadyJob(qmp, 'mirror-lm0');
    assert.equal((await listExports(qmp)).find((e) => e.id === 'em')?.nodeName, 'lm1', 'export pivoted to the mirror target');
    assertBytes(await readExport('em'), image(SIZE, [0x44, 0, MiB]), 'after mirror');

    await createLayerImage(qmp, { path: layer('lm2'), sizeBytes: SIZE, backing: { path: layer('lm1') } });
    await openLayer(qmp, { layerId: 'lm2', path: layer('lm2'), backingLayerId: null });
    await snapshotLayers(qmp, [{ activeLayerId: 'lm1', overlayLayerId: 'lm2' }]);
    await qemuIo(uri('em'), 'write -P 0x55 2M 1M');
    assert.equal(await blockCommit(qmp, { 'job-id': 'commit-lm2', device: 'lm2', 'base-node': 'lm1' }), 'ready');
    await completeReadyJob(qmp, 'commit-lm2');
    assert.equal((await listExports(qmp)).find((e) => e.id === 'em')?.nodeName, 'lm1', 'export back on the commit base');
    assertBytes(await readExport('em'), image(SIZE, [0x44, 0, MiB], [0x55, 2 * MiB, MiB]), 'after active commit');
    assert.deepEqual(await queryJobs(qmp), []);
    await removeExport(qmp, 'em');
  });

  it('surfaces a failed blockdev-create job and dismisses it', async () => {
    await assert.rejects(createLayerImage(daemon.qmp, { path: join(dir, 'missing-dir', 'x.qcow2'), sizeBytes: SIZE }), (e: unknown) => {
      assert.ok(e instanceof JobFailedError);
      assert.match(e.jobError, /No such file or directory/);
      return true;
    });
    assert.deepEqual(await queryJobs(daemon.qmp), []);
  });

  it('a restarted Node side attaches to the running daemon instead of starting another', async () => {
    const pid = daemon.pid;
    await daemon.detach();
    await assert.rejects(QsdDaemon.start(opts), QsdAlreadyRunningError);
    const r = await startTracked(opts);
    daemon = r.daemon;
    assert.equal(r.attached, true);
    assert.equal(daemon.pid, pid);
    assert.deepEqual(daemonsFor(opts.pidFile), [pid]);
    assert.equal((await listOpenNodes(daemon.qmp)).get('lov2')?.backingNodeName, 'lbase');
    assertBytes(await readExport('vol1'), snapshotContent, 'volume served across the re-attach');
  });

  it('detects kill -9 of QSD; the next attachOrStart starts a fresh daemon and the data survived', async () => {
    const killed = daemon.pid;
    const exited = new Promise<QsdExitInfo>((resolve) => daemon.onExit(resolve));
    process.kill(killed, 'SIGKILL');
    const info = await within(exited, 10_000, 'onExit after SIGKILL');
    assert.deepEqual(info, { pid: killed, expected: false });
    assert.equal(daemon.running, false);

    const r = await startTracked(opts);
    daemon = r.daemon;
    assert.equal(r.attached, false);
    assert.notEqual(daemon.pid, killed);
    assert.equal((await listOpenNodes(daemon.qmp)).size, 0, 'a fresh daemon has an empty graph');
    await openLayer(daemon.qmp, { layerId: 'lbase', path: layer('lbase'), backingLayerId: null, readOnly: true });
    await openLayer(daemon.qmp, { layerId: 'lov2', path: layer('lov2'), backingLayerId: 'lbase' });
    await addExport(daemon.qmp, { exportId: 'vol1', layerId: 'lov2', name: 'vol1', writable: true });
    assertBytes(await readExport('vol1'), snapshotContent, 'volume after QSD was killed and restarted');

    const stopped = new Promise<QsdExitInfo>((resolve) => daemon.onExit(resolve));
    const pid = daemon.pid;
    await daemon.stop();
    assert.deepEqual(await within(stopped, 5000, 'onExit after stop'), { pid, expected: true });
    assert.equal(isPidAlive(pid), false);
    assert.deepEqual(daemonsFor(opts.pidFile), []);
  });

  it('serves NBD over TCP with TLS-PSK, keeping the key out of argv', async () => {
    const tdir = join(dir, 'tls-pool');
    const key = 'a1'.repeat(32);
    const keyFile = writePskKeys(join(tdir, 'tls'), 'bulwark', key);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(keyFile, 'utf8'), `bulwark:${key}\n`);

    const port = await freePort();
    const topts: QsdDaemonOptions = { pidFile: join(tdir, 'qsd.pid'), qmpSocket: join(tdir, 'qmp.sock'), nbdTcp: { host: '127.0.0.1', port, pskDir: join(tdir, 'tls') } };
    await assert.rejects(QsdDaemon.start({ ...topts, nbdSocket: join(tdir, 'nbd.sock') }), /single NBD server/);
    const { daemon: t } = await startTracked(topts);
    try {
      const argv = readFileSync(`/proc/${t.pid}/cmdline`, 'utf8');
      assert.equal(argv.includes(key), false, 'PSK not in argv');
      assert.match(argv, /tls-creds-psk/);
      await createLayerImage(t.qmp, { path: join(tdir, 'lt.qcow2'), sizeBytes: SIZE });
      await openLayer(t.qmp, { layerId: 'lt', path: join(tdir, 'lt.qcow2'), backingLayerId: null });
      await addExport(t.qmp, { exportId: 'vt', layerId: 'lt', name: 'vt', writable: true });
      const tls = ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${join(tdir, 'tls')},username=bulwark`];
      const opt = `driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port=${port},file.export=vt,file.tls-creds=tls0`;
      const io = async (cmd: string): Promise<string> => (await runAll('qemu-io', [...tls, '--image-opts', opt, '-c', cmd])).out;
      assert.match(await io('write -P 0x5a 0 1M'), /wrote 1048576\/1048576/);
      assert.match(await io('read -P 0x5a 0 1M'), /read 1048576\/1048576/);
      assert.match(await io('read -P 0x5b 0 1M'), /Pattern verification failed/, 'the pattern check can fail');
      const plain = await runAll('qemu-io', ['-r', '-f', 'raw', `nbd://127.0.0.1:${port}/vt`, '-c', 'read 0 4k']);
      assert.notEqual(plain.code, 0);
      assert.match(plain.out, /TLS/);
    } finally {
      await t.stop();
    }
  });
});

describe('committing a middle layer down (real QSD)', { timeout: 120_000 }, () => {
  let cdir: string;
  let copts: QsdDaemonOptions;
  let d: QsdDaemon;
  const cl = (id: string): string => join(cdir, `${id}.qcow2`);
  const curi = (name: string): string => uri(name, copts.nbdSocket);
  const read = (name: string): Promise<Buffer> => readExport(name, copts.nbdSocket, cdir);
  /** A chain's bottom layer, open and exported writable as `exportId`, holding what `write` (a qemu-io command) put there. */
  const writtenBase = async (layerId: string, exportId: string, write: string, directIo = true): Promise<void> => {
    await createLayerImage(d.qmp, { path: cl(layerId), sizeBytes: SIZE });
    await openLayer(d.qmp, { layerId, path: cl(layerId), backingLayerId: null, directIo });
    await addExport(d.qmp, { exportId, layerId, name: exportId, writable: true });
    await qemuIo(curi(exportId), write);
  };

  before(async () => {
    cdir = mkdtempSync(join(tmpdir(), 'bw-qsd-commit-'));
    copts = { pidFile: join(cdir, 'run', 'qsd.pid'), qmpSocket: join(cdir, 'run', 'qmp.sock'), nbdSocket: join(cdir, 'run', 'nbd.sock') };
    d = (await startTracked(copts)).daemon;
  });

  after(() => stopTracked(d, cdir));

  it('copies only the middle layer into its base; the volume reads the same, also after kill -9 of QSD', async () => {
    const qmp = d.qmp;
    // c0 <- c1 <- c2 (the volume's top, exported), as a backup's snapshots leave a volume.
    await writtenBase('c0', 'v', 'write -P 0x11 0 4M');
    for (const [id, backing] of [['c1', 'c0'], ['c2', 'c1']] as const) {
      await createLayerImage(qmp, { path: cl(id), sizeBytes: SIZE, backing: { path: cl(backing) } });
      await openLayer(qmp, { layerId: id, path: cl(id), backingLayerId: null, directIo: true });
      await snapshotLayers(qmp, [{ activeLayerId: backing, overlayLayerId: id }]);
      if (id === 'c1') {
        await qemuIo(curi('v'), 'write -P 0x22 1M 1M');
        await qemuIo(curi('v'), 'write -P 0x22 6M 1M');
      }
    }
    await qemuIo(curi('v'), 'write -P 0x33 1536K 256K');
    const want = image(SIZE, [0x11, 0, 4 * MiB], [0x22, MiB, MiB], [0x22, 6 * MiB, MiB], [0x33, 1536 * 1024, 256 * 1024]);
    assertBytes(await read('v'), want, 'three-layer chain');
    await assert.rejects(commitInto(qmp, { topLayerId: 'c1', baseLayerId: 'c2', jobId: 'commit-bad' }), LayerStateError, 'the base must be the layer under the top');

    await commitInto(qmp, { topLayerId: 'c1', baseLayerId: 'c0', jobId: 'commit-c1' });
    await commitInto(qmp, { topLayerId: 'c1', baseLayerId: 'c0', jobId: 'commit-c1' }); // retry is a no-op
    let nodes = await listOpenNodes(qmp);
    assert.equal(nodes.get('c2')?.backingNodeName, 'c0');
    assert.equal(nodes.get('c0')?.readOnly, true, 'the base is read-only again');
    assert.equal((await readQcow2Header(cl('c2')))?.backingFile, cl('c0'), 'the top header names the base');
    assert.deepEqual(await queryJobs(qmp), []);
    await closeLayer(qmp, 'c1');
    rmSync(cl('c1'));
    assertBytes(await read('v'), want, 'volume after the commit');
    // The base alone now shows what the middle layer showed.
    await addExport(qmp, { exportId: 'b', layerId: 'c0', name: 'b', writable: false });
    assertBytes(await read('b'), image(SIZE, [0x11, 0, 4 * MiB], [0x22, MiB, MiB], [0x22, 6 * MiB, MiB]), 'base after the commit');

    // Nothing the commit wrote was left only in QSD's memory.
    const killed = d.pid;
    process.kill(killed, 'SIGKILL');
    await within(new Promise<void>((resolve) => d.onExit(() => resolve())), 10_000, 'exit after SIGKILL');
    d = (await startTracked(copts)).daemon;
    await openLayer(d.qmp, { layerId: 'c0', path: cl('c0'), backingLayerId: null, readOnly: true });
    await openLayer(d.qmp, { layerId: 'c2', path: cl('c2'), backingLayerId: 'c0' });
    await addExport(d.qmp, { exportId: 'v', layerId: 'c2', name: 'v', writable: true });
    assertBytes(await read('v'), want, 'volume after QSD was killed and restarted');
    nodes = await listOpenNodes(d.qmp);
    assert.equal(nodes.has('c1'), false);
    const check = await runAll('qemu-img', ['check', '-U', '-f', 'qcow2', cl('c0')]);
    assert.equal(check.code, 0, check.out);
  });

  it('refuses to commit a layer that a running stream holds, and never takes it for a finished commit', async () => {
    const qmp = d.qmp;
    await writtenBase('h0', 'h', 'write -P 0x66 0 8M', false);
    for (const [id, backing] of [['h1', 'h0'], ['h2', 'h1']] as const) {
      await createLayerImage(qmp, { path: cl(id), sizeBytes: SIZE, backing: { path: cl(backing) } });
      await openLayer(qmp, { layerId: id, path: cl(id), backingLayerId: null });
      await snapshotLayers(qmp, [{ activeLayerId: backing, overlayLayerId: id }]);
    }
    // A stream into h1 throttled to a crawl: QEMU puts its filter between h2 and h1.
    await qmp.execute('block-stream', { 'job-id': 'slow', device: 'h1', speed: 4096, 'auto-dismiss': false });
    try {
      assert.equal((await listOpenNodes(qmp)).get('h2')?.backingNodeName?.startsWith('#'), true, 'the filter sits under h2');
      await assert.rejects(commitInto(qmp, { topLayerId: 'h1', baseLayerId: 'h0', jobId: 'commit-h1' }), LayerStateError);
    } finally {
      await qmp.execute('job-cancel', { id: 'slow' });
      for (let i = 0; i < 100 && !(await queryJobs(qmp)).some((j) => j.id === 'slow' && j.status === 'concluded'); i++) await new Promise((r) => setTimeout(r, 20));
      await qmp.execute('job-dismiss', { id: 'slow' });
    }
    assert.deepEqual(await queryJobs(qmp), []);
    assertBytes(await read('h'), image(SIZE, [0x66, 0, 8 * MiB]), 'the volume is untouched');
  });

  it('streams a base up into a volume top that keeps its writers; after kill -9 of QSD the top still holds it all', async () => {
    // Found by this test: the stream's copies sat in QSD's qcow2 metadata cache
    // until a flush, and the base's file was already gone.
    const qmp = d.qmp;
    await writtenBase('s0', 'w', 'write -P 0x44 0 4M');
    await createLayerImage(qmp, { path: cl('s1'), sizeBytes: SIZE, backing: { path: cl('s0') } });
    await openLayer(qmp, { layerId: 's1', path: cl('s1'), backingLayerId: null, directIo: true });
    await snapshotLayers(qmp, [{ activeLayerId: 's0', overlayLayerId: 's1' }]);
    await qemuIo(curi('w'), 'write -P 0x55 6M 1M');
    const want = image(SIZE, [0x44, 0, 4 * MiB], [0x55, 6 * MiB, MiB]);
    await streamInto(qmp, { topLayerId: 's1', baseLayerId: null, jobId: 'stream-s1' });
    assert.equal((await listOpenNodes(qmp)).get('s1')?.readOnly, false, 'the top stays writable');
    await closeLayer(qmp, 's0');
    rmSync(cl('s0'));
    assertBytes(await read('w'), want, 'volume after the stream');

    process.kill(d.pid, 'SIGKILL');
    await within(new Promise<void>((resolve) => d.onExit(() => resolve())), 10_000, 'exit after SIGKILL');
    d = (await startTracked(copts)).daemon;
    await openLayer(d.qmp, { layerId: 's1', path: cl('s1'), backingLayerId: null });
    await addExport(d.qmp, { exportId: 'w', layerId: 's1', name: 'w', writable: true });
    assertBytes(await read('w'), want, 'volume after QSD was killed and restarted');
  });
});
