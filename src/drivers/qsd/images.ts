// Block-graph operations on one pool's QSD, in Bulwark's terms: a layer is a
// qcow2 file opened as node <layerId> on top of protocol node <layerId>-f.
// Every function re-reads QSD's graph first so that a retry after a crash or
// a lost reply finishes the job instead of failing on "already done".
import { randomBytes } from 'node:crypto';
import { open, stat, unlink } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import {
  blockdevAdd, blockdevCreate, blockdevDel, blockdevReopen, blockExportAdd, blockExportDel, blockResize, blockStream, blockCommit, awaitJob,
  queryBlockExports, queryBlockGraph, queryJobs, queryNamedBlockNodes, transaction,
  type BlockDeviceInfo, type BlockdevOptions, type JobWaitOptions, type TransactionAction,
} from '../qmp/commands.js';
import type { QmpConnection } from '../qmp/connection.js';

// pool.ts imports the key-file helper from here.
export { writePskKeys } from './daemon.js';

export interface OpenNode {
  nodeName: string;
  driver: string;
  /** Absolute path of the image (for a qcow2 node: of its protocol child). */
  path: string | null;
  backingNodeName: string | null;
  fileNodeName: string | null;
  readOnly: boolean;
  virtualSizeBytes: number;
  dirtyBitmaps: string[];
}

export interface ExportInfo {
  id: string;
  nodeName: string;
  type: string;
  shuttingDown: boolean;
}

/** The layer (or an export) is in a state this call cannot reconcile with what was asked. */
export class LayerStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerStateError';
  }
}

const LAYER_ID = /^[A-Za-z][A-Za-z0-9_.-]{0,23}$/;
const QCOW2_MAGIC = 0x514649fb;

export const fileNodeName = (layerId: string): string => `${layerId}-f`;

function assertLayerId(id: string): void {
  if (!LAYER_ID.test(id)) throw new Error(`invalid layer id ${JSON.stringify(id)} (letter first, then [A-Za-z0-9_.-], at most 24 chars)`);
}

function assertAbsolute(p: string): void {
  if (!isAbsolute(p)) throw new Error(`image paths must be absolute (QSD runs in /): ${p}`);
}

const tmpName = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;

/** Path from a node's filename: plain, or the file.filename inside a "json:{...}" name. */
function pathFromFilename(name: string): string | null {
  if (!name.startsWith('json:')) return name || null;
  try {
    const parsed = JSON.parse(name.slice(5)) as { filename?: unknown; file?: { filename?: unknown } };
    const f = parsed.file?.filename ?? parsed.filename;
    return typeof f === 'string' ? f : null;
  } catch {
    return null;
  }
}

/**
 * Every named node (QEMU's auto-named "#block123" nodes, such as job filters,
 * are left out). Edges come from x-debug-query-block-graph; if a future QEMU
 * drops it, backing falls back to matching backing_file against filenames.
 */
export async function listOpenNodes(qmp: QmpConnection): Promise<Map<string, OpenNode>> {
  const infos = (await queryNamedBlockNodes(qmp)).filter((i) => !i['node-name'].startsWith('#'));
  const graph = await queryBlockGraph(qmp);
  const backing = new Map<string, string>();
  const fileChild = new Map<string, string>();
  if (graph) {
    const names = new Map(graph.nodes.filter((n) => n.type === 'block-driver').map((n) => [n.id, n.name]));
    for (const e of graph.edges) {
      const parent = names.get(e.parent);
      const child = names.get(e.child);
      if (!parent || !child) continue;
      if (e.name === 'backing') backing.set(parent, child);
      else if (e.name === 'file') fileChild.set(parent, child);
    }
  } else {
    const formatNodes = infos.filter((i) => i.drv !== 'file');
    for (const i of infos) {
      if (i.drv !== 'file' && infos.some((f) => f['node-name'] === fileNodeName(i['node-name']))) fileChild.set(i['node-name'], fileNodeName(i['node-name']));
      const target = i.backing_file;
      const match = target === undefined ? [] : formatNodes.filter((f) => f.file === target && f !== i);
      if (match.length === 1 && match[0]) backing.set(i['node-name'], match[0]['node-name']);
    }
  }
  const byName = new Map(infos.map((i) => [i['node-name'], i]));
  const out = new Map<string, OpenNode>();
  for (const i of infos) {
    const name = i['node-name'];
    const child = fileChild.get(name) ?? null;
    const childInfo: BlockDeviceInfo | undefined = child ? byName.get(child) : undefined;
    out.set(name, {
      nodeName: name,
      driver: i.drv,
      path: pathFromFilename(childInfo ? childInfo.file : i.file),
      backingNodeName: backing.get(name) ?? null,
      fileNodeName: child,
      readOnly: i.ro,
      virtualSizeBytes: i.image['virtual-size'],
      dirtyBitmaps: (i['dirty-bitmaps'] ?? []).map((b) => b.name ?? '').filter((n) => n !== ''),
    });
  }
  return out;
}

