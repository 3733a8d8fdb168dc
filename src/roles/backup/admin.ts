// Repository administration jobs of the backup role: verify (re-read and
// authenticate every chunk the selected backups need) and garbage collection.
// The API enqueues them and waits for the job's result; they speak in manifest
// ids (the repository's names), the API maps those to Cinder backup ids.
import { GcAbortedError } from '../../backup/repository/errors.js';
import type { GcJobResult, VerifyJobResult } from '../../services/repository-admin.js';
import type { ClaimedJob } from '../../store/jobs.js';
import type { BackupContext } from './engine.js';

export { GC_JOB, VERIFY_JOB } from '../../services/repository-admin.js';

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

/** payload {manifestIds?: string[]}: absent means every backup in the repository. */
export async function runVerify(ctx: BackupContext, job: ClaimedJob): Promise<VerifyJobResult> {
  const only = stringList(job.payload['manifestIds']);
  const started = Date.now();
  const report = await ctx.repo.verify(only);
  ctx.log.info({ checked: report.checked, damaged: report.damaged.length, ms: Date.now() - started }, 'repository verified');
  return {
    checked: report.checked,
    manifests: report.backups,
    damaged: report.damaged.map((d) => ({ chunkId: d.chunkId, problem: d.problem, manifests: d.backups })),
    unreadable: report.unreadableManifests.map((u) => ({ manifestId: u.backupId, detail: u.detail })),
  };
}

/** payload {dryRun?: boolean}. A gc that stops before deleting is a result, not a failure. */
export async function runGc(ctx: BackupContext, job: ClaimedJob): Promise<GcJobResult> {
  try {
    const r = await ctx.repo.gc({ dryRun: job.payload['dryRun'] === true });
    ctx.log.info({ runId: r.runId, deleted: r.chunksDeleted, kept: r.chunksKept }, 'repository garbage collected');
    return { ok: true, ...r };
  } catch (err) {
    if (err instanceof GcAbortedError) return { ok: false, aborted: err.message };
    throw err;
  }
}
