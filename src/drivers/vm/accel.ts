// Choosing the accelerator for this host, once.
//
// /dev/kvm existing proves nothing: on nested-virtualisation hosts it is
// present yet a stock kernel never boots under it (QEMU dies setting MSRs, or
// the guest hangs). So 'auto' boots a throwaway VM under KVM and picks KVM
// only if its guest agent answers; otherwise TCG. The verdict is cached per
// (qemu binary, kernel path + mtime): later calls are instant.
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { waitForAgent } from './agent.js';
import { isRecord, readJson, writeFileAtomic } from './proc.js';
import { launchVm, vmPid, type VmHandle } from './vm.js';

export type Accel = 'kvm' | 'tcg';

export interface ChooseAccelOptions {
  mode: 'auto' | 'kvm' | 'tcg';
  qemuBinary: string;
  kernel: string;
  initrd: string;
  cacheFile: string;
  /** Budget for the KVM trial boot to an answered guest-ping. Default 30 s. */
  trialTimeoutMs?: number;
  /** Kernel command line of the trial VM. Default 'console=ttyS0'. */
  commandLine?: string;
}

interface CacheEntry {
  version: 1;
  qemuBinary: string;
  kernel: string;
  kernelMtimeMs: number;
  accel: Accel;
  reason: string;
  decidedAt: string;
}

const DEFAULT_TRIAL_TIMEOUT_MS = 30_000;
/** Concurrent callers in one process share one trial. */
const inFlight = new Map<string, Promise<{ accel: Accel; reason: string }>>();

function readCache(file: string): CacheEntry | null {
  try {
    const v = readJson(file);
    if (!isRecord(v) || v['version'] !== 1) return null;
    if (v['accel'] !== 'kvm' && v['accel'] !== 'tcg') return null;
    if (typeof v['reason'] !== 'string' || typeof v['kernel'] !== 'string' || typeof v['qemuBinary'] !== 'string' || typeof v['kernelMtimeMs'] !== 'number') return null;
    return v as unknown as CacheEntry;
  } catch {
    return null; // unreadable or corrupt: decide again
  }
}

export async function chooseAccel(opts: ChooseAccelOptions): Promise<{ accel: Accel; reason: string }> {
  if (opts.mode === 'tcg') return { accel: 'tcg', reason: 'accel configured as tcg' };
  if (opts.mode === 'kvm') return { accel: 'kvm', reason: 'accel configured as kvm' };
  if (opts.mode !== 'auto') throw new Error(`accel mode must be auto, kvm or tcg, not ${String(opts.mode)}`);

  const kernelMtimeMs = statSync(opts.kernel).mtimeMs;
  const cached = readCache(opts.cacheFile);
  if (cached && cached.qemuBinary === opts.qemuBinary && cached.kernel === opts.kernel && cached.kernelMtimeMs === kernelMtimeMs) {
    return { accel: cached.accel, reason: `${cached.reason} (cached decision of ${cached.decidedAt})` };
  }
  let p = inFlight.get(opts.cacheFile);
  if (!p) {
    p = decide(opts, kernelMtimeMs).finally(() => inFlight.delete(opts.cacheFile));
    inFlight.set(opts.cacheFile, p);
  }
  return p;
}

async function decide(opts: ChooseAccelOptions, kernelMtimeMs: number): Promise<{ accel: Accel; reason: string }> {
  const verdict = await trial(opts);
  const entry: CacheEntry = { version: 1, qemuBinary: opts.qemuBinary, kernel: opts.kernel, kernelMtimeMs, ...verdict, decidedAt: new Date().toISOString() };
  mkdirSync(dirname(opts.cacheFile), { recursive: true, mode: 0o700 });
  writeFileAtomic(opts.cacheFile, `${JSON.stringify(entry, null, 2)}\n`, 0o644);
  return verdict;
}

async function trial(opts: ChooseAccelOptions): Promise<{ accel: Accel; reason: string }> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm is not usable (${(e as NodeJS.ErrnoException).code ?? String(e)}): using TCG` };
  }
  const timeoutMs = opts.trialTimeoutMs ?? DEFAULT_TRIAL_TIMEOUT_MS;
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-kvm-trial-'));
  let vm: VmHandle | null = null;
  const ac = new AbortController();
  // Stop waiting as soon as the trial QEMU dies (emulation failure) instead of sitting out the timeout.
  const watch = setInterval(() => {
    if (vm && vmPid(dir) === null) ac.abort(new Error('the KVM trial QEMU exited'));
  }, 100);
  try {
    const started = Date.now();
    vm = await launchVm(
      { id: 'kvm-trial', dir, kernel: opts.kernel, initrd: opts.initrd, commandLine: opts.commandLine ?? 'console=ttyS0', memoryMib: 256, vcpus: 1, disks: [], accel: 'kvm' },
      { qemuBinary: opts.qemuBinary, startTimeoutMs: timeoutMs },
    );
    await waitForAgent(vm.qgaSocket, Math.max(1, timeoutMs - (Date.now() - started)), { signal: ac.signal });
    return { accel: 'kvm', reason: `KVM trial boot succeeded: the guest agent answered after ${Date.now() - started} ms` };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n').filter((l) => l.trim() !== '').slice(0, 4).join(' | ');
    return { accel: 'tcg', reason: `KVM trial boot failed (${msg}): using TCG` };
  } finally {
    clearInterval(watch);
    await vm?.powerOff(0).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
