// Backup repository administration (a Bulwark extension, admin only): verify
// and garbage-collect the repository the backup services write to. The API
// enqueues one job for any backup service and waits for its result, as an RPC
// call would; the job speaks in manifest ids, this module in Cinder backup ids.
import { ApiError, conflict, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { BACKUP_TARGET } from './backups.js';
import type { Caller, ServiceDeps } from './deps.js';
import { BACKUP_BINARY, listUpServices } from './registry.js';
import type { GcReport } from '../backup/repository/gc.js';

export const VERIFY_JOB = 'verify_repository';
export const GC_JOB = 'gc_repository';
/** The resource a repository job names: there is one repository per deployment. */
export const REPOSITORY_RESOURCE = 'backup-repository';
/** Verify re-reads every chunk: minutes for a large repository. */
export const REPOSITORY_JOB_TIMEOUT_MS = 60 * 60_000;

/** What a verify_repository job returns. */
export interface VerifyJobResult {
  readonly checked: number;
  readonly manifests: string[];
  readonly damaged: { readonly chunkId: string; readonly problem: 'missing' | 'corrupt'; readonly manifests: string[] }[];
  readonly unreadable: { readonly manifestId: string; readonly detail: string }[];
}

/** The repository's gc report, as a job result carries it. */
export type GcReportFields = GcReport;

/** What a gc_repository job returns: the report, or why it stopped before deleting. */
export type GcJobResult = ({ readonly ok: true } & GcReportFields) | { readonly ok: false; readonly aborted: string };

export interface VerifyAnswer {
  readonly checked: number;
  /** Cinder ids of the backups whose chunks were checked. */
  readonly backups: string[];
  readonly damaged: { chunk_id: string; problem: string; backups: string[] }[];
  readonly unreadable: { backup_id: string; detail: string }[];
}

/** manifest id → the ids of the backup rows that name it (an imported record may share one). */
async function backupIdsByManifest(ex: Executor, manifestIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (manifestIds.length === 0) return out;
  const unique = [...new Set(manifestIds)];
  const rows = await ex
    .selectFrom('backups')
    .select(['id', 'manifest_id'])
    .where((eb) => eb.or([eb('manifest_id', 'in', unique), eb.and([eb('manifest_id', 'is', null), eb('id', 'in', unique)])]))
    .execute();
  for (const r of rows) {
    const m = r.manifest_id ?? r.id;
    out.set(m, [...(out.get(m) ?? []), r.id].sort());
  }
  return out;
}

async function requireBackupService(deps: ServiceDeps): Promise<void> {
  const up = await listUpServices(deps.store.db, BACKUP_BINARY, deps.config.jobs.serviceDownAfterMs);
  if (up.length === 0) throw new ApiError(503, 'No backup service is up to work on the backup repository.');
}

/** Enqueues one repository job, waits for it and returns its parsed result. */
async function runRepositoryJob<T>(deps: ServiceDeps, kind: string, payload: Record<string, unknown>): Promise<T> {
  await requireBackupService(deps);
  const id = await deps.jobs.enqueue(deps.store.db, { kind, target: BACKUP_TARGET, resourceId: REPOSITORY_RESOURCE, payload });
  deps.kick?.();
  const job = await deps.jobs.waitFor(id, REPOSITORY_JOB_TIMEOUT_MS, 50).catch((err: unknown) => {
    throw new ApiError(503, `The backup service did not finish ${kind} in time: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (job.state !== 'done') throw new ApiError(500, `${kind} failed: ${job.error ?? 'unknown error'}`);
  return JSON.parse(job.result ?? '{}') as T;
}

/**
 * Verifies the chunks of the given backups (default: every backup in the
 * repository). Each damaged chunk lists every backup here that needs it,
 * selected or not.
 */
export async function verifyRepository(deps: ServiceDeps, caller: Caller, backupIds: readonly string[] | null): Promise<VerifyAnswer> {
  let manifestIds: string[] | undefined;
  if (backupIds !== null) {
    manifestIds = [];
    for (const id of new Set(backupIds)) {
      const row = await deps.store.db.selectFrom('backups').select(['id', 'project_id', 'manifest_id']).where('id', '=', id).executeTakeFirst();
      if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Backup ${id} could not be found.`);
      manifestIds.push(row.manifest_id ?? row.id);
    }
  }
  const r = await runRepositoryJob<VerifyJobResult>(deps, VERIFY_JOB, manifestIds ? { manifestIds: [...new Set(manifestIds)] } : {});
  const all = [...r.manifests, ...r.damaged.flatMap((d) => d.manifests), ...r.unreadable.map((u) => u.manifestId)];
  const byManifest = await backupIdsByManifest(deps.store.db, all);
  const known = (ids: readonly string[]) => [...new Set(ids.flatMap((m) => byManifest.get(m) ?? []))].sort();
  return {
    checked: r.checked,
    backups: known(r.manifests),
    damaged: r.damaged.map((d) => ({ chunk_id: d.chunkId, problem: d.problem, backups: known(d.manifests) })),
    // A manifest no backup here names is reported under its own id.
    unreadable: r.unreadable.flatMap((u) => (byManifest.get(u.manifestId) ?? [u.manifestId]).map((id) => ({ backup_id: id, detail: u.detail }))),
  };
}

/** Runs the repository's garbage collector; 409 when it stopped before deleting anything. */
export async function gcRepository(deps: ServiceDeps, dryRun: boolean): Promise<Record<string, unknown>> {
  const r = await runRepositoryJob<GcJobResult>(deps, GC_JOB, { dryRun });
  if (!r.ok) throw conflict(r.aborted);
  return {
    run_id: r.runId,
    dry_run: r.dryRun,
    manifests: r.manifests,
    chunks_present: r.chunksPresent,
    chunks_kept: r.chunksKept,
    chunks_kept_by_locks: r.chunksKeptByLocks,
    chunks_deleted: r.chunksDeleted,
    live_locks: r.liveLocks,
    expired_locks: r.expiredLocks,
  };
}
