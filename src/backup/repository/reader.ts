// Reading a backup back: extents in volume order, zero runs coalesced, data
// chunks fetched (ranged reads of their packs) and opened several at a time
// ahead of the consumer. Every
// chunk is authenticated (GCM tag with its id as AAD, then the id over the
// plaintext) before it is yielded.
import { ObjectNotFoundError } from '../store/object-store.js';
import { chunkKey } from './chunk-format.js';
import { packKey } from './pack.js';
import type { RepoContext } from './context.js';
import { AuthError, ChunkMissingError } from './errors.js';
import type { BackupManifest } from './manifest.js';

export interface Extent {
  readonly offset: number;
  readonly length: number;
  /** null: the extent reads as zeros. */
  readonly data: Uint8Array | null;
}

/** The sealed bytes of a chunk, from its pack; ChunkMissingError when no pack holds it. */
async function fetchSealed(ctx: RepoContext, id: string): Promise<Uint8Array> {
  for (let attempt = 0; ; attempt++) {
    const loc = ctx.known.locate(id) ?? (await ctx.known.locateSlow(ctx, id));
    if (!loc) throw new ChunkMissingError(id);
    try {
      // Read into a slab slot when the store can: the worker opens it from there.
      const into = ctx.store.capabilities.readInto ? ctx.codec.slab.take(loc.length) : null;
      let sealed: Uint8Array;
      try {
        sealed = await ctx.storeSlots.run(() => ctx.store.getRange(packKey(loc.pack), { offset: loc.offset, length: loc.length }, into ? { into } : {}));
        // A short read is a truncated pack: the chunk is damaged, not absent.
        if (sealed.length !== loc.length) throw new AuthError(chunkKey(id), `pack ${loc.pack} is truncated`);
      } catch (err) {
        ctx.codec.release(into);
        throw err;
      }
      if (into && sealed.buffer !== into.buffer) ctx.codec.release(into); // the store read elsewhere
      return sealed;
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
      // A gc may have repacked the chunk since we loaded the index: look again, once.
      if (attempt > 0) throw new ChunkMissingError(id);
      await ctx.known.reload(ctx);
    }
  }
}

/** The authenticated plaintext of a chunk. `checkId` (verify): also recompute its id. */
export async function fetchChunk(ctx: RepoContext, id: string, checkId = true): Promise<Uint8Array> {
  return ctx.codec.open(id, await fetchSealed(ctx, id), checkId);
}

interface Pending {
  readonly offset: number;
  readonly length: number;
  readonly data: Promise<Uint8Array> | null;
}

/**
 * The backup's extents in volume order. Data chunks may live in slots of the
 * codec's slab: by default an extent's data is valid until the next one is
 * asked for (it is then freed); with `owned` the consumer keeps each and
 * frees it with codec.release() (Repository.recycle) when it is done.
 */
export async function* readExtents(ctx: RepoContext, m: BackupManifest, opts: { readonly owned?: boolean } = {}): AsyncGenerator<Extent> {
  const t = m.table;
  const cs = m.chunkSize;
  const window = ctx.options.readAhead;
  const queue: Pending[] = [];
  let next = 0;
  let fetching = 0;
  const fill = (): void => {
    while (next < t.slots && fetching < window) {
      const i = next;
      if (!t.isData(i)) {
        let j = i;
        while (j < t.slots && !t.isData(j)) j++;
        queue.push({ offset: i * cs, length: Math.min(j * cs, m.volumeSize) - i * cs, data: null });
        next = j;
        continue;
      }
      const id = t.idAt(i);
      const length = t.slotLength(i);
      const data = fetchChunk(ctx, id, false).then((d) => {
        if (d.length === length) return d;
        ctx.codec.release(d);
        throw new AuthError(chunkKey(id), `holds ${d.length} bytes where the manifest expects ${length}`);
      });
      data.catch(() => undefined); // observed when dequeued; not an unhandled rejection if the consumer stops early
      queue.push({ offset: i * cs, length, data });
      fetching++;
      next++;
    }
  };
  let lent: Uint8Array | null = null;
  try {
    fill();
    while (queue.length > 0) {
      const e = queue.shift()!;
      if (e.data === null) {
        fill();
        yield { offset: e.offset, length: e.length, data: null };
        continue;
      }
      const data = await e.data;
      fetching--;
      fill();
      if (!opts.owned) lent = data;
      yield { offset: e.offset, length: e.length, data };
      ctx.codec.release(lent); // the consumer asked for more: it is done with the last one
      lent = null;
    }
  } finally {
    // An early stop (break, error): free what was lent and what was fetched ahead.
    ctx.codec.release(lent);
    for (const p of queue) p.data?.then((d) => ctx.codec.release(d), () => undefined);
  }
}
