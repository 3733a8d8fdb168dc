// Graph operations of one pool, each safe to repeat after a crash at any point:
// the store records a layer (state `creating`, `pending_for`) before its file
// exists, and a file is unlinked only after its row says `deleting`.
import { existsSync, statSync, unlinkSync } from 'node:fs';
import { commitInto, createLayerImage, listExports, listOpenNodes, openLayer, closeLayer, snapshotLayers, streamInto } from '../../drivers/qsd/images.js';
import { queryJobs } from '../../drivers/qmp/commands.js';
import type { Executor, Store } from '../../store/db.js';
import { nowIso } from '../../store/db.js';
import type { LayerRow } from '../../store/schema.js';
import { newLayerId } from '../../services/ids.js';
import type { Logger } from '../../util/log.js';
import { getLayer, layerRefs, layersOf } from './layer-store.js';
import type { PoolRuntime } from './pool.js';

export const GiB = 1024 ** 3;

/** Runs a store write; the caller supplies its fenced transaction runner. */
export type Fenced = <T>(fn: (trx: Executor) => Promise<T>) => Promise<T>;

export class LayerOps {
  constructor(
    private readonly pool: PoolRuntime,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async findPending(ex: Executor, purpose: string): Promise<LayerRow | undefined> {
    return ex.selectFrom('layers').selectAll().where('host', '=', this.pool.host).where('pending_for', '=', purpose).executeTakeFirst();
  }

  /** Creates (or re-creates after a crash) the layer for `purpose`, backed by
   *  `backing`, and opens it. `openWithBacking` false leaves it without a backing
   *  node, as blockdev-snapshot requires of a new overlay. */
  async prepareLayer(fenced: Fenced, purpose: string, backing: LayerRow | null, sizeBytes: number, openWithBacking: boolean): Promise<LayerRow> {
    const qmp = this.pool.qmp;
    let layer = await this.findPending(this.store.db, purpose);
    if (layer && layer.backing_layer_id !== (backing?.id ?? null)) {
      await this.destroyLayer(layer);
      layer = undefined;
    }
    if (layer) {
      const open = (await listOpenNodes(qmp)).get(layer.id);
      if (open) return layer;
      // Left half-made by an earlier attempt: make it again from scratch.
      if (existsSync(layer.path)) unlinkSync(layer.path);
    } else {
      const id = newLayerId();
      layer = { id, host: this.pool.host, path: this.pool.layerPath(id), backing_layer_id: backing?.id ?? null, size_bytes: sizeBytes, state: 'creating', pending_for: purpose, created_at: nowIso() };
      const row = layer;
      await fenced((trx) => trx.insertInto('layers').values(row).execute());
    }
    await createLayerImage(qmp, { path: layer.path, sizeBytes, ...(backing ? { backing: { path: backing.path } } : {}) });
    await openLayer(qmp, { layerId: layer.id, path: layer.path, backingLayerId: openWithBacking ? layer.backing_layer_id : null, directIo: this.pool.directIo });
    return layer;
  }

  /** Freezes the tops of several volumes at one instant: one QMP transaction
   *  moves each volume onto a fresh overlay. Returns, per volume, the frozen
   *  layer (the old top). Repeatable: a switch that already happened is kept. */
  async switchToOverlays(fenced: Fenced, members: { volumeId: string; purpose: string }[], finalize: (trx: Executor, frozen: Map<string, string>) => Promise<void>): Promise<Map<string, string>> {
    const db = this.store.db;
    const overlays: { volumeId: string; top: LayerRow; overlay: LayerRow }[] = [];
    try {
      // One look at the graph: overlays prepared ahead (a plan run prepares
      // them before freezing its guests) are used as they are.
      const before = await listOpenNodes(this.pool.qmp);
      let madeHere = false;
      for (const m of members) {
        const vol = await db.selectFrom('volumes').select(['id', 'active_layer_id']).where('id', '=', m.volumeId).executeTakeFirstOrThrow();
        if (!vol.active_layer_id) throw new Error(`volume ${m.volumeId} has no storage yet`);
        const top = await getLayer(db, vol.active_layer_id);
        if (!top) throw new Error(`volume ${m.volumeId}: layer ${vol.active_layer_id} is missing`);
        const ready = await this.findPending(db, m.purpose);
        const prepared = ready && ready.backing_layer_id === top.id && before.has(ready.id) ? ready : undefined;
        const overlay = prepared ?? (await this.prepareLayer(fenced, m.purpose, top, top.size_bytes, false));
        madeHere ||= prepared === undefined;
        overlays.push({ volumeId: m.volumeId, top, overlay });
      }
      const graph = madeHere ? await listOpenNodes(this.pool.qmp) : before;
      const pending = overlays.filter((o) => graph.get(o.overlay.id)?.backingNodeName !== o.top.id);
      const started = process.hrtime.bigint();
      if (pending.length > 0) await snapshotLayers(this.pool.qmp, pending.map((o) => ({ activeLayerId: o.top.id, overlayLayerId: o.overlay.id })));
      this.log.info({ volumes: overlays.length, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'snapshot transaction');
    } catch (err) {
      // Nothing switched (the transaction is atomic): drop the overlays made for it.
      const graph = await listOpenNodes(this.pool.qmp).catch(() => new Map());
      for (const o of overlays) if (graph.get(o.overlay.id)?.backingNodeName !== o.top.id) await this.destroyLayer(o.overlay).catch(() => undefined);
      throw err;
    }
    const frozen = new Map(overlays.map((o) => [o.volumeId, o.top.id]));
    await fenced(async (trx) => {
      for (const o of overlays) await this.commitSwitch(trx, o.volumeId, o.top.id, o.overlay.id);
      await finalize(trx, frozen);
    });
    return frozen;
  }

  /** The store follows a switch QSD has made: the overlay becomes the volume's top. */
  async commitSwitch(trx: Executor, volumeId: string, oldTop: string, overlayId: string): Promise<void> {
    await trx.updateTable('layers').set({ state: 'ready', pending_for: null }).where('id', '=', overlayId).execute();
    await trx.updateTable('volumes').set({ active_layer_id: overlayId, updated_at: nowIso() }).where('id', '=', volumeId).where('active_layer_id', '=', oldTop).execute();
  }

  /** Removes a layer nobody needs: row marked deleting, node closed, file unlinked, row dropped. */
  async destroyLayer(layer: LayerRow): Promise<void> {
    await this.store.db.updateTable('layers').set({ state: 'deleting' }).where('id', '=', layer.id).execute();
    await closeLayer(this.pool.qmp, layer.id);
    if (existsSync(layer.path)) unlinkSync(layer.path);
    await this.store.db.deleteFrom('layers').where('id', '=', layer.id).execute();
  }

  /** Reclaims space until nothing changes: a layer that no volume writes to and no
   *  snapshot names is deleted when nothing backs onto it, and merged with its
   *  only child when one layer does, whichever way copies less (see mergeWithChild).
   *  Shared bases stay. */
  async collectGarbage(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      const layers = await layersOf(this.store.db, this.pool.host);
      const refs = await layerRefs(this.store.db, this.pool.host);
      const byId = new Map(layers.map((l) => [l.id, l]));
      let changed = false;
      for (const l of layers) {
        if (l.state === 'deleting') {
          await this.destroyLayer(l);
          changed = true;
          break;
        }
        if (l.state !== 'ready' || refs.volumeTops.has(l.id) || refs.snapshotLayers.has(l.id)) continue;
        const kids = refs.children.get(l.id) ?? [];
        if (kids.length === 0) {
          this.log.info({ layer: l.id }, 'deleting an unneeded layer');
          await this.destroyLayer(l);
          changed = true;
          break;
        }
        const kid = kids.length === 1 ? byId.get(kids[0]!) : undefined;
        if (kid && kid.state === 'ready') {
          const grandchildren = (refs.children.get(kid.id) ?? []).map((id) => byId.get(id));
          if (!(await this.mergeWithChild(l, kid, { isTop: refs.volumeTops.has(kid.id), children: grandchildren }))) continue;
          changed = true;
          break;
        }
      }
      if (!changed) return;
    }
  }

  /**
   * Merges an unneeded layer with its only child. Streaming the layer up into the
   * child copies the layer; committing the child down into the layer copies the
   * child, then the layer takes the child's place (its snapshots, pins and
   * children). After a backup's temporary snapshot the child is typically the
   * few changed MiB and the layer the whole volume, so each incremental costs
   * what changed instead of a rewrite of the volume. The child is committed down
   * only when it is smaller and only a middle layer: not a volume's top (that
   * would be an active commit) and not exported itself. Either way the survivor
   * is flushed before the other layer's file goes; a crash at any point leaves a
   * chain that reads the same and a merge that repeats.
   *
   * When the child cannot be committed down (a volume's top, say, after its
   * only snapshot was deleted) and is the smaller, the merge waits instead of
   * streaming the whole layer up, as Longhorn keeps a removed snapshot under
   * its volume head: the chain stays one layer deeper and the clusters the
   * child has overwritten stay allocated, at most the child's size. It happens
   * in a later collection, once the child is a middle layer (a new snapshot)
   * or the larger of the two. Returns whether anything was merged.
   */
  private async mergeWithChild(l: LayerRow, kid: LayerRow, kidIs: { isTop: boolean; children: (LayerRow | undefined)[] }): Promise<boolean> {
    const qmp = this.pool.qmp;
    const allocated = (path: string): number => (existsSync(path) ? statSync(path).blocks * 512 : 0);
    // Only under finished layers: one still being made may not be open yet.
    const middle = !kidIs.isTop && kidIs.children.length > 0 && kidIs.children.every((c) => c?.state === 'ready');
    // A merge begun before a crash is finished the way it began: a job left
    // running, or a commit QSD finished (every child already sits on l) that the
    // store had not followed yet.
    const jobs = new Set((await queryJobs(qmp)).map((j) => j.id));
    const live = await listOpenNodes(qmp);
    const committed = middle && kidIs.children.every((c) => c !== undefined && live.get(c.id)?.backingNodeName === l.id);
    const streaming = jobs.has(`stream-${kid.id}`);
    const kidSmaller = allocated(kid.path) < allocated(l.path);
    const down = !streaming && (jobs.has(`commit-${kid.id}`) || committed || (middle && kidSmaller && !(await listExports(qmp)).some((e) => e.nodeName === kid.id)));
    if (!down) {
      if (!streaming && kidSmaller) {
        this.log.debug({ layer: l.id, child: kid.id }, 'an unneeded layer stays under its smaller child until it can be committed down');
        return false;
      }
      this.log.info({ layer: l.id, into: kid.id }, 'merging an unneeded layer into its only child');
      await streamInto(qmp, { topLayerId: kid.id, baseLayerId: l.backing_layer_id, jobId: `stream-${kid.id}` });
      await this.store.db.updateTable('layers').set({ backing_layer_id: l.backing_layer_id }).where('id', '=', kid.id).execute();
      await this.destroyLayer(l);
      return true;
    }
    this.log.info({ layer: kid.id, into: l.id }, 'committing a small layer down into its unneeded base');
    await commitInto(qmp, { topLayerId: kid.id, baseLayerId: l.id, jobId: `commit-${kid.id}` });
    await this.store.transaction(async (trx) => {
      await trx.updateTable('snapshots').set({ layer_id: l.id }).where('layer_id', '=', kid.id).execute();
      await trx.updateTable('layer_pins').set({ layer_id: l.id }).where('layer_id', '=', kid.id).execute();
      await trx.updateTable('layers').set({ backing_layer_id: l.id }).where('backing_layer_id', '=', kid.id).execute();
      // The commit grew the base to the child's size if the volume was extended in between.
      await trx.updateTable('layers').set({ size_bytes: Math.max(l.size_bytes, kid.size_bytes) }).where('id', '=', l.id).execute();
      await trx.updateTable('layers').set({ state: 'deleting' }).where('id', '=', kid.id).execute();
    });
    await this.destroyLayer({ ...kid, state: 'deleting' });
    return true;
  }

  /** After a fresh QSD start, rolls forward snapshot switches interrupted by a
   *  crash: an overlay made for a switch becomes the volume's top. That is always
   *  safe: if the switch had not happened the overlay is empty and the snapshot
   *  simply shows the volume at the crash, when nothing was writing. */
  async rollForwardSwitches(onSnapshot: (trx: Executor, purpose: string, frozenLayerId: string) => Promise<void>): Promise<void> {
    const db = this.store.db;
    const pending = await db.selectFrom('layers').selectAll().where('host', '=', this.pool.host).where('state', '=', 'creating').execute();
    const graph = await listOpenNodes(this.pool.qmp);
    for (const layer of pending) {
      const purpose = layer.pending_for ?? '';
      if (!purpose.startsWith('snapshot:') && !purpose.startsWith('clone:')) continue;
      if (!layer.backing_layer_id || graph.get(layer.id)?.backingNodeName !== layer.backing_layer_id) continue;
      const vol = await db.selectFrom('volumes').select('id').where('active_layer_id', '=', layer.backing_layer_id).executeTakeFirst();
      if (!vol) continue;
      this.log.warn({ layer: layer.id, volume: vol.id, purpose }, 'rolling forward an interrupted snapshot switch');
      await this.store.transaction(async (trx) => {
        await this.commitSwitch(trx, vol.id, layer.backing_layer_id!, layer.id);
        await onSnapshot(trx, purpose, layer.backing_layer_id!);
      });
    }
  }
}
