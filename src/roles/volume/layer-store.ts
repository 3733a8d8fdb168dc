// Queries over the layer forest of one host. A layer is needed while a volume
// writes to it, a snapshot names it, or another layer backs onto it.
import type { Executor } from '../../store/db.js';
import type { LayerRow } from '../../store/schema.js';

export async function layersOf(ex: Executor, host: string): Promise<LayerRow[]> {
  return ex.selectFrom('layers').selectAll().where('host', '=', host).execute();
}

export async function getLayer(ex: Executor, id: string): Promise<LayerRow | undefined> {
  return ex.selectFrom('layers').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Parents before children, so every layer is opened after its backing. */
export function topoOrder(layers: readonly LayerRow[]): LayerRow[] {
  const byId = new Map(layers.map((l) => [l.id, l]));
  const done = new Set<string>();
  const out: LayerRow[] = [];
  const visit = (l: LayerRow, depth: number) => {
    if (done.has(l.id)) return;
    if (depth > 10_000) throw new Error(`layer chain through ${l.id} has a cycle`);
    const parent = l.backing_layer_id ? byId.get(l.backing_layer_id) : undefined;
    if (parent) visit(parent, depth + 1);
    done.add(l.id);
    out.push(l);
  };
  for (const l of layers) visit(l, 0);
  return out;
}

export interface LayerRefs {
  readonly volumeTops: Map<string, string>;
  readonly snapshotLayers: Set<string>;
  readonly children: Map<string, string[]>;
}

export async function layerRefs(ex: Executor, host: string): Promise<LayerRefs> {
  const layers = await layersOf(ex, host);
  const ids = layers.map((l) => l.id);
  const volumeTops = new Map<string, string>();
  const snapshotLayers = new Set<string>();
  if (ids.length > 0) {
    const vols = await ex.selectFrom('volumes').select(['id', 'active_layer_id']).where('active_layer_id', 'in', ids).execute();
    for (const v of vols) if (v.active_layer_id) volumeTops.set(v.active_layer_id, v.id);
    const snaps = await ex.selectFrom('snapshots').select(['layer_id']).where('layer_id', 'in', ids).execute();
    for (const s of snaps) if (s.layer_id) snapshotLayers.add(s.layer_id);
    // A pinned layer is kept like a snapshot's (a backup's tracking base).
    const pins = await ex.selectFrom('layer_pins').select('layer_id').where('layer_id', 'in', ids).execute();
    for (const p of pins) snapshotLayers.add(p.layer_id);
  }
  const children = new Map<string, string[]>();
  for (const l of layers) {
    if (!l.backing_layer_id) continue;
    const list = children.get(l.backing_layer_id) ?? [];
    list.push(l.id);
    children.set(l.backing_layer_id, list);
  }
  return { volumeTops, snapshotLayers, children };
}
