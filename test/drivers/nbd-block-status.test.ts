// Bulwark's NBD client against real qemu-storage-daemon: structured reads, and
// block status for base:allocation and qemu:allocation-depth, the basis of
// incremental backups that read only what changed since a pinned layer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { QsdDaemon } from '../../src/drivers/qsd/daemon.js';
import { addExport, createLayerImage, openLayer, snapshotLayers } from '../../src/drivers/qsd/images.js';

const MiB = 1024 * 1024;

describe('NBD block status against real QSD', () => {
  let dir: string;
  let daemon: QsdDaemon;
  const sock = () => join(dir, 'nbd.sock');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-nbdbs-'));
    daemon = await QsdDaemon.start({ pidFile: join(dir, 'qsd.pid'), qmpSocket: join(dir, 'qmp.sock'), nbdSocket: sock() });
    const qmp = daemon.qmp;
    // base: 64 MiB, data written at [0, 4 MiB); overlay: data at [2, 3) and [8, 9) MiB.
    await createLayerImage(qmp, { path: join(dir, 'base.qcow2'), sizeBytes: 64 * MiB });
    await openLayer(qmp, { layerId: 'lbase', path: join(dir, 'base.qcow2'), backingLayerId: null });
    await addExport(qmp, { exportId: 'wbase', layerId: 'lbase', name: 'wbase', writable: true });
    const w = await NbdClient.connectUnix(sock(), 'wbase');
    await w.write(0, Buffer.alloc(4 * MiB, 0x11));
    await w.flush();
    await createLayerImage(qmp, { path: join(dir, 'top.qcow2'), sizeBytes: 64 * MiB, backing: { path: join(dir, 'base.qcow2') } });
    await openLayer(qmp, { layerId: 'ltop', path: join(dir, 'top.qcow2'), backingLayerId: null });
    await snapshotLayers(qmp, [{ activeLayerId: 'lbase', overlayLayerId: 'ltop' }]);
    // The export followed the top: these writes land in ltop.
    await w.write(2 * MiB, Buffer.alloc(MiB, 0x22));
    await w.write(8 * MiB, Buffer.alloc(MiB, 0x33));
    await w.flush();
    await w.close();
    await addExport(qmp, { exportId: 'rtop', layerId: 'ltop', name: 'rtop', writable: false, allocationDepth: true });
  });
  after(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports which layer holds each extent, and reads structured data and holes', async () => {
    const c = await NbdClient.connectUnix(sock(), 'rtop', { metaContexts: ['base:allocation', 'qemu:allocation-depth'] });
    const depth = await c.mapAll('qemu:allocation-depth');
    const at = (off: number) => depth.find((e) => e.offset <= off && off < e.offset + e.length)!.flags;
    assert.equal(at(0), 2, 'first MiB comes from the base (depth 2)');
    assert.equal(at(2 * MiB), 1, 'rewritten MiB comes from the top (depth 1)');
    assert.equal(at(3 * MiB), 2);
    assert.equal(at(8 * MiB), 1);
    assert.equal(at(20 * MiB), 0, 'never written anywhere: depth 0');
    const changed = depth.filter((e) => e.flags === 1).reduce((n, e) => n + e.length, 0);
    assert.equal(changed, 2 * MiB, 'exactly the two rewritten MiB are in the top layer');
    const alloc = await c.mapAll('base:allocation');
    const hole = alloc.find((e) => e.offset <= 20 * MiB && 20 * MiB < e.offset + e.length)!;
    assert.equal(hole.flags & 1, 1, 'unwritten range is a hole in base:allocation');
    const data = await c.read(MiB, 3 * MiB);
    assert.ok(data.subarray(0, MiB).equals(Buffer.alloc(MiB, 0x11)));
    assert.ok(data.subarray(MiB, 2 * MiB).equals(Buffer.alloc(MiB, 0x22)));
    assert.ok(data.subarray(2 * MiB).equals(Buffer.alloc(MiB, 0x11)));
    assert.ok((await c.read(30 * MiB, MiB)).equals(Buffer.alloc(MiB)), 'a hole reads as zeros');
    await c.close();
  });

  it('refuses a context the export does not offer', async () => {
    await assert.rejects(NbdClient.connectUnix(sock(), 'wbase', { metaContexts: ['qemu:allocation-depth'] }), /does not offer/);
  });
});
