// The progress of a backup as one line on stderr: redrawn in place with \r on a
// terminal, one plain line every few seconds otherwise (logs, pipes).
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, type Resource } from './client.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** `[#######.............]  35% 358.0 MiB / 1.0 GiB`; an unknown total shows bytes only. */
export function renderBar(done: number, total: number, width = 30): string {
  if (total <= 0) return `[${'.'.repeat(width)}] ${formatBytes(done)}`;
  const frac = Math.min(1, Math.max(0, done / total));
  const filled = Math.round(frac * width);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct} ${formatBytes(done)} / ${formatBytes(total)}`;
}

export interface ProgressSink {
  readonly isTTY: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  readonly timeoutMs: number;
  /** Between polls; default 500 ms. */
  readonly pollMs?: number;
  /** Between lines when the sink is not a terminal; default 5 s. */
  readonly lineEveryMs?: number;
}

/**
 * Polls the progress resource until the backup leaves 'creating' and draws the
 * bar. Returns the final progress body when it is 'available'; throws with the
 * status otherwise, or when time runs out.
 */
export async function followBackup(label: string, poll: () => Promise<Resource>, sink: ProgressSink, opts: ProgressOptions): Promise<Resource> {
  const started = Date.now();
  const lineEvery = opts.lineEveryMs ?? 5_000;
  let lastLine = -Infinity;
  let drawn = false;
  const draw = (p: Resource, final: boolean) => {
    const text = `${label}: ${renderBar(Number(p['bytes_done'] ?? 0), Number(p['bytes_total'] ?? 0))} ${String(p['status'] ?? '')}`;
    if (sink.isTTY) {
      sink.write(`\r\x1b[K${text}${final ? '\n' : ''}`);
      drawn = !final;
    } else if (final || Date.now() - lastLine >= lineEvery) {
      sink.write(`${text}\n`);
      lastLine = Date.now();
    }
  };
  try {
    for (;;) {
      const p = await poll();
      const status = String(p['status'] ?? 'unknown');
      if (status !== 'creating') {
        // A finished backup has read everything it had to: the bar ends full.
        draw(status === 'available' ? { ...p, bytes_done: p['bytes_total'] } : p, true);
        if (status === 'available') return p;
        throw new CliError(`${label} went to status ${status}`);
      }
      draw(p, false);
      if (Date.now() - started > opts.timeoutMs) throw new CliError(`${label} still ${status} after ${Math.round((Date.now() - started) / 1000)}s; gave up waiting`);
      await sleep(opts.pollMs ?? 500);
    }
  } finally {
    if (drawn) sink.write('\n');
  }
}
