// An attachment from another host gets NBD over TCP with TLS-PSK (through the
// pool's gateway daemon); qemu-io writes through it with the PSK from the
// connection info, a local attachment reads the same bytes, and a client
// without TLS is refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deploy, type Deployment } from '../harness/aio.js';
import { readMatches } from '../harness/nbd.js';
import { freePort } from '../harness/ports.js';
import { attachLocal, createVolume } from './helpers.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface TcpInfo {
  host: string;
  port: number;
  export_name: string;
  transport: string;
  tls: string;
  psk_identity: string;
  psk_key: string;
}

describe('remote attach over NBD with TLS-PSK', () => {
  let d: Deployment;
  let keysDir: string;
  before(async () => {
    d = await deploy({ overrides: { volume: { nbdTcp: { host: '127.0.0.1', port: await freePort() } } } });
    keysDir = mkdtempSync(join(tmpdir(), 'bulwark-psk-'));
  });
  after(async () => {
    await d?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });

  it('writes over TLS from "another host" and reads back locally', async () => {
    const s = d.member;
    const vol = await createVolume(s, { size: 1 });
    const res = await s.call<{ connection_info: { driver_volume_type: string; data: TcpInfo } }>('POST', `/volumes/${vol}/action`, {
      'os-initialize_connection': { connector: { host: 'compute-2' } },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const info = res.body.connection_info.data;
    assert.equal(info.transport, 'tcp');
    assert.equal(info.tls, 'psk');
    assert.match(info.psk_key, /^[0-9a-f]{64}$/);
    // The client side of TLS-PSK: a keys.psk file the client reads (never argv).
    writeFileSync(join(keysDir, 'keys.psk'), `${info.psk_identity}:${info.psk_key}\n`, { mode: 0o600 });
    const opts = `driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=${info.host},file.server.port=${info.port},file.export=${info.export_name}`;
    await run('qemu-io', ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${keysDir},username=${info.psk_identity}`, '--image-opts', `${opts},file.tls-creds=tls0`, '-c', `write -P 0x7e 0 ${2 * MiB}`, '-c', 'flush']);
    await assert.rejects(run('qemu-io', ['-r', '--image-opts', opts, '-c', 'read 0 4096']), 'a client without TLS is refused');
    const local = await attachLocal(s, vol);
    assert.ok(await readMatches(local, 0, 2 * MiB, 0x7e), 'the bytes written over TLS are on the volume');
  });
});
