// The guest agent client against a real guest (test/harness/guest.ts), booted
// once for this file: one data disk is a local raw file, the other a qcow2
// served over NBD the way the compute role attaches Bulwark volumes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fsfreezeFreeze, fsfreezeFreezeList, fsfreezeStatus, fsfreezeThaw, getTime, info, ping } from '../../src/drivers/qga/commands.js';
import { QgaConnection, QgaError, QgaTimeoutError } from '../../src/drivers/qga/connection.js';
import { bootGuest, guestUnsupportedReason, makeExt4Image, serveNbd, type Guest, type NbdServer } from '../harness/guest.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const unsupported = guestUnsupportedReason();

/** Runs a separate node process that connects, freezes, reports, and waits to be killed. */
function freezeInChild(qgaSocket: string): { done: Promise<number>; kill: () => Promise<void> } {
  const commands = new URL('../../src/drivers/qga/commands.js', import.meta.url).href;
  const connection = new URL('../../src/drivers/qga/connection.js', import.meta.url).href;
  const script = `
    const { QgaConnection } = await import(${JSON.stringify(connection)});
    const { fsfreezeFreeze } = await import(${JSON.stringify(commands)});
    const qga = await QgaConnection.connect(${JSON.stringify(qgaSocket)}, { timeoutMs: 10000 });
    const n = await fsfreezeFreeze(qga, { timeoutMs: 10000 });
    process.stdout.write('frozen ' + n + '\\n');
    setInterval(() => undefined, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const done = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /frozen (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before freezing: ${out}`)));
  });
  return {
    done,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

interface Booted {
  guest: Guest;
  nbd: NbdServer;
  workDir: string;
}

/** vda is a raw file; vdb is a qcow2 served over NBD, attached the way the compute role attaches Bulwark volumes. */
async function bootForTests(): Promise<Booted> {
  const workDir = mkdtempSync(join(tmpdir(), 'bw-qga-guest-'));
  const image = join(workDir, 'vol.qcow2');
  await makeExt4Image(image, { format: 'qcow2', sizeMiB: 64 });
  const nbd = await serveNbd(image, { format: 'qcow2', socketPath: join(workDir, 'nbd.sock'), exportName: 'vol' });
  try {
    const guest = await bootGuest({ disks: [{ kind: 'file', format: 'raw' }, { kind: 'nbd', socketPath: nbd.socketPath, exportName: nbd.exportName }] });
    return { guest, nbd, workDir };
  } catch (e) {
    await nbd.stop();
    rmSync(workDir, { recursive: true, force: true });
    throw e;
  }
}

describe('QgaConnection (real guest)', { skip: unsupported ?? false }, () => {
  let booted: Booted | undefined;
  let guest: Guest;
  const FREEZE = { timeoutMs: 20_000 };

  before(async () => {
    booted = await bootForTests();
    guest = booted.guest;
  });
  after(async () => {
    if (!booted) return;
    await booted.guest.stop();
    await booted.nbd.stop();
    rmSync(booted.workDir, { recursive: true, force: true });
  });

  it('boots with the agent answering and both data disks mounted', async (t) => {
    t.diagnostic(`boot to first answered guest-ping: ${guest.bootMs} ms`);
    assert.deepEqual(guest.disks.map((d) => [d.name, d.format, d.mountpoint]), [['vda', 'raw', '/data/vda'], ['vdb', 'nbd', '/data/vdb']]);
    const log = guest.consoleTail(200);
    assert.match(log, /mounted \/dev\/vda on \/data\/vda/);
    assert.match(log, /mounted \/dev\/vdb on \/data\/vdb/);
  });

  it('pings, freezes every data filesystem, reports frozen, thaws', async (t) => {
    let t0 = performance.now();
    const qga = await QgaConnection.connect(guest.qgaSocket);
    const connectMs = performance.now() - t0;
    try {
      await ping(qga);
      assert.match((await info(qga)).version, /^7\.2\./);
      assert.equal(await fsfreezeStatus(qga), 'thawed');
      t0 = performance.now();
      const frozen = await fsfreezeFreeze(qga, FREEZE);
      const freezeMs = performance.now() - t0;
      try {
        assert.equal(frozen, guest.disks.filter((d) => d.mountpoint).length);
        assert.equal(await fsfreezeStatus(qga), 'frozen');
        await assert.rejects(getTime(qga), (e: unknown) => e instanceof QgaError && /frozen state/.test(e.desc));
      } finally {
        t0 = performance.now();
        const thawed = await fsfreezeThaw(qga);
        t.diagnostic(`connect+resync ${connectMs.toFixed(1)} ms, freeze (${frozen}) ${freezeMs.toFixed(1)} ms, thaw (${thawed}) ${(performance.now() - t0).toFixed(1)} ms`);
        assert.equal(thawed, frozen);
      }
      assert.equal(await fsfreezeStatus(qga), 'thawed');
      assert.equal(await fsfreezeFreezeList(qga, ['/data/vdb'], FREEZE), 1);
      assert.equal(await fsfreezeThaw(qga), 1);
      assert.ok(Math.abs((await getTime(qga)) - Date.now()) < 60_000, 'guest clock near the host clock');
    } finally {
      await qga.close();
    }
  });

  it('never takes the late reply of a timed-out freeze for the next command', async () => {
    const qga = await QgaConnection.connect(guest.qgaSocket);
    try {
      await assert.rejects(fsfreezeFreeze(qga, { timeoutMs: 1 }), QgaTimeoutError);
      // The freeze still happens in the guest; its reply (a number) arrives late.
      // A status (a string) that got it would fail the shape check.
      const status = await fsfreezeStatus(qga, { timeoutMs: 20_000 });
      assert.equal(status, 'frozen');
      assert.equal(qga.resyncs, 2);
      assert.equal(await fsfreezeThaw(qga), 2);
    } finally {
      await qga.close();
    }
  });

  it('serves one client at a time: a second waits, and works once the first has closed', async () => {
    const first = await QgaConnection.connect(guest.qgaSocket);
    await assert.rejects(QgaConnection.connect(guest.qgaSocket, { timeoutMs: 500 }), QgaTimeoutError);
    await ping(first);
    await first.close();
    const t0 = performance.now();
    const second = await QgaConnection.connect(guest.qgaSocket);
    await ping(second);
    assert.equal(await fsfreezeStatus(second), 'thawed');
    await second.close();
    assert.ok(performance.now() - t0 < 5000);
  });

  it('a client killed while the guest is frozen leaves it frozen until someone thaws', async () => {
    const child = freezeInChild(guest.qgaSocket);
    assert.equal(await child.done, 2);
    await child.kill();
    const qga = await QgaConnection.connect(guest.qgaSocket);
    try {
      await sleep(200);
      assert.equal(await fsfreezeStatus(qga), 'frozen', 'qemu-ga 7.2 does not thaw when its client goes away');
      assert.equal(await fsfreezeThaw(qga), 2);
      assert.equal(await fsfreezeStatus(qga), 'thawed');
    } finally {
      await qga.close();
    }
  });
});
