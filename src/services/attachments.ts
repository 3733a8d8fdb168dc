// Attachments: Cinder's 3.27+ API and the legacy os-reserve / os-initialize_connection
// / os-attach / os-terminate_connection / os-detach sequence share one record
// per attachment. An attachment with a connector owns one NBD export, made by the
// volume role (a job the API waits for, as Cinder's RPC call does).
import { badRequest, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { AttachmentRow, VolumeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { casStatus } from './status.js';
import { getVolume } from './volumes.js';

export interface Connector {
  host?: string;
  [key: string]: unknown;
}

/** What the volume role reports when it has exported a volume. */
export interface ExportResult {
  exportName: string;
  socketPath: string;
  /** Set when the pool also serves NBD over TCP with TLS-PSK. */
  tcp: { host: string; port: number; pskIdentity: string; pskKey: string } | null;
  /** The volume service's host name. */
  serviceHostname: string;
  /** What the volume role exported for this connector: the unix socket for its
   *  own host, TCP+TLS (through the pool's gateway) for any other. */
  transport: 'unix' | 'tcp';
}

export const EXPORT_TIMEOUT_MS = 30_000;

export async function getAttachment(ex: Executor, caller: Caller, id: string): Promise<AttachmentRow> {
  const row = await ex.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Volume attachment ${id} could not be found.`);
  return row;
}

function attachable(vol: VolumeRow): boolean {
  if (vol.status === 'available') return true;
  return vol.multiattach === 1 && ['in-use', 'reserved', 'attaching'].includes(vol.status);
}

/** Statuses in which a bare os-initialize_connection may export a volume: Cinder
 *  leaves the status alone on that call, but never exports a volume that is
 *  being made, deleted or changed. */
const EXPORTABLE = ['available', 'in-use', 'reserved', 'attaching', 'detaching', 'backing-up'];

/** A fresh attachment in 'reserved': no connector and no export yet. */
export function reservedAttachmentRow(
  vol: Pick<VolumeRow, 'id' | 'project_id'>,
  fields: { instanceUuid: string | null; mode: 'rw' | 'ro'; host?: string | null; mountpoint?: string | null },
): AttachmentRow {
  return {
    id: newId(),
    volume_id: vol.id,
    project_id: vol.project_id,
    instance_uuid: fields.instanceUuid,
    attached_host: fields.host ?? null,
    mountpoint: fields.mountpoint ?? null,
    attach_mode: fields.mode,
    status: 'reserved',
    connector: null,
    connection_info: null,
    export_id: null,
    attach_time: null,
    detach_time: null,
    created_at: nowIso(),
    updated_at: null,
  };
}

/** Reserves the volume for an instance (attachment_create / os-reserve), or with
 *  `keepStatus` only records the attachment (legacy os-initialize_connection). */
export async function reserveAttachment(
  deps: ServiceDeps,
  caller: Caller,
  volumeId: string,
  opts: { instanceUuid: string | null; mode: 'rw' | 'ro'; legacy: boolean; keepStatus?: boolean },
): Promise<AttachmentRow> {
  return deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, volumeId);
    if (opts.keepStatus) {
      if (!EXPORTABLE.includes(vol.status)) throw invalidVolume(`Volume ${volumeId} cannot be connected while its status is ${vol.status}.`);
    } else {
      if (!attachable(vol)) throw invalidVolume(`Volume ${volumeId} status must be available${vol.multiattach ? ' or in-use' : ''}, but current status is: ${vol.status}.`);
      const next = opts.legacy ? 'attaching' : vol.status === 'available' ? 'reserved' : vol.status;
      if (!(await casStatus(trx, 'volumes', volumeId, [vol.status], { status: next }))) throw invalidVolume('Volume status changed concurrently; try again.');
    }
    const row = reservedAttachmentRow(vol, { instanceUuid: opts.instanceUuid, mode: opts.mode });
    await trx.insertInto('attachments').values(row).execute();
    return row;
  });
}

/** Gives the attachment a connector: the volume role exports the volume and the
 *  connection info is stored on the attachment and returned. */
export async function connectAttachment(deps: ServiceDeps, caller: Caller, attachmentId: string, connector: Connector): Promise<Record<string, unknown>> {
  const { jobId, exportId } = await deps.store.transaction(async (trx) => {
    const att = await getAttachment(trx, caller, attachmentId);
    if (!['reserved', 'attaching', 'attached'].includes(att.status)) throw badRequest(`Invalid attachment: status is ${att.status}.`);
    const vol = await getVolume(trx, caller, att.volume_id);
    if (!vol.host) throw invalidVolume(`Volume ${vol.id} has no host yet.`);
    const exportId = att.export_id ?? `x${att.id.replace(/-/g, '').slice(0, 20)}`;
    await trx
      .updateTable('attachments')
      .set({ connector: JSON.stringify(connector), export_id: exportId, status: att.status === 'attached' ? 'attached' : 'attaching', attached_host: typeof connector.host === 'string' ? connector.host : null, updated_at: nowIso() })
      .where('id', '=', att.id)
      .execute();
    if (vol.status === 'reserved') await casStatus(trx, 'volumes', vol.id, ['reserved'], { status: 'attaching' });
    if (!EXPORTABLE.includes(vol.status)) throw invalidVolume(`Volume ${vol.id} cannot be connected while its status is ${vol.status}.`);
    const jobId = await deps.jobs.enqueue(trx, {
      kind: 'export_volume',
      target: vol.host,
      resourceId: vol.id,
      payload: { exportId, attachmentId: att.id, writable: att.attach_mode !== 'ro', connectorHost: typeof connector.host === 'string' ? connector.host : null },
    });
    return { jobId, exportId };
  });
  deps.kick?.();
  const job = await deps.jobs.waitFor(jobId, EXPORT_TIMEOUT_MS);
  if (job.state !== 'done') throw new Error(`export of attachment ${attachmentId} failed: ${job.error ?? 'unknown error'}`);
  const result = JSON.parse(job.result ?? '{}') as ExportResult;
  const info = connectionInfo(result, connector, exportId);
  await deps.store.db.updateTable('attachments').set({ connection_info: JSON.stringify(info) }).where('id', '=', attachmentId).execute();
  return info;
}

/** Cinder's connection_info shape, with an NBD driver type: a local connector gets
 *  the unix socket, any other host NBD over TCP with TLS-PSK (the key travels like
 *  iSCSI's CHAP secret: to the authorised caller only, never into logs). */
export function connectionInfo(res: ExportResult, connector: Connector, exportId: string): Record<string, unknown> {
  const local = res.transport === 'unix' || !res.tcp;
  const data: Record<string, unknown> = local
    ? { export_name: res.exportName, socket_path: res.socketPath, uri: `nbd+unix:///${res.exportName}?socket=${res.socketPath}`, transport: 'unix' }
    : {
        export_name: res.exportName,
        host: res.tcp!.host,
        port: res.tcp!.port,
        uri: `nbds://${res.tcp!.host}:${res.tcp!.port}/${res.exportName}`,
        transport: 'tcp',
        tls: 'psk',
        psk_identity: res.tcp!.pskIdentity,
        psk_key: res.tcp!.pskKey,
      };
  return { driver_volume_type: 'nbd', data: { ...data, export_id: exportId, access_mode: 'rw' } };
}

/** Marks the attachment attached and the volume in-use (os-complete / os-attach). */
export async function completeAttachment(deps: ServiceDeps, caller: Caller, attachmentId: string, details: { mountpoint?: string | null; hostName?: string | null; instanceUuid?: string | null } = {}): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const att = await getAttachment(trx, caller, attachmentId);
    if (!['reserved', 'attaching', 'attached'].includes(att.status)) throw badRequest(`Invalid attachment: status is ${att.status}.`);
    await trx
      .updateTable('attachments')
      .set({
        status: 'attached',
        attach_time: att.attach_time ?? nowIso(),
        mountpoint: details.mountpoint ?? att.mountpoint,
        attached_host: details.hostName ?? att.attached_host,
        instance_uuid: details.instanceUuid ?? att.instance_uuid,
        updated_at: nowIso(),
      })
      .where('id', '=', att.id)
      .execute();
    await trx.updateTable('volumes').set({ status: 'in-use', attach_status: 'attached', updated_at: nowIso() }).where('id', '=', att.volume_id).execute();
  });
}

