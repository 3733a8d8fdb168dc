// Typed wrappers for the QMP commands the volume layer uses (QEMU 7.2 schema,
// checked against query-qmp-schema of qemu-storage-daemon 7.2).
//
// Job-starting commands subscribe to JOB_STATUS_CHANGE before sending the
// command: QEMU emits the job's first status changes (sometimes all the way
// to "concluded") before the command's reply.
import { QmpClosedError, QmpError, QmpTimeoutError, type QmpConnection, type QmpExecuteOptions } from './connection.js';
import type { JsonValue, QmpEventMessage } from './framer.js';

// ---- query results (only the members Bulwark reads; QEMU sends more) ----

export interface BlockImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
}

export interface BlockDirtyBitmapInfo {
  name?: string;
  count: number;
  granularity: number;
  recording: boolean;
  persistent: boolean;
  /** Set after an unclean QSD stop: the bitmap cannot be trusted. */
  inconsistent?: boolean;
}

export interface BlockDeviceInfo {
  'node-name': string;
  /** bs->filename: a path, or "json:{...}" while the graph differs from the image header. */
  file: string;
  ro: boolean;
  drv: string;
  /** Present only while the node has a backing child. */
  backing_file?: string;
  detect_zeroes: 'off' | 'on' | 'unmap';
  image: BlockImageInfo;
  'dirty-bitmaps'?: BlockDirtyBitmapInfo[];
}

export interface BlockExportInfo {
  id: string;
  type: 'nbd' | 'vhost-user-blk' | 'fuse' | 'vduse-blk';
  'node-name': string;
  'shutting-down': boolean;
}

export type JobStatus = 'undefined' | 'created' | 'running' | 'paused' | 'ready' | 'standby' | 'waiting' | 'pending' | 'aborting' | 'concluded' | 'null';

export interface JobInfo {
  id: string;
  /** commit, stream, mirror, backup, create, ... */
  type: string;
  status: JobStatus;
  'current-progress': number;
  'total-progress': number;
  /** Set once a concluded job has failed (or was cancelled before completing). */
  error?: string;
}

/** From the unstable x-debug-query-block-graph; used only for graph edges, with a fallback. */
export interface BlockGraph {
  nodes: { id: number; type: 'block-backend' | 'block-job' | 'block-driver'; name: string }[];
  edges: { parent: number; child: number; name: string }[];
}

// ---- command arguments ----

type OnError = 'report' | 'ignore' | 'enospc' | 'stop' | 'auto';

interface BlockdevCommon {
  'node-name': string;
  discard?: 'ignore' | 'unmap';
  'detect-zeroes'?: 'off' | 'on' | 'unmap';
  'read-only'?: boolean;
  'force-share'?: boolean;
  cache?: { direct?: boolean; 'no-flush'?: boolean };
}

export interface BlockdevOptionsFile extends BlockdevCommon {
  driver: 'file';
  filename: string;
  /** 'native' (Linux AIO) requires cache.direct. */
  aio?: 'threads' | 'native' | 'io_uring';
}

export interface BlockdevOptionsQcow2 extends BlockdevCommon {
  driver: 'qcow2';
  /** Node name of the protocol node. */
  file: string;
  /** Node name, or null for none. Omitted: QEMU opens whatever the header names, which Bulwark never wants. */
  backing?: string | null;
}

/** An NBD client node: how the TLS gateway reaches the pool daemon's exports. */
export interface BlockdevOptionsNbd extends BlockdevCommon {
  driver: 'nbd';
  server: { type: 'unix'; path: string };
  export: string;
  /** Seconds to keep retrying (requests wait) when the server goes away. */
  'reconnect-delay'?: number;
}

export type BlockdevOptions = BlockdevOptionsFile | BlockdevOptionsQcow2 | BlockdevOptionsNbd;

export type BlockdevCreateOptions =
  | { driver: 'file'; filename: string; size: number }
  | { driver: 'qcow2'; file: string; size: number; 'backing-file'?: string; 'backing-fmt'?: 'qcow2'; 'cluster-size'?: number };

export interface DirtyBitmapAddArgs {
  node: string;
  name: string;
  granularity?: number;
  persistent?: boolean;
  disabled?: boolean;
}

type BitmapRef = { node: string; name: string };

export type TransactionAction =
  | { type: 'blockdev-snapshot'; data: { node: string; overlay: string } }
  | { type: 'block-dirty-bitmap-add'; data: DirtyBitmapAddArgs }
  | { type: 'block-dirty-bitmap-disable' | 'block-dirty-bitmap-enable' | 'block-dirty-bitmap-remove' | 'block-dirty-bitmap-clear'; data: BitmapRef };

