// The chunks a writer may dedup against without asking the store: the union
// of the index objects. Each finished backup writes `index/<backupId>` (the
// chunks it introduced); gc replaces them all by one `index/gc.<run>` of the
// chunks it kept. Loaded incrementally: a refresh reads only index objects it
// has not seen, and starts over when one it loaded is gone or a gc ran since
// the last refresh (gc may have deleted chunks this process added itself).
import { getSealed, listKeys, type RepoContext } from './context.js';
import { AuthError } from './errors.js';
import { addIdBytes, ChunkIdSet } from './id-set.js';
import { forEachLimit } from './semaphore.js';

export const INDEX_PREFIX = 'index/';

export function indexKey(name: string): string {
  return `${INDEX_PREFIX}${name}`;
}

export class KnownChunks {
  private ids = new ChunkIdSet();
  private loaded = new Set<string>();
  private gcRuns = new Set<string>();
  private refreshing: Promise<void> | undefined;
  /** Index objects that failed authentication (verify and gc do not depend on them). */
  readonly damaged = new Set<string>();

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
  }

  get size(): number {
    return this.ids.size;
  }

  /** Forget everything: after gc deleted chunks, nothing loaded so far can be trusted. */
  reset(): void {
    this.ids = new ChunkIdSet();
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
        // The index is only a shortcut past `has`: a damaged one is skipped, never trusted.
        if (!(err instanceof AuthError)) throw err;
        this.damaged.add(name);
        return;
      }
      if (raw === null) return; // consolidated away meanwhile; the next refresh starts over
      addIdBytes(this.ids, raw);
      this.loaded.add(name);
    });
  }
}