export async function listExports(qmp: QmpConnection): Promise<ExportInfo[]> {
  return (await queryBlockExports(qmp)).map((e) => ({ id: e.id, nodeName: e['node-name'], type: e.type, shuttingDown: e['shutting-down'] }));
}

/** The parts of a qcow2 header Bulwark checks; null if the file is not qcow2. */
export async function readQcow2Header(path: string): Promise<{ virtualSizeBytes: number; backingFile: string | null } | null> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(72);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < head.length || head.readUInt32BE(0) !== QCOW2_MAGIC) return null;
    const backingOffset = Number(head.readBigUInt64BE(8));
    const backingLen = head.readUInt32BE(16);
    const virtualSizeBytes = Number(head.readBigUInt64BE(24));
    if (backingOffset === 0 || backingLen === 0) return { virtualSizeBytes, backingFile: null };
    const name = Buffer.alloc(Math.min(backingLen, 4096));
    await fh.read(name, 0, name.length, backingOffset);
    return { virtualSizeBytes, backingFile: name.toString('utf8') };
  } finally {
    await fh.close();
  }
}

/**
 * Creates a qcow2 file through QSD (blockdev-create: file, then qcow2 on a
 * temporary protocol node), recording backing file and format in the header
 * when `backing` is given. Never qemu-img: QSD holds the image locks.
 * Idempotent: an existing file with the same size and backing is accepted;
 * an empty file (an interrupted earlier attempt) is recreated; any other
 * existing file is refused rather than truncated.
 */
export async function createLayerImage(
  qmp: QmpConnection,
  opts: { path: string; sizeBytes: number; backing?: { path: string }; clusterSizeBytes?: number },
): Promise<{ created: boolean }> {
  assertAbsolute(opts.path);
  if (opts.backing) assertAbsolute(opts.backing.path);
  if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0 || opts.sizeBytes % 512 !== 0) {
    throw new Error(`layer size must be a positive multiple of 512 bytes: ${opts.sizeBytes}`);
  }
  const size = await stat(opts.path).then((s) => s.size, () => null);
  if (size !== null && size > 0) {
    const header = await readQcow2Header(opts.path);
    const wantBacking = opts.backing?.path ?? null;
    if (header && header.virtualSizeBytes === opts.sizeBytes && header.backingFile === wantBacking) return { created: false };
    throw new LayerStateError(`${opts.path} already exists and is not the requested image (${header ? `size ${header.virtualSizeBytes}, backing ${header.backingFile ?? 'none'}` : 'not qcow2'})`);
  }

  await blockdevCreate(qmp, tmpName('create'), { driver: 'file', filename: opts.path, size: 0 });
  try {
    const tmp = tmpName('tmpf');
    await blockdevAdd(qmp, { driver: 'file', 'node-name': tmp, filename: opts.path });
    try {
      await blockdevCreate(qmp, tmpName('create'), {
        driver: 'qcow2',
        file: tmp,
        size: opts.sizeBytes,
        ...(opts.backing ? { 'backing-file': opts.backing.path, 'backing-fmt': 'qcow2' as const } : {}),
        ...(opts.clusterSizeBytes ? { 'cluster-size': opts.clusterSizeBytes } : {}),
      });
    } finally {
      await blockdevDel(qmp, tmp);
    }
  } catch (e) {
    // The file is ours (absent or empty before): a half-formatted one would only block the retry.
    await unlink(opts.path).catch(() => undefined);
    throw e;
  }
  return { created: true };
}

/**
 * Opens a layer with an EXPLICIT backing node (or none), so QEMU never opens
 * a file named in the header by itself. Idempotent when the layer is already
 * open on the same file with the same backing; a protocol node left behind by
 * an interrupted open is reused.
 * Note: QEMU reopens a node read-only when it becomes another node's backing.
 */
