// A FIFO counting semaphore. With n = bytes it bounds memory in flight; with
// n = 1 it bounds concurrent store operations. FIFO so a large request is not
// starved by a stream of small ones.
export class Semaphore {
  private available: number;
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new Error('semaphore capacity must be positive');
    this.available = capacity;
  }

  /** Requests above capacity are clamped to it, so they wait for an idle semaphore instead of forever. */
  acquire(n = 1): Promise<void> {
    const want = Math.min(n, this.capacity);
    if (this.waiters.length === 0 && this.available >= want) {
      this.available -= want;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push({ n: want, resolve }));
  }

  release(n = 1): void {
    this.available += Math.min(n, this.capacity);
    while (this.waiters.length > 0 && this.available >= this.waiters[0]!.n) {
      const w = this.waiters.shift()!;
      this.available -= w.n;
      w.resolve();
    }
  }

  async run<T>(fn: () => Promise<T>, n = 1): Promise<T> {
    await this.acquire(n);
    try {
      return await fn();
    } finally {
      this.release(n);
    }
  }
}

/** Runs fn over items with at most `limit` in flight; rejects with the first failure. */
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed: unknown;
  let stop = false;
  const lane = async (): Promise<void> => {
    while (!stop) {
      const next = it.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (err) {
        if (!stop) failed = err;
        stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, lane));
  if (stop) throw failed;
}