export interface BlockStreamArgs {
  'job-id': string;
  device: string;
  'base-node'?: string;
  /** Written into the top's header; pass the base's absolute path so no json: name lands there. */
  'backing-file'?: string;
  speed?: number;
  'on-error'?: OnError;
}

export interface BlockCommitArgs {
  'job-id': string;
  device: string;
  'top-node'?: string;
  'base-node'?: string;
  'backing-file'?: string;
  speed?: number;
  'on-error'?: OnError;
}

export interface BlockdevMirrorArgs {
  'job-id': string;
  device: string;
  target: string;
  sync: 'top' | 'full' | 'none';
  replaces?: string;
  speed?: number;
  'copy-mode'?: 'background' | 'write-blocking';
  'on-source-error'?: OnError;
  'on-target-error'?: OnError;
}

export interface NbdExportArgs {
  id: string;
  'node-name': string;
  /** NBD export name clients ask for. */
  name: string;
  writable: boolean;
  description?: string;
  /** Each advertised as meta context qemu:dirty-bitmap:NAME; a read-only export needs them disabled. */
  bitmaps?: string[];
  /** Advertise qemu:allocation-depth: which layer of the chain holds each extent. */
  'allocation-depth'?: boolean;
}

export type ObjectAddArgs = { 'qom-type': string; id: string } & Record<string, JsonValue>;

// ---- queries ----

export const queryNamedBlockNodes = (qmp: QmpConnection, opts?: QmpExecuteOptions): Promise<BlockDeviceInfo[]> =>
  qmp.execute<BlockDeviceInfo[]>('query-named-block-nodes', { flat: true }, opts);
export const queryBlockExports = (qmp: QmpConnection, opts?: QmpExecuteOptions): Promise<BlockExportInfo[]> =>
  qmp.execute<BlockExportInfo[]>('query-block-exports', undefined, opts);
export const queryJobs = (qmp: QmpConnection, opts?: QmpExecuteOptions): Promise<JobInfo[]> => qmp.execute<JobInfo[]>('query-jobs', undefined, opts);

/** Returns null when the command does not exist (it is x-/unstable). */
export async function queryBlockGraph(qmp: QmpConnection, opts?: QmpExecuteOptions): Promise<BlockGraph | null> {
  try {
    return await qmp.execute<BlockGraph>('x-debug-query-block-graph', undefined, opts);
  } catch (e) {
    if (e instanceof QmpError && e.errorClass === 'CommandNotFound') return null;
    throw e;
  }
}

// ---- graph changes ----

type Opts = QmpExecuteOptions | undefined;
const exec = (qmp: QmpConnection, command: string, args: object | undefined, opts: Opts): Promise<void> =>
  qmp.execute(command, args, opts).then(() => undefined);

export const blockdevAdd = (qmp: QmpConnection, options: BlockdevOptions, opts?: Opts): Promise<void> => exec(qmp, 'blockdev-add', options, opts);
/** Reopens nodes with the given options (those left out revert to defaults); flushes each first. */
export const blockdevReopen = (qmp: QmpConnection, options: BlockdevOptions[], opts?: Opts): Promise<void> => exec(qmp, 'blockdev-reopen', { options }, opts);
export const blockdevDel = (qmp: QmpConnection, nodeName: string, opts?: Opts): Promise<void> => exec(qmp, 'blockdev-del', { 'node-name': nodeName }, opts);
export const blockResize = (qmp: QmpConnection, nodeName: string, sizeBytes: number, opts?: Opts): Promise<void> =>
  exec(qmp, 'block_resize', { 'node-name': nodeName, size: sizeBytes }, opts);
export const blockExportAdd = (qmp: QmpConnection, args: NbdExportArgs, opts?: Opts): Promise<void> => exec(qmp, 'block-export-add', { type: 'nbd', ...args }, opts);
export const jobComplete = (qmp: QmpConnection, id: string, opts?: Opts): Promise<void> => exec(qmp, 'job-complete', { id }, opts);
export const jobCancel = (qmp: QmpConnection, id: string, opts?: Opts): Promise<void> => exec(qmp, 'job-cancel', { id }, opts);
export const jobDismiss = (qmp: QmpConnection, id: string, opts?: Opts): Promise<void> => exec(qmp, 'job-dismiss', { id }, opts);
export const objectAdd = (qmp: QmpConnection, args: ObjectAddArgs, opts?: Opts): Promise<void> => exec(qmp, 'object-add', args, opts);
export const objectDel = (qmp: QmpConnection, id: string, opts?: Opts): Promise<void> => exec(qmp, 'object-del', { id }, opts);

