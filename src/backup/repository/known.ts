// Where the chunks are: the union of the index objects, id -> (pack, offset,
// length). Writers dedup against it without asking the store; readers locate
// chunks through it. Each finished backup writes `index/<backupId>` (the
// chunks it stored, with their locations); gc replaces them all by one
// `index/gc.<run>` of the chunks it kept. Loaded incrementally: a refresh reads
// only index objects it has not seen, and starts over when one it loaded is
// gone or a gc ran since the last refresh (gc may have moved or deleted chunks).
//
// A chunk no index names (its backup crashed before writing its index, or an
// index object is damaged) is found through the pack trailers: locateSlow
// reads the trailers of the packs no loaded index names.
import { ChunkMap, addLocationRecords, type ChunkLocation } from './chunk-map.js';
import { getSealed, listKeys, type RepoContext } from './context.js';
import { AuthError } from './errors.js';
import { listGcRecords } from './locks.js';
import { PACK_PREFIX, PackFormatError, readPackEntries } from './pack.js';
import { forEachLimit } from './semaphore.js';
import { ObjectNotFoundError } from '../store/object-store.js';

export const INDEX_PREFIX = 'index/';

export function indexKey(name: string): string {
  return `${INDEX_PREFIX}${name}`;
}

export class KnownChunks {
  private map = new ChunkMap();
  /** Locations read from pack trailers: never used for dedup (no index vouches for them yet). */
  private hints = new ChunkMap();
  private scannedPacks = new Set<string>();
  private loaded = new Set<string>();
  private gcRuns = new Set<string>();
  private refreshing: Promise<void> | undefined;
  /** Index objects that failed authentication (verify and gc do not depend on them). */
  readonly damaged = new Set<string>();

  has(id: string): boolean {
    return this.map.has(id);
  }

  /** The indexed location of a chunk, if any index names it. */
  locate(id: string): ChunkLocation | undefined {
    return this.map.get(id);
  }

  locateBytes(id: Uint8Array): ChunkLocation | undefined {
    return this.map.getBytes(id);
  }

  add(id: string, l: ChunkLocation): void {
    this.map.set(id, l);
  }

  get size(): number {
    return this.map.size;
  }

  /** Every indexed chunk and its location. */
  entries(): IterableIterator<[string, ChunkLocation]> {
    return this.map.entries();
  }

  /** Forget everything: after gc moved or deleted chunks, nothing loaded so far can be trusted. */
  reset(): void {
    this.map = new ChunkMap();
    this.hints = new ChunkMap();
    this.scannedPacks = new Set();
    this.loaded = new Set();
  }

  /** gcRuns: the gc records in the store now (see locks.ts). */
  refresh(ctx: RepoContext, gcRuns: readonly string[]): Promise<void> {
    if (gcRuns.some((r) => !this.gcRuns.has(r))) {
      this.reset();
      this.gcRuns = new Set(gcRuns);
    }
    this.refreshing ??= this.load(ctx).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Refresh against the gc records in the store now. */
  async update(ctx: RepoContext): Promise<void> {
    const runs = await listGcRecords(ctx);
    await this.refresh(
      ctx,
      runs.map((r) => r.runId),
    );
  }

  /** Start over from the store (a pack we were pointed at is gone: a gc repacked it). */
  async reload(ctx: RepoContext): Promise<void> {
    await this.refreshing;
    this.reset();
    await this.update(ctx);
  }

  /** A location read from a pack trailer (unauthenticated: read and open the chunk before relying on it). */
  hint(id: string): ChunkLocation | undefined {
    return this.hints.get(id);
  }

  /** Reads the trailers of the packs no loaded index names (packs of crashed or running writers). */
  async scanUnindexed(ctx: RepoContext): Promise<void> {
    const indexed = new Set(this.map.packs());
    const packs = (await listKeys(ctx.store, PACK_PREFIX)).map((k) => k.slice(PACK_PREFIX.length));
    const todo = packs.filter((p) => !indexed.has(p) && !this.scannedPacks.has(p));
    await forEachLimit(todo, ctx.options.inFlight, async (pack) => {
      let entries;
      try {
        entries = await ctx.storeSlots.run(() => readPackEntries(ctx.store, pack));
      } catch (err) {
        if (err instanceof PackFormatError || err instanceof ObjectNotFoundError) return;
        throw err;
      }
      for (const e of entries) this.hints.set(e.id, { pack, offset: e.offset, length: e.length });
      this.scannedPacks.add(pack);
    });
  }

  /**
   * The location of a chunk no loaded index names, from the trailers of the
   * packs no index names. The chunk is authenticated when read, like any other.
   */
  async locateSlow(ctx: RepoContext, id: string): Promise<ChunkLocation | undefined> {
    const found = this.map.get(id) ?? this.hints.get(id);
    if (found) return found;
    await this.scanUnindexed(ctx);
    return this.hints.get(id);
  }

  private async load(ctx: RepoContext): Promise<void> {
    const names = new Set((await listKeys(ctx.store, INDEX_PREFIX)).map((k) => k.slice(INDEX_PREFIX.length)));
    for (const n of this.loaded) {
      if (!names.has(n)) {
        this.reset();
        break;
      }
    }
    const fresh = [...names].filter((n) => !this.loaded.has(n) && !this.damaged.has(n));
    await forEachLimit(fresh, ctx.options.inFlight, async (name) => {
      let raw: Uint8Array | null;
      try {
        raw = await getSealed(ctx, indexKey(name), 'index', name);
      } catch (err) {
        // A damaged index is skipped, never trusted: its chunks are found through the pack trailers.
        if (!(err instanceof AuthError)) throw err;
        this.damaged.add(name);
        return;
      }
      if (raw === null) return; // consolidated away meanwhile; the next refresh starts over
      addLocationRecords(this.map, raw);
      this.loaded.add(name);
    });
  }
}
