// The change map of a snapshot for a backup: which extents changed since the
// backup's base layer, which are unchanged (inherited from the parent backup)
// and which read as zeros. Computed here, on the volume's host, from NBD block
// status (qemu:allocation-depth + base:allocation), so a backup service on any
// host needs only the data export (ADR 0007).
import { NbdClient } from '../../drivers/nbd/client.js';
import type { Extent } from '../../drivers/nbd/protocol.js';

export type ChangeKind = 'changed' | 'unchanged' | 'zero';

export interface ChangeExtent {
  readonly offset: number;
  readonly length: number;
  readonly kind: ChangeKind;
}

export interface ChangeMap {
  /** allocation-depth: only changed extents need reading; full-read: the base is
   *  not under this snapshot any more, so every allocated extent is read. */
  readonly tracking: 'allocation-depth' | 'full-read';
  readonly extents: ChangeExtent[];
  readonly changedBytes: number;
}

const BASE_ZERO = 2;

/**
 * Merges the two block-status maps. `chain` lists the layers from the exported
 * one downwards (depth d = chain[d-1]); `baseLayerId` is the parent backup's
 * pinned layer, or null for a full backup.
 */
export function mergeChangeMap(size: number, depth: readonly Extent[], alloc: readonly Extent[], chain: readonly string[], baseLayerId: string | null): ChangeMap {
  const baseIndex = baseLayerId === null ? -1 : chain.indexOf(baseLayerId);
  const tracking = baseLayerId === null || baseIndex >= 0 ? 'allocation-depth' : 'full-read';
  // Depths 1..baseIndex are the layers written after the base.
  const changedDepth = (d: number) => baseLayerId === null || baseIndex < 0 || d <= baseIndex;
  const cuts = new Set<number>([0, size]);
  for (const e of [...depth, ...alloc]) {
    if (e.offset < size) cuts.add(e.offset);
    if (e.offset + e.length < size) cuts.add(e.offset + e.length);
  }
  const points = [...cuts].sort((a, b) => a - b);
  const flagsAt = (list: readonly Extent[], off: number) => list.find((e) => e.offset <= off && off < e.offset + e.length)?.flags ?? 0;
  const extents: ChangeExtent[] = [];
  let changedBytes = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const offset = points[i]!;
    const length = points[i + 1]! - offset;
    const d = flagsAt(depth, offset);
    const zero = d === 0 || (flagsAt(alloc, offset) & BASE_ZERO) !== 0;
    const kind: ChangeKind = zero ? (baseLayerId !== null && tracking === 'allocation-depth' && d !== 0 && !changedDepth(d) ? 'unchanged' : 'zero') : changedDepth(d) ? 'changed' : 'unchanged';
    if (kind === 'changed') changedBytes += length;
    const last = extents[extents.length - 1];
    if (last && last.kind === kind && last.offset + last.length === offset) extents[extents.length - 1] = { ...last, length: last.length + length };
    else extents.push({ offset, length, kind });
  }
  return { tracking, extents, changedBytes };
}

export async function computeChangeMap(socketPath: string, exportName: string, chain: readonly string[], baseLayerId: string | null): Promise<ChangeMap> {
  const c = await NbdClient.connectUnix(socketPath, exportName, { metaContexts: ['base:allocation', 'qemu:allocation-depth'] });
  try {
    const depth = await c.mapAll('qemu:allocation-depth');
    const alloc = await c.mapAll('base:allocation');
    return mergeChangeMap(c.size, depth, alloc, chain, baseLayerId);
  } finally {
    await c.close();
  }
}
