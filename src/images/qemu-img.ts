// qemu-img as the image service uses it: always with an explicit format, so a
// file's header can never choose how QEMU reads it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface QemuImgInfo {
  readonly virtualSizeBytes: number;
  readonly backingFile: string | null;
  readonly dataFile: string | null;
}

export async function qemuImgInfo(path: string, format: 'raw' | 'qcow2'): Promise<QemuImgInfo> {
  // -U: the file may be open elsewhere read-only (a copy into a volume); info only reads metadata.
  const { stdout } = await run('qemu-img', ['info', '-U', '-f', format, '--output=json', path], { timeout: 60_000, maxBuffer: 4 * 1024 * 1024 });
  const info = JSON.parse(stdout) as { 'virtual-size'?: number; 'backing-filename'?: string; 'full-backing-filename'?: string; 'format-specific'?: { data?: { 'data-file'?: string } } };
  if (typeof info['virtual-size'] !== 'number') throw new Error(`qemu-img info reported no virtual size for ${path}`);
  return {
    virtualSizeBytes: info['virtual-size'],
    backingFile: info['backing-filename'] ?? info['full-backing-filename'] ?? null,
    dataFile: info['format-specific']?.data?.['data-file'] ?? null,
  };
}

/** qemu-img convert with both formats explicit; extra options (-n, -U) are the caller's. */
export async function qemuImgConvert(opts: { src: string; srcFormat: 'raw' | 'qcow2'; dst: string; dstFormat: 'raw' | 'qcow2'; noCreate?: boolean; timeoutMs?: number }): Promise<void> {
  const args = ['convert', '-f', opts.srcFormat, '-O', opts.dstFormat];
  if (opts.noCreate) args.push('-n');
  args.push(opts.src, opts.dst);
  await run('qemu-img', args, { timeout: opts.timeoutMs ?? 60 * 60_000, maxBuffer: 4 * 1024 * 1024 });
}

/** An NBD export on a unix socket as a qemu-img filename. */
export function nbdUnixUrl(socketPath: string, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socketPath}`;
}