/** All actions succeed or QEMU rolls the graph back. */
export async function transaction(qmp: QmpConnection, actions: TransactionAction[], opts?: Opts): Promise<void> {
  if (actions.length > 0) await exec(qmp, 'transaction', { actions }, opts);
}

/** Runs a blockdev-create job to the end, dismisses it, throws JobFailedError on failure. */
export async function blockdevCreate(qmp: QmpConnection, jobId: string, options: BlockdevCreateOptions, opts: JobWaitOptions = {}): Promise<void> {
  await runJob(qmp, jobId, () => qmp.execute('blockdev-create', { 'job-id': jobId, options }), opts);
}

/** Deletes an export and waits for BLOCK_EXPORT_DELETED (deletion is asynchronous). */
export async function blockExportDel(qmp: QmpConnection, id: string, opts: JobWaitOptions & { mode?: 'safe' | 'hard' } = {}): Promise<void> {
  const ac = new AbortController();
  const relay = (): void => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', relay, { once: true });
  const deleted = qmp.waitForEvent((ev) => ev.event === 'BLOCK_EXPORT_DELETED' && ev.data['id'] === id, { signal: ac.signal, timeoutMs: opts.timeoutMs ?? 30_000 });
  deleted.catch(() => undefined);
  try {
    // safe (default) fails with "still in use" while clients are connected; hard drops them.
    await qmp.execute('block-export-del', { id, mode: opts.mode ?? 'safe' });
    await deleted;
  } finally {
    ac.abort();
    opts.signal?.removeEventListener('abort', relay);
  }
}

/** Streams into `device` and waits for the job to finish. */
export async function blockStream(qmp: QmpConnection, args: BlockStreamArgs, opts: JobWaitOptions = {}): Promise<void> {
  await runJob(qmp, args['job-id'], () => qmp.execute('block-stream', { ...args, 'auto-dismiss': false }), opts);
}

async function untilReady(qmp: QmpConnection, command: string, args: { 'job-id': string }, opts: JobWaitOptions): Promise<'ready' | 'completed'> {
  const out = await runJob(qmp, args['job-id'], () => qmp.execute(command, { ...args, 'auto-dismiss': false }), { ...opts, until: 'ready' });
  return out.status === 'ready' ? 'ready' : 'completed';
}

/**
 * Starts a commit. An active commit (top = the device's active layer) stops
 * at 'ready' and needs completeReadyJob; an intermediate commit runs to the
 * end here ('completed').
 */
export const blockCommit = (qmp: QmpConnection, args: BlockCommitArgs, opts: JobWaitOptions = {}): Promise<'ready' | 'completed'> =>
  untilReady(qmp, 'block-commit', args, opts);

/** Starts a mirror and waits until it is ready (target in sync); then completeReadyJob pivots. */
export const blockdevMirror = (qmp: QmpConnection, args: BlockdevMirrorArgs, opts: JobWaitOptions = {}): Promise<'ready' | 'completed'> =>
  untilReady(qmp, 'blockdev-mirror', args, opts);

/** job-complete on a ready job, then wait for it to conclude and dismiss it. */
export async function completeReadyJob(qmp: QmpConnection, id: string, opts: JobWaitOptions = {}): Promise<void> {
  await runJob(qmp, id, () => jobComplete(qmp, id), { ...opts, adoptExisting: false });
}

/** Asks QEMU to exit. The reply may lose the race with the socket closing; both mean success. */
export async function quit(qmp: QmpConnection, opts?: Opts): Promise<void> {
  try {
    await qmp.execute('quit', undefined, opts);
  } catch (e) {
    if (!(e instanceof QmpClosedError)) throw e;
  }
}

// ---- job tracking ----

export class JobFailedError extends Error {
  constructor(
    readonly jobId: string,
    readonly jobType: string,
    readonly jobError: string,
  ) {
    super(`job ${jobId} (${jobType}) failed: ${jobError}`);
    this.name = 'JobFailedError';
  }
}