export async function openLayer(
  qmp: QmpConnection,
  opts: { layerId: string; path: string; backingLayerId: string | null; readOnly?: boolean; directIo?: boolean },
): Promise<{ opened: boolean }> {
  assertLayerId(opts.layerId);
  assertAbsolute(opts.path);
  const nodes = await listOpenNodes(qmp);
  const fnode = fileNodeName(opts.layerId);
  const existing = nodes.get(opts.layerId);
  if (existing) {
    if (existing.path !== opts.path || existing.backingNodeName !== opts.backingLayerId) {
      throw new LayerStateError(
        `layer ${opts.layerId} is open on ${existing.path ?? '?'} with backing ${existing.backingNodeName ?? 'none'}, ` +
          `not ${opts.path} with backing ${opts.backingLayerId ?? 'none'}`,
      );
    }
    return { opened: false };
  }
  if (opts.backingLayerId !== null && !nodes.has(opts.backingLayerId)) {
    throw new LayerStateError(`backing layer ${opts.backingLayerId} of ${opts.layerId} is not open`);
  }
  const ro = opts.readOnly ?? false;
  const leftover = nodes.get(fnode);
  if (leftover && leftover.path !== opts.path) throw new LayerStateError(`node ${fnode} is open on ${leftover.path ?? '?'}, not ${opts.path}`);
  if (leftover && leftover.readOnly !== ro) await blockdevDel(qmp, fnode);
  if (!leftover || leftover.readOnly !== ro) {
    // Direct I/O: the guest (or backup) reads and writes go to the device without a second copy in
    // the host's page cache, and a flush does not have to write back gigabytes of dirty pages.
    const io = opts.directIo ? { cache: { direct: true }, aio: 'native' as const } : {};
    await blockdevAdd(qmp, { driver: 'file', 'node-name': fnode, filename: opts.path, discard: 'unmap', 'read-only': ro, ...io });
  }
  try {
    await blockdevAdd(qmp, qcow2NodeOptions(opts.layerId, opts.backingLayerId, ro));
  } catch (e) {
    await blockdevDel(qmp, fnode).catch(() => undefined);
    throw e;
  }
  return { opened: true };
}

/** A layer's qcow2 node as openLayer opens it (and flushLayer reopens it). */
function qcow2NodeOptions(layerId: string, backingLayerId: string | null, readOnly: boolean): BlockdevOptions {
  return { driver: 'qcow2', 'node-name': layerId, file: fileNodeName(layerId), backing: backingLayerId, discard: 'unmap', 'detect-zeroes': 'unmap', 'read-only': readOnly };
}

/**
 * Makes everything written to a layer durable, its qcow2 metadata included:
 * QSD keeps L2 and refcount updates in memory until the node is flushed, so a
 * block job's copy into a layer that stays writable could be lost with QSD (a
 * stream into a volume's top, measured: kill -9 after it lost every streamed
 * cluster). QMP has no flush command; reopening the node with the options it
 * already has flushes it (bdrv_reopen_prepare) and changes nothing else.
 */
export async function flushLayer(qmp: QmpConnection, layerId: string): Promise<void> {
  const node = (await listOpenNodes(qmp)).get(layerId);
  if (!node) throw new LayerStateError(`layer ${layerId} is not open`);
  await blockdevReopen(qmp, [qcow2NodeOptions(layerId, node.backingNodeName, node.readOnly)]);
}

/** Closes qcow2 then protocol node; absent nodes are fine. Fails (QmpError) while exported or backing another node. */
export async function closeLayer(qmp: QmpConnection, layerId: string): Promise<void> {
  assertLayerId(layerId);
  const nodes = await listOpenNodes(qmp);
  if (nodes.has(layerId)) await blockdevDel(qmp, layerId);
  if (nodes.has(fileNodeName(layerId))) await blockdevDel(qmp, fileNodeName(layerId));
}

/**
 * Puts each overlay on top of its active layer in ONE transaction: all pairs
 * switch or none does. Overlays must be created with the active layer's path
 * in their header and opened with backing null. Exports (and any other
 * parents) of an active layer move to its overlay. Pairs already switched
 * are skipped, so a retry after a lost reply is safe. `extraActions` (e.g.
 * dirty-bitmap add/disable) join the same transaction and may name overlays.
 */
export async function snapshotLayers(
  qmp: QmpConnection,
  pairs: { activeLayerId: string; overlayLayerId: string }[],
  opts: { extraActions?: TransactionAction[] } = {},
): Promise<void> {
  const nodes = await listOpenNodes(qmp);
  const actions: TransactionAction[] = [];
  for (const p of pairs) {
    const active = nodes.get(p.activeLayerId);
    const overlay = nodes.get(p.overlayLayerId);
    if (!active) throw new LayerStateError(`active layer ${p.activeLayerId} is not open`);
    if (!overlay) throw new LayerStateError(`overlay ${p.overlayLayerId} is not open`);
    if (overlay.backingNodeName === p.activeLayerId) continue;
    if (overlay.backingNodeName !== null) throw new LayerStateError(`overlay ${p.overlayLayerId} already has backing ${overlay.backingNodeName}`);
    // The header is what operators (and a graph rebuilt by hand) see; it must name the layer below.
    const header = overlay.path ? await readQcow2Header(overlay.path) : null;
    if (header?.backingFile !== active.path) {
      throw new LayerStateError(`overlay ${p.overlayLayerId} header names backing ${header?.backingFile ?? 'none'}, not ${active.path ?? '?'}`);
    }
    actions.push({ type: 'blockdev-snapshot', data: { node: p.activeLayerId, overlay: p.overlayLayerId } });
  }
  await transaction(qmp, [...actions, ...(opts.extraActions ?? [])]);
}

