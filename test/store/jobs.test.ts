import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { JobWorker } from '../../src/roles/worker.js';
import { JobQueue, StaleJobError } from '../../src/store/jobs.js';
import { createLogger } from '../../src/util/log.js';
import { dialects, openTestStore, stopSharedPostgres } from '../harness/stores.js';

after(stopSharedPostgres);

for (const dialect of dialects) {
  describe(`job queue on ${dialect}`, () => {
    it('claims in order, only for its target, once', async () => {
      const { store, cleanup } = await openTestStore(dialect, 'jobs_order');
      try {
        const q = new JobQueue(store, 10_000);
        const a = await q.enqueue(store.db, { kind: 'create_volume', target: 'h1@p', resourceId: 'v1' });
        const b = await q.enqueue(store.db, { kind: 'create_volume', target: 'h2@p', resourceId: 'v2' });
        const c = await q.enqueue(store.db, { kind: 'schedule', target: null, resourceId: 'v3' });
        assert.equal((await q.claim('w1', ['h1@p']))?.id, a);
        assert.equal(await q.claim('w1', ['h1@p']), null, 'a claimed job is not handed out twice');
        assert.equal((await q.claim('w2', [null]))?.id, c);
        const jb = await q.claim('w3', ['h2@p']);
        assert.equal(jb?.id, b);
        assert.equal(jb?.fence, 1);
      } finally {
        await cleanup();
      }
    });

    it('concurrent claimers never share a job', async () => {
      const { store, cleanup } = await openTestStore(dialect, 'jobs_race');
      try {
        const q = new JobQueue(store, 10_000);
        for (let i = 0; i < 40; i++) await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: `r${i}` });
        const claimed: number[] = [];
        await Promise.all(
          Array.from({ length: 8 }, async (_, w) => {
            for (;;) {
              const job = await q.claim(`w${w}`, ['t']);
              if (!job) return;
              claimed.push(job.id);
              assert.ok(await q.complete(job));
            }
          }),
        );
        assert.equal(claimed.length, 40);
        assert.equal(new Set(claimed).size, 40);
      } finally {
        await cleanup();
      }
    });

    it('an expired lease is taken over and the old owner is fenced off', async () => {
      const { store, cleanup } = await openTestStore(dialect, 'jobs_fence');
      try {
        const q = new JobQueue(store, 50);
        await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'r' });
        const first = await q.claim('dead', ['t']);
        assert.ok(first);
        await new Promise((r) => setTimeout(r, 80));
        const second = await q.claim('alive', ['t']);
        assert.equal(second?.id, first.id);
        assert.equal(second?.fence, first.fence + 1);
        assert.equal(await q.renew(first), false, 'stale owner cannot renew');
        assert.equal(await q.complete(first), false, 'stale owner cannot complete');
        await assert.rejects(q.withFence(first, async () => 1), StaleJobError);
        assert.equal(await q.withFence(second, async () => 7), 7);
        assert.ok(await q.complete(second, { ok: true }));
        const row = await q.get(first.id);
        assert.equal(row?.state, 'done');
        assert.equal(row?.owner, 'alive');
      } finally {
        await cleanup();
      }
    });

    it('a held target runs only its holders\' jobs until the hold is released or lapses', async () => {
      const { store, cleanup } = await openTestStore(dialect, 'jobs_hold');
      try {
        const q = new JobQueue(store, 60_000);
        const other = await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'someone-else' });
        await q.hold(store.db, ['t', 't'], 'run-1', Date.now() + 60_000);
        assert.equal(await q.claim('w', ['t']), null, 'a job of another resource waits while the target is held');
        const elsewhere = await q.enqueue(store.db, { kind: 'k', target: 'u', resourceId: 'someone-else' });
        assert.equal((await q.claim('w', ['u']))?.id, elsewhere, 'other targets are not held');
        const mine = await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'run-1' });
        assert.equal((await q.claim('w', ['t']))?.id, mine, "the holder's job runs, though queued later");
        await q.hold(store.db, ['t'], 'run-2', Date.now() - 1);
        assert.equal(await q.claim('w', ['t']), null, 'a lapsed hold beside a live one changes nothing');
        await q.unhold(store.db, 'run-1');
        assert.equal((await q.claim('w', ['t']))?.id, other, 'released: the waiting job runs, a lapsed hold does not keep it');
        await q.prune(60_000);
        assert.deepEqual(await store.db.selectFrom('job_holds').select('holder').execute(), [], 'prune drops lapsed holds');
      } finally {
        await cleanup();
      }
    });

    it('a restarted service requeues its own running jobs only', async () => {
      const { store, cleanup } = await openTestStore(dialect, 'jobs_requeue');
      try {
        const q = new JobQueue(store, 60_000);
        await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'a' });
        await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'b' });
        const mine = await q.claim('me', ['t']);
        const theirs = await q.claim('other', ['t']);
        assert.ok(mine && theirs);
        assert.equal(await q.requeueOwnedBy('me'), 1);
        const again = await q.claim('me', ['t']);
        assert.equal(again?.id, mine.id);
        assert.equal(await q.claim('me', ['t']), null, "the other owner's live job stays with it");
      } finally {
        await cleanup();
      }
    });
  });
}