export class JobNotFoundError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found (dismissed by someone else, or never started)`);
    this.name = 'JobNotFoundError';
  }
}

export interface JobWaitOptions {
  signal?: AbortSignal;
  /** Omitted or 0: no limit (a stream of a large volume can take hours). The job is NOT cancelled on timeout. */
  timeoutMs?: number;
}

export interface RunJobOptions extends JobWaitOptions {
  /** 'ready' returns as soon as a mirror/active commit is ready (not dismissed). Default 'concluded'. */
  until?: 'ready' | 'concluded';
  /** If a job with this id already exists (started before a restart), wait for it instead of starting. Default true. */
  adoptExisting?: boolean;
}

export interface JobOutcome {
  /** 'ready': still running, awaiting job-complete. 'concluded': succeeded and dismissed. */
  status: 'ready' | 'concluded';
}

/** Events are the fast path; a slow poll of query-jobs guards against anything missed. */
const JOB_POLL_MS = 2000;

class JobWatch {
  private readonly seen = new Set<JobStatus>();
  private wake: (() => void) | null = null;
  private readonly onEvent = (ev: QmpEventMessage): void => {
    const status = ev.data['status'];
    if (ev.event === 'JOB_STATUS_CHANGE' && ev.data['id'] === this.jobId && typeof status === 'string') this.observe(status as JobStatus);
  };
  private readonly poke = (): void => this.wake?.();

  constructor(private readonly qmp: QmpConnection, private readonly jobId: string, private readonly signal: AbortSignal | undefined) {
    qmp.on('event', this.onEvent);
    qmp.on('closed', this.poke);
    signal?.addEventListener('abort', this.poke);
  }

  dispose(): void {
    this.qmp.off('event', this.onEvent);
    this.qmp.off('closed', this.poke);
    this.signal?.removeEventListener('abort', this.poke);
  }

  observe(status: JobStatus): void {
    this.seen.add(status);
    this.wake?.();
  }

  async poll(): Promise<JobInfo | undefined> {
    const job = (await queryJobs(this.qmp)).find((j) => j.id === this.jobId);
    this.observe(job ? job.status : 'null');
    return job;
  }

  private reached(until: 'ready' | 'concluded'): 'ready' | 'concluded' | 'gone' | null {
    // Statuses are only ever seen in order, so a stale observation can only
    // be an earlier state; "concluded" wins over everything.
    if (this.seen.has('concluded')) return 'concluded';
    if (this.seen.has('null')) return 'gone';
    if (until === 'ready' && this.seen.has('ready')) return 'ready';
    return null;
  }

  async wait(until: 'ready' | 'concluded', timeoutMs: number | undefined): Promise<'ready' | 'concluded' | 'gone'> {
    const deadline = timeoutMs ? Date.now() + timeoutMs : Number.POSITIVE_INFINITY;
    for (;;) {
      const r = this.reached(until);
      if (r) return r;
      if (this.signal?.aborted) throw this.signal.reason instanceof Error ? this.signal.reason : new Error('aborted');
      if (this.qmp.isClosed) throw new QmpClosedError(`QMP connection closed while waiting for job ${this.jobId}`, { reason: 'peer' });
      const left = deadline - Date.now();
      if (left <= 0) throw new QmpTimeoutError(`wait for job ${this.jobId}`, timeoutMs ?? 0);
      const timedOut = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), Math.min(left, JOB_POLL_MS));
        this.wake = () => {
          clearTimeout(t);
          resolve(false);
        };
      });
      this.wake = null;
      if (timedOut && !this.reached(until)) await this.poll();
    }
  }
}

/** Reads a concluded job's result, dismisses it, throws JobFailedError if it failed. */
async function settle(qmp: QmpConnection, watch: JobWatch, jobId: string): Promise<void> {
  const job = await watch.poll();
  if (!job) throw new JobNotFoundError(jobId);
  await jobDismiss(qmp, jobId);
  if (job.error !== undefined) throw new JobFailedError(jobId, job.type, job.error);
}

/**
 * Subscribes to the job's status changes, runs `start` (the command creating
 * the job, or job-complete), then waits. Jobs must be started with
 * auto-dismiss=false (blockdev-create always is) so a failure can be read.
 */
export async function runJob(qmp: QmpConnection, jobId: string, start: () => Promise<unknown>, opts: RunJobOptions = {}): Promise<JobOutcome> {
  const watch = new JobWatch(qmp, jobId, opts.signal);
  try {
    const existing = opts.adoptExisting === false ? undefined : (await queryJobs(qmp)).find((j) => j.id === jobId);
    if (existing) watch.observe(existing.status);
    else await start();
    const until = opts.until ?? 'concluded';
    const r = await watch.wait(until, opts.timeoutMs);
    if (r === 'gone') throw new JobNotFoundError(jobId);
    if (r === 'ready') return { status: 'ready' };
    await settle(qmp, watch, jobId);
    return { status: 'concluded' };
  } finally {
    watch.dispose();
  }
}

/** Waits for an existing job (for example one started before a restart). */
export async function awaitJob(qmp: QmpConnection, jobId: string, opts: Omit<RunJobOptions, 'adoptExisting'> = {}): Promise<JobOutcome> {
  return runJob(qmp, jobId, () => Promise.reject(new JobNotFoundError(jobId)), { ...opts, adoptExisting: true });
}
