// Real NBD clients for tests: qemu-io (qemu-utils) and nbdinfo/nbdcopy (libnbd-bin).
// qemu-io always gets an explicit format (raw over NBD): nothing is probed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface NbdTarget {
  readonly socketPath: string;
  readonly exportName: string;
}

function imageOpts(t: NbdTarget): string {
  return `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=${t.socketPath},file.export=${t.exportName}`;
}

/** Writes `pattern` bytes at offset (qemu-io `write -P`), then flushes. */
export async function writePattern(t: NbdTarget, offset: number, length: number, pattern: number): Promise<void> {
  await run('qemu-io', ['--image-opts', imageOpts(t), '-c', `write -P ${pattern} ${offset} ${length}`, '-c', 'flush']);
}

/** True when the range reads back as `pattern` (qemu-io `read -P` fails otherwise). */
export async function readMatches(t: NbdTarget, offset: number, length: number, pattern: number): Promise<boolean> {
  try {
    const { stdout } = await run('qemu-io', ['--image-opts', '-r', imageOpts(t), '-c', `read -P ${pattern} ${offset} ${length}`]);
    return !/Pattern verification failed/.test(stdout);
  } catch {
    return false;
  }
}

/** Reads the whole export through nbdcopy and returns its bytes. */
export async function readAll(t: NbdTarget): Promise<Buffer> {
  const uri = `nbd+unix:///${t.exportName}?socket=${t.socketPath}`;
  const { stdout } = await run('nbdcopy', [uri, '-'], { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout as unknown as Buffer;
}

export async function sha256Of(t: NbdTarget): Promise<string> {
  return createHash('sha256').update(await readAll(t)).digest('hex');
}