/** Removes the attachment and its export; the volume returns to available when
 *  no other attachment remains. */
export async function deleteAttachment(deps: ServiceDeps, caller: Caller, attachmentId: string): Promise<void> {
  const jobId = await deps.store.transaction(async (trx) => {
    const att = await getAttachment(trx, caller, attachmentId);
    const vol = await trx.selectFrom('volumes').selectAll().where('id', '=', att.volume_id).executeTakeFirstOrThrow();
    await trx.updateTable('attachments').set({ status: 'detached', detach_time: nowIso(), updated_at: nowIso() }).where('id', '=', att.id).execute();
    const others = await trx.selectFrom('attachments').select('status').where('volume_id', '=', vol.id).where('status', '!=', 'detached').execute();
    const status = others.length === 0 ? 'available' : others.some((o) => o.status === 'attached') ? 'in-use' : 'reserved';
    // Only attach-related statuses follow the attachments; a volume that is, say,
    // backing up keeps its status when a bare connection is terminated.
    await trx
      .updateTable('volumes')
      .set({ status, attach_status: others.some((o) => o.status === 'attached') ? 'attached' : 'detached', updated_at: nowIso() })
      .where('id', '=', vol.id)
      .where('status', 'in', ['available', 'reserved', 'attaching', 'in-use', 'detaching'])
      .execute();
    // The row stays (detached) until the volume role has removed the export, so a
    // crash in between is repaired at the role's next reconcile.
    if (att.export_id && vol.host) {
      return deps.jobs.enqueue(trx, { kind: 'unexport_volume', target: vol.host, resourceId: vol.id, payload: { exportId: att.export_id, attachmentId: att.id } });
    }
    await trx.deleteFrom('attachments').where('id', '=', att.id).execute();
    return null;
  });
  deps.kick?.();
  if (jobId !== null) {
    const job = await deps.jobs.waitFor(jobId, EXPORT_TIMEOUT_MS);
    if (job.state !== 'done') throw new Error(`removing the export of attachment ${attachmentId} failed: ${job.error ?? 'unknown error'}`);
  }
}

/** The legacy path finds the attachment of a volume by connector host or instance. */
export async function findLegacyAttachment(ex: Executor, volumeId: string, match: { host?: string | null; instanceUuid?: string | null; attachmentId?: string | null }): Promise<AttachmentRow | undefined> {
  const rows = await ex.selectFrom('attachments').selectAll().where('volume_id', '=', volumeId).where('status', '!=', 'detached').orderBy('created_at', 'desc').execute();
  if (match.attachmentId) return rows.find((r) => r.id === match.attachmentId);
  return (
    rows.find((r) => match.instanceUuid && r.instance_uuid === match.instanceUuid) ??
    rows.find((r) => match.host && r.attached_host === match.host) ??
    rows.find((r) => r.status !== 'attached')
  );
}
