// Reading a backup back: extents in volume order, zero runs coalesced, data
// chunks fetched and opened several at a time ahead of the consumer. Every
// chunk is authenticated (GCM tag with its id as AAD, then the id over the
// plaintext) before it is yielded.
import { ObjectNotFoundError } from '../store/object-store.js';
import { chunkKey } from './chunk-format.js';
import type { RepoContext } from './context.js';
import { AuthError, ChunkMissingError } from './errors.js';
import type { BackupManifest } from './manifest.js';

export interface Extent {
  readonly offset: number;
  readonly length: number;
  /** null: the extent reads as zeros. */
  readonly data: Uint8Array | null;
}

export async function fetchChunk(ctx: RepoContext, id: string): Promise<Uint8Array> {
  let sealed: Uint8Array;
  try {
    sealed = await ctx.storeSlots.run(() => ctx.store.get(chunkKey(id)));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new ChunkMissingError(id);
    throw err;
  }
  return ctx.codec.open(id, sealed);
}

interface Pending {
  readonly offset: number;
  readonly length: number;
  readonly data: Promise<Uint8Array> | null;
}

export async function* readExtents(ctx: RepoContext, m: BackupManifest): AsyncGenerator<Extent> {
  const t = m.table;
  const cs = m.chunkSize;
  const window = ctx.options.inFlight;
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
      const data = fetchChunk(ctx, id).then((d) => {
        if (d.length !== length) throw new AuthError(chunkKey(id), `holds ${d.length} bytes where the manifest expects ${length}`);
        return d;
      });
      data.catch(() => undefined); // observed when dequeued; not an unhandled rejection if the consumer stops early
      queue.push({ offset: i * cs, length, data });
      fetching++;
      next++;
    }
  };
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
    yield { offset: e.offset, length: e.length, data };
  }
}
