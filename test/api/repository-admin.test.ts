// The repository administration extension through the Cinder plugin on a real
// store: admin only, Cinder faults, the job it enqueues and waits for (run here
// by a stand-in backup service), and the mapping of manifest ids to backup ids.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GC_JOB, REPOSITORY_RESOURCE, VERIFY_JOB, type GcJobResult, type VerifyJobResult } from '../../src/services/repository-admin.js';
import { JobQueue, type ClaimedJob } from '../../src/store/jobs.js';
import { dialects, stopSharedPostgres } from '../harness/stores.js';
import { assertFault, buildCinderApp } from './cinder-admin-harness.js';
import { MISSING, setup, type Env } from './backups-env.js';

after(async () => {
  await new Promise((r) => setTimeout(r, 250));
  await stopSharedPostgres();
});

type Answer = (job: ClaimedJob) => VerifyJobResult | GcJobResult | Error;

/** A backup service that answers repository jobs with canned results. */
function standIn(env: Env, answer: { current: Answer }): { jobs: ClaimedJob[]; stop: () => Promise<void> } {
  const queue = new JobQueue(env.t.store, 5_000);
  const seen: ClaimedJob[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const job = await queue.claim('stand-in', ['cinder-backup'], [VERIFY_JOB, GC_JOB]);
      if (!job) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      seen.push(job);
      const out = answer.current(job);
      if (out instanceof Error) await queue.fail(job, out.message);
      else await queue.complete(job, out);
    }
  })();
  return {
    jobs: seen,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

for (const dialect of dialects) {
  describe(`repository administration API on ${dialect}`, () => {
    let env: Env;
    before(async () => {
      env = await setup(await buildCinderApp(dialect, 'repo_admin'));
    });
    after(() => env.t.close());

    it('is admin only, validates its body, and needs a live backup service', async () => {
      for (const who of ['a', 'reader'] as const) {
        assertFault(await env.call(who, 'POST', '/bulwark-repository/verify'), 403, `${who} verify`);
        assertFault(await env.call(who, 'POST', '/bulwark-repository/gc', {}), 403, `${who} gc`);
      }
      assertFault(await env.call('admin', 'POST', '/bulwark-repository/verify', { verify: { backup_ids: ['nope'] } }), 400, 'not a uuid');
      assertFault(await env.call('admin', 'POST', '/bulwark-repository/verify', { verify: {}, extra: 1 }), 400, 'unknown key');
      assertFault(await env.call('admin', 'POST', '/bulwark-repository/gc', { gc: { dry_run: 'yes' } }), 400, 'dry_run');
      assertFault(await env.call('admin', 'POST', '/bulwark-repository/verify', { verify: { backup_ids: [MISSING] } }), 404, 'unknown backup');
      const none = await env.call('admin', 'POST', '/bulwark-repository/verify');
      assertFault(none, 503, 'no backup service');
      assert.ok('serviceUnavailable' in none.json);
      assert.deepEqual(await env.jobs(REPOSITORY_RESOURCE), [], 'nothing was enqueued');
    });

    it('runs verify and gc as jobs and maps manifests to backup ids', async () => {
      const db = env.t.store.db;
      const now = Date.now();
      await db.insertInto('services').values({ binary: 'cinder-backup', host: 'bk1', availability_zone: 'nova', disabled: 0, disabled_reason: null, frozen: 0, heartbeat_at: now + 60_000, capabilities: '{}', created_at: new Date(now).toISOString(), updated_at: null }).execute();
      const vol = await env.volume('a');
      const full = await env.backup('a', { volume_id: vol });
      const incr = await env.backup('a', { volume_id: vol, incremental: true });
      const copy = await env.backup('a', { volume_id: vol });
      // An imported record under a new id keeps the manifest of the original.
      await db.updateTable('backups').set({ manifest_id: incr }).where('id', '=', copy).execute();

      const answer: { current: Answer } = {
        current: () => ({
          checked: 7,
          manifests: [full, incr],
          damaged: [{ chunkId: 'c'.repeat(64), problem: 'corrupt', manifests: [full, incr, 'from-another-deployment'] }],
          unreadable: [{ manifestId: 'orphan', detail: 'failed authentication' }],
        }),
      };
      const worker = standIn(env, answer);
      try {
        const v = await env.call('admin', 'POST', '/bulwark-repository/verify', { verify: { backup_ids: [copy, incr] } });
        assert.equal(v.status, 200, JSON.stringify(v.json));
        assert.deepEqual(v.json, {
          verify: {
            checked: 7,
            backups: [full, incr, copy].sort(),
            damaged: [{ chunk_id: 'c'.repeat(64), problem: 'corrupt', backups: [full, incr, copy].sort() }],
            unreadable: [{ backup_id: 'orphan', detail: 'failed authentication' }],
          },
        });
        const job = worker.jobs.at(-1)!;
        assert.equal(job.kind, VERIFY_JOB);
        assert.equal(job.target, 'cinder-backup');
        assert.deepEqual(job.payload, { manifestIds: [incr] }, 'one manifest for the two rows that share it');
        assert.equal((await env.call('admin', 'POST', '/bulwark-repository/verify')).status, 200);
        assert.deepEqual(worker.jobs.at(-1)!.payload, {}, 'no backup_ids: every backup');

        answer.current = (j) => ({ ok: true, runId: 'r1', dryRun: j.payload['dryRun'] === true, manifests: 2, chunksPresent: 9, chunksKept: 7, chunksKeptByLocks: 1, chunksDeleted: 2, liveLocks: ['w'], expiredLocks: [] });
        const g = await env.call('admin', 'POST', '/bulwark-repository/gc', { gc: { dry_run: true } });
        assert.equal(g.status, 200, JSON.stringify(g.json));
        assert.deepEqual(g.json, { gc: { run_id: 'r1', dry_run: true, manifests: 2, chunks_present: 9, chunks_kept: 7, chunks_kept_by_locks: 1, chunks_deleted: 2, live_locks: ['w'], expired_locks: [] } });
        assert.equal(worker.jobs.at(-1)!.kind, GC_JOB);

        answer.current = () => ({ ok: false, aborted: 'gc stopped, nothing deleted: manifest of backup x is unreadable' });
        const aborted = await env.call('admin', 'POST', '/bulwark-repository/gc');
        assertFault(aborted, 409, 'aborted gc');
        assert.match(JSON.stringify(aborted.json), /nothing deleted/);

        answer.current = () => new Error('the store is unreachable');
        const failed = await env.call('admin', 'POST', '/bulwark-repository/verify');
        assertFault(failed, 500, 'failed job');
        assert.match(JSON.stringify(failed.json), /store is unreachable/);
      } finally {
        await worker.stop();
      }
    });
  });
}