/**
 * A started worker for kind "k" on target "t" whose poll interval is far beyond
 * any test's patience: only a change hint can start a job in time. `handled`
 * gives the first job's resource id, or rejects with `why` after `withinMs`.
 */
function sleepyWorker(q: JobQueue, why: string, withinMs: number): { worker: JobWorker; handled: Promise<string> } {
  let ran: (resource: string) => void = () => undefined;
  const ranFirst = new Promise<string>((r) => (ran = r));
  const worker = new JobWorker({
    jobs: q,
    owner: 'w1',
    targets: ['t'],
    handlers: { k: async (job) => ran(job.resourceId) },
    pollIntervalMs: 600_000,
    leaseTtlMs: 10_000,
    log: createLogger('test', 'silent'),
  });
  worker.start();
  // Unref'd: the deadline alone must not keep the test file running once the job ran.
  const handled = Promise.race([ranFirst, new Promise<string>((_, reject) => setTimeout(() => reject(new Error(why)), withinMs).unref())]);
  handled.catch(() => undefined); // awaited by the test; a test failing earlier leaves it unobserved
  return { worker, handled };
}

for (const dialect of dialects) {
  describe(`job worker wake-ups on ${dialect}`, () => {
    it('an idle worker claims a job another process enqueues at once, not at its next poll', async () => {
      const { store, url, cleanup } = await openTestStore(dialect, 'jobs_wake');
      const q = new JobQueue(store, 10_000);
      const { worker, handled } = sleepyWorker(q, 'the idle worker did not wake within 10 s', 10_000);
      try {
        await new Promise((r) => setTimeout(r, 300)); // the worker's first look found nothing: it sleeps
        const enqueue = `
          const { openStore } = await import(${JSON.stringify(new URL('../../src/store/db.js', import.meta.url).href)});
          const { JobQueue } = await import(${JSON.stringify(new URL('../../src/store/jobs.js', import.meta.url).href)});
          const store = await openStore(${JSON.stringify(url)});
          await new JobQueue(store, 10_000).enqueue(store.db, { kind: 'k', target: 't', resourceId: 'from-another-process' });
          await store.close();`;
        await promisify(execFile)(process.execPath, ['--input-type=module', '-e', enqueue]);
        assert.equal(await handled, 'from-another-process');
        const job = await store.db.selectFrom('jobs').select(['state', 'owner']).executeTakeFirstOrThrow();
        assert.equal(job.owner, 'w1');
      } finally {
        await worker.stop();
        await cleanup();
      }
    });
  });
}

describe('job worker change hints', () => {
  it('a hint that comes before its commit is visible is followed up, not slept through', async () => {
    const { store, cleanup } = await openTestStore('sqlite', 'jobs_early_hint');
    // The store's own hints are replaced by one the test fires by hand, ahead of the write it announces.
    let hint: () => void = () => undefined;
    const hinted: typeof store = { ...store, onChange: (l) => ((hint = l), () => undefined) };
    const q = new JobQueue(hinted, 10_000);
    const { worker, handled } = sleepyWorker(q, 'the hinted worker slept through the commit', 5_000);
    try {
      await new Promise((r) => setTimeout(r, 100));
      hint();
      await new Promise((r) => setTimeout(r, 10)); // the worker looked, found nothing, and must not sleep for its 10-minute poll
      await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'late-commit' });
      assert.equal(await handled, 'late-commit');
    } finally {
      await worker.stop();
      await cleanup();
    }
  });
});

describe('job worker wake-ups on postgres, after the listener connection drops', () => {
  it('the listener reconnects and LISTENs again: a later enqueue still wakes the idle worker', async () => {
    const { store, cleanup } = await openTestStore('postgres', 'jobs_relisten');
    const q = new JobQueue(store, 10_000);
    const { worker, handled } = sleepyWorker(q, 'the idle worker did not wake after its listener reconnected', 10_000);
    /** Backend pids of this database's connections whose last statement was the LISTEN. */
    const listeners = async (): Promise<number[]> =>
      (await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database() and query ilike 'listen %' and pid <> pg_backend_pid()`.execute(store.db)).rows.map((r) => r.pid);
    const until = async (what: string, ok: (pids: number[]) => boolean): Promise<number[]> => {
      for (const deadline = Date.now() + 5_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
        const pids = await listeners();
        if (ok(pids)) return pids;
      }
      throw new Error(`timed out waiting until ${what}`);
    };
    try {
      const [first] = await until('the worker listens', (p) => p.length === 1);
      await sql`select pg_terminate_backend(${first!})`.execute(store.db);
      // The old backend is gone and a new one LISTENs: only then is the job enqueued, so
      // the wake-up can come from nothing but the renewed LISTEN (the worker polls every 10 min).
      await until('a new listener replaces the killed one', (p) => p.length === 1 && p[0] !== first);
      await new Promise((r) => setTimeout(r, 300)); // the reconnect's own catch-up look has come and gone
      await q.enqueue(store.db, { kind: 'k', target: 't', resourceId: 'after-reconnect' });
      assert.equal(await handled, 'after-reconnect');
    } finally {
      await worker.stop();
      await cleanup();
    }
  });
});
