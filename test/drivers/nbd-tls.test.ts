// The NBD client over TCP with NBD_OPT_STARTTLS and TLS-PSK, against a real
// qemu-storage-daemon serving with tls-creds-psk: bytes written come back, and
// a wrong key is refused during the TLS handshake.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { freePort } from '../harness/ports.js';

describe('NBD over TLS-PSK', () => {
  let dir: string;
  let qsd: ChildProcess;
  let port: number;
  const key = randomBytes(32);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-nbd-tls-'));
    writeFileSync(join(dir, 'keys.psk'), `bulwark:${key.toString('hex')}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(8 * 1024 * 1024));
    port = await freePort();
    qsd = spawn('qemu-storage-daemon', [
      '--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${dir}`,
      '--blockdev', `driver=file,filename=${join(dir, 'disk.raw')},node-name=file0`,
      '--nbd-server', `addr.type=inet,addr.host=127.0.0.1,addr.port=${port},tls-creds=tls0`,
      '--export', 'type=nbd,id=e0,node-name=file0,name=vol,writable=on',
    ], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const ok = await NbdClient.connectTls('127.0.0.1', port, 'vol', { identity: 'bulwark', key }).then(async (c) => { await c.close(); return true; }, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('qemu-storage-daemon did not come up');
  });
  after(() => {
    qsd?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes and reads back through the TLS connection, with block status', async () => {
    const c = await NbdClient.connectTls('127.0.0.1', port, 'vol', { identity: 'bulwark', key }, { metaContexts: ['base:allocation'] });
    assert.equal(c.size, 8 * 1024 * 1024);
    const data = randomBytes(1024 * 1024);
    await c.write(1024 * 1024, data);
    await c.flush();
    assert.ok((await c.read(1024 * 1024, data.length)).equals(data));
    await c.close();
  });

  it('a wrong key or identity is refused', async () => {
    await assert.rejects(NbdClient.connectTls('127.0.0.1', port, 'vol', { identity: 'bulwark', key: randomBytes(32) }));
    await assert.rejects(NbdClient.connectTls('127.0.0.1', port, 'vol', { identity: 'mallory', key }));
  });
});