/** Adds an NBD export of a layer; idempotent for the same id on the same node. */
export async function addExport(
  qmp: QmpConnection,
  opts: { exportId: string; layerId: string; name: string; writable: boolean; bitmaps?: string[]; allocationDepth?: boolean },
): Promise<{ added: boolean }> {
  const existing = (await listExports(qmp)).find((e) => e.id === opts.exportId);
  if (existing && !existing.shuttingDown) {
    if (existing.nodeName === opts.layerId) return { added: false };
    throw new LayerStateError(`export ${opts.exportId} already serves node ${existing.nodeName}, not ${opts.layerId}`);
  }
  if (existing) await removeExport(qmp, opts.exportId);
  await blockExportAdd(qmp, {
    id: opts.exportId,
    'node-name': opts.layerId,
    name: opts.name,
    writable: opts.writable,
    ...(opts.bitmaps ? { bitmaps: opts.bitmaps } : {}),
    ...(opts.allocationDepth ? { 'allocation-depth': true } : {}),
  });
  return { added: true };
}

/**
 * Removes an export and waits until QSD has really dropped it; absent is fine.
 * mode 'hard' (default) disconnects clients still attached, as Cinder expects
 * of a backend once it was told to terminate a connection; 'safe' fails instead.
 */
export async function removeExport(qmp: QmpConnection, exportId: string, opts: { mode?: 'safe' | 'hard'; timeoutMs?: number } = {}): Promise<void> {
  const ac = new AbortController();
  try {
    // Subscribe before looking, so an export already shutting down cannot finish unseen.
    const gone = qmp.waitForEvent((ev) => ev.event === 'BLOCK_EXPORT_DELETED' && ev.data['id'] === exportId, { signal: ac.signal, timeoutMs: opts.timeoutMs ?? 30_000 });
    gone.catch(() => undefined);
    const existing = (await listExports(qmp)).find((e) => e.id === exportId);
    if (!existing) return;
    if (existing.shuttingDown) {
      await gone;
      return;
    }
    ac.abort();
    await blockExportDel(qmp, exportId, { mode: opts.mode ?? 'hard', timeoutMs: opts.timeoutMs ?? 30_000 });
  } finally {
    ac.abort();
  }
}

/**
 * Whether anything holds the node as a child: a layer backed by it, an export,
 * or a job's filter (QEMU's auto-named nodes, which listOpenNodes leaves out).
 */
async function hasParents(qmp: QmpConnection, nodeName: string): Promise<boolean> {
  const graph = await queryBlockGraph(qmp);
  if (!graph) return [...(await listOpenNodes(qmp)).values()].some((n) => n.backingNodeName === nodeName) || (await listExports(qmp)).some((e) => e.nodeName === nodeName);
  const ids = new Set(graph.nodes.filter((n) => n.type === 'block-driver' && n.name === nodeName).map((n) => n.id));
  return graph.edges.some((e) => ids.has(e.child));
}

const jobWait = (opts: { timeoutMs?: number; signal?: AbortSignal }): JobWaitOptions => ({
  ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  ...(opts.signal ? { signal: opts.signal } : {}),
});

/**
 * Runs a merge job and then flushes the layer that keeps the data, however the
 * merge ends: a job of this id that an earlier attempt left running is waited
 * for instead of starting one, and `merge` may find the work already done
 * (before a crash that may have come before its flush).
 */
async function mergeThenFlush(qmp: QmpConnection, jobId: string, wait: JobWaitOptions, survivorLayerId: string, merge: () => Promise<void>): Promise<void> {
  if ((await queryJobs(qmp)).some((j) => j.id === jobId)) await awaitJob(qmp, jobId, wait);
  else await merge();
  await flushLayer(qmp, survivorLayerId);
}

/**
 * Merges everything between top and base into top (block-stream), so that
 * afterwards top's backing is base (or nothing when base is null). The header
 * gets base's absolute path, and top is flushed (flushLayer): the layers
 * streamed out stay open, and can be closed and deleted once this returns.
 * Idempotent: a job with this id still running is waited for; a top already
 * on base is only flushed.
 */
export async function streamInto(
  qmp: QmpConnection,
  opts: { topLayerId: string; baseLayerId: string | null; jobId: string; timeoutMs?: number; signal?: AbortSignal },
): Promise<void> {
  const wait = jobWait(opts);
  await mergeThenFlush(qmp, opts.jobId, wait, opts.topLayerId, async () => {
    const nodes = await listOpenNodes(qmp);
    const top = nodes.get(opts.topLayerId);
    if (!top) throw new LayerStateError(`layer ${opts.topLayerId} is not open`);
    if (top.backingNodeName === opts.baseLayerId) return;
    let basePath: string | null = null;
    if (opts.baseLayerId !== null) {
      const base = nodes.get(opts.baseLayerId);
      if (!base?.path) throw new LayerStateError(`base layer ${opts.baseLayerId} is not open`);
      basePath = base.path;
    }
    await blockStream(
      qmp,
      {
        'job-id': opts.jobId,
        device: opts.topLayerId,
        ...(opts.baseLayerId !== null && basePath !== null ? { 'base-node': opts.baseLayerId, 'backing-file': basePath } : {}),
      },
      wait,
    );
  });
}

/**
 * Commits a middle layer down into its backing layer (block-commit, not the
 * active layer): afterwards every node that was backed by `topLayerId` is
 * backed by `baseLayerId`, which holds what the top showed, and the top node is
 * left open without parents for the caller to close. It copies only what the top
 * holds, so it is the cheap direction when the top is small (streamInto copies
 * the base up instead). The base is flushed before this returns, so the top's
 * file can go then. Repeatable: a commit still running is awaited; one already
 * done (nothing holds the top any more) only flushes the base. A top held by
 * something other than a layer (another job's filter) is refused.
 */
export async function commitInto(qmp: QmpConnection, opts: { topLayerId: string; baseLayerId: string; jobId: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
  const wait = jobWait(opts);
  await mergeThenFlush(qmp, opts.jobId, wait, opts.baseLayerId, async () => {
    const nodes = await listOpenNodes(qmp);
    const top = nodes.get(opts.topLayerId);
    if (!top) throw new LayerStateError(`layer ${opts.topLayerId} is not open`);
    if (!(await hasParents(qmp, opts.topLayerId))) return;
    const above = (id: string): OpenNode | undefined => [...nodes.values()].find((n) => n.backingNodeName === id);
    let root = above(opts.topLayerId);
    if (!root) throw new LayerStateError(`layer ${opts.topLayerId} is held by something other than a layer (a running job?)`);
    if (top.backingNodeName !== opts.baseLayerId) throw new LayerStateError(`layer ${opts.topLayerId} is backed by ${top.backingNodeName ?? 'nothing'}, not ${opts.baseLayerId}`);
    const base = nodes.get(opts.baseLayerId);
    if (!base?.path) throw new LayerStateError(`base layer ${opts.baseLayerId} is not open`);
    // block-commit runs on a root node: the top of any chain through the layer.
    for (let next = above(root.nodeName); next; next = above(root.nodeName)) root = next;
    const outcome = await blockCommit(qmp, { 'job-id': opts.jobId, device: root.nodeName, 'top-node': opts.topLayerId, 'base-node': opts.baseLayerId, 'backing-file': base.path }, wait);
    if (outcome !== 'completed') throw new LayerStateError(`commit of ${opts.topLayerId} stopped at ${outcome}`);
  });
}

/**
 * Grows a layer's virtual size (shrinking is refused). QSD 7.2 NBD exports
 * forbid resize of their node ("Permission conflict ... 'resize'"), so the
 * layer must not be exported: remove its exports, resize, add them back.
 */
export async function resizeLayer(qmp: QmpConnection, layerId: string, sizeBytes: number): Promise<void> {
  const node = (await listOpenNodes(qmp)).get(layerId);
  if (!node) throw new LayerStateError(`layer ${layerId} is not open`);
  if (node.virtualSizeBytes === sizeBytes) return;
  if (sizeBytes < node.virtualSizeBytes) throw new LayerStateError(`refusing to shrink ${layerId} from ${node.virtualSizeBytes} to ${sizeBytes} bytes`);
  const exports = (await listExports(qmp)).filter((e) => e.nodeName === layerId);
  if (exports.length > 0) {
    throw new LayerStateError(`layer ${layerId} is exported (${exports.map((e) => e.id).join(', ')}); QSD cannot resize an exported node`);
  }
  await blockResize(qmp, layerId, sizeBytes);
}
