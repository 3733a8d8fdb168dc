// User messages (Cinder's cinder/message): what went wrong with an asynchronous
// request the API already accepted, in words fit for any user. Event ids and
// texts are Cinder's message_field catalogue: event VOLUME_<resource>_<action>_<detail>,
// text "<action text>:<detail text>".
import { randomUUID } from 'node:crypto';
import { notFound } from '../api/errors.js';
import type { Executor, Store } from '../store/db.js';
import type { MessageRow } from '../store/schema.js';
import type { Caller } from './deps.js';
import { newId } from './ids.js';

export const MESSAGE_RESOURCES = ['VOLUME', 'VOLUME_SNAPSHOT', 'VOLUME_BACKUP'] as const;
export type MessageResource = (typeof MESSAGE_RESOURCES)[number];

export const MESSAGE_ACTIONS = {
  SCHEDULE_ALLOCATE_VOLUME: ['001', 'schedule allocate volume'],
  ATTACH_VOLUME: ['002', 'attach volume'],
  COPY_VOLUME_TO_IMAGE: ['003', 'copy volume to image'],
  UPDATE_ATTACHMENT: ['004', 'update attachment'],
  COPY_IMAGE_TO_VOLUME: ['005', 'copy image to volume'],
  UNMANAGE_VOLUME: ['006', 'unmanage volume'],
  EXTEND_VOLUME: ['007', 'extend volume'],
  CREATE_VOLUME_FROM_BACKEND: ['008', 'create volume from backend storage'],
  SNAPSHOT_CREATE: ['009', 'create snapshot'],
  SNAPSHOT_DELETE: ['010', 'delete snapshot'],
  SNAPSHOT_UPDATE: ['011', 'update snapshot'],
  SNAPSHOT_METADATA_UPDATE: ['012', 'update snapshot metadata'],
  BACKUP_CREATE: ['013', 'create backup'],
  BACKUP_DELETE: ['014', 'delete backup'],
  BACKUP_RESTORE: ['015', 'restore backup'],
  REIMAGE_VOLUME: ['016', 'reimage volume'],
} as const satisfies Record<string, readonly [string, string]>;
export type MessageAction = keyof typeof MESSAGE_ACTIONS;

export const MESSAGE_DETAILS = {
  UNKNOWN_ERROR: ['001', 'An unknown error occurred.'],
  DRIVER_NOT_INITIALIZED: ['002', 'Driver is not initialized at present.'],
  NO_BACKEND_AVAILABLE: ['003', 'Could not find any available weighted backend.'],
  FAILED_TO_UPLOAD_VOLUME: ['004', 'Failed to upload volume to image at backend.'],
  VOLUME_ATTACH_MODE_INVALID: ['005', "Volume's attach mode is invalid."],
  QUOTA_EXCEED: ['006', 'Not enough quota resource for operation.'],
  NOT_ENOUGH_SPACE_FOR_IMAGE: ['007', 'Image used for creating volume exceeds available space.'],
  UNMANAGE_ENC_NOT_SUPPORTED: ['008', 'Unmanaging encrypted volumes is not supported.'],
  NOTIFY_COMPUTE_SERVICE_FAILED: ['009', 'Compute service failed to extend volume.'],
  DRIVER_FAILED_EXTEND: ['010', 'Volume Driver failed to extend volume.'],
  SIGNATURE_VERIFICATION_FAILED: ['011', 'Image signature verification failed.'],
  DRIVER_FAILED_CREATE: ['012', 'Driver failed to create the volume.'],
  SNAPSHOT_CREATE_ERROR: ['013', 'Snapshot failed to create.'],
  SNAPSHOT_UPDATE_METADATA_FAILED: ['014', 'Volume snapshot update metadata failed.'],
  SNAPSHOT_IS_BUSY: ['015', 'Snapshot is busy.'],
  SNAPSHOT_DELETE_ERROR: ['016', 'Snapshot failed to delete.'],
  BACKUP_INVALID_STATE: ['017', 'Backup status is invalid.'],
  BACKUP_SERVICE_DOWN: ['018', 'Backup service is down.'],
  BACKUP_CREATE_DEVICE_ERROR: ['019', 'Failed to get backup device from the volume service.'],
  BACKUP_CREATE_DRIVER_ERROR: ['020', 'Backup driver failed to create backup.'],
  ATTACH_ERROR: ['021', 'Failed to attach volume.'],
  DETACH_ERROR: ['022', 'Failed to detach volume.'],
  BACKUP_CREATE_CLEANUP_ERROR: ['023', 'Cleanup of temporary volume/snapshot failed.'],
  BACKUP_SCHEDULE_ERROR: ['024', 'Backup failed to schedule. Service not found for creating backup.'],
  BACKUP_DELETE_DRIVER_ERROR: ['025', 'Backup driver failed to delete backup.'],
  BACKUP_RESTORE_ERROR: ['026', 'Backup driver failed to restore backup.'],
  VOLUME_INVALID_STATE: ['027', 'Volume status is invalid.'],
  REIMAGE_VOLUME_FAILED: ['028', 'Compute service failed to reimage volume.'],
  IMAGE_FORMAT_UNACCEPTABLE: ['029', 'The image disk format must be the same as the volume format for the volume type you are requesting.'],
  INCREMENTAL_BACKUP_FORCES_FULL_BACKUP: ['030', 'Incremental backup not possible, forcing full backup.'],
} as const satisfies Record<string, readonly [string, string]>;
export type MessageDetail = keyof typeof MESSAGE_DETAILS;

/** Cinder's message_ttl default: messages are guaranteed for 30 days. */
export const MESSAGE_TTL_MS = 2_592_000_000;

export interface UserMessageInput {
  /** The project that owns the resource (and so sees the message). */
  readonly projectId: string;
  readonly resourceType?: MessageResource;
  readonly resourceUuid?: string | null;
  readonly action: MessageAction;
  /** Defaults to UNKNOWN_ERROR, as Cinder. */
  readonly detail?: MessageDetail;
  readonly level?: 'ERROR' | 'WARNING' | 'INFO';
  /** The API request that started the work, if known; else a fresh req-<uuid>. */
  readonly requestId?: string;
  /** Injected clock (epoch ms), for tests. */
  readonly now?: number;
}

export function messageEvent(resourceType: MessageResource, action: MessageAction, detail: MessageDetail): { eventId: string; text: string } {
  const [actionId, actionText] = MESSAGE_ACTIONS[action];
  const [detailId, detailText] = MESSAGE_DETAILS[detail];
  return { eventId: `VOLUME_${resourceType}_${actionId}_${detailId}`, text: `${actionText}:${detailText}` };
}

/**
 * Records one message; call it inside the transaction that marks the resource
 * failed so that both happen or neither. Expired messages are reaped here
 * (Cinder's scheduler does it periodically).
 */
export async function recordUserMessage(ex: Executor, input: UserMessageInput): Promise<MessageRow> {
  const now = input.now ?? Date.now();
  const resourceType = input.resourceType ?? 'VOLUME';
  const { eventId, text } = messageEvent(resourceType, input.action, input.detail ?? 'UNKNOWN_ERROR');
  const row: MessageRow = {
    id: newId(),
    project_id: input.projectId,
    request_id: input.requestId ?? `req-${randomUUID()}`,
    resource_type: resourceType,
    resource_uuid: input.resourceUuid ?? null,
    event_id: eventId,
    message_level: input.level ?? 'ERROR',
    user_message: text,
    created_at: new Date(now).toISOString(),
    expires_at: new Date(now + MESSAGE_TTL_MS).toISOString(),
  };
  await ex.deleteFrom('messages').where('expires_at', '<', row.created_at).execute();
  await ex.insertInto('messages').values(row).execute();
  return row;
}

/** Admins see every project's messages; others their own project's. */
export async function listMessages(ex: Executor, caller: Caller): Promise<MessageRow[]> {
  let q = ex.selectFrom('messages').selectAll();
  if (!caller.isAdmin) q = q.where('project_id', '=', caller.projectId);
  return q.execute();
}

export async function getMessage(ex: Executor, caller: Caller, id: string): Promise<MessageRow> {
  const row = await ex.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw notFound(`Message ${id} could not be found.`);
  return row;
}

export async function deleteMessage(store: Store, caller: Caller, id: string): Promise<void> {
  await store.transaction(async (trx) => {
    await getMessage(trx, caller, id);
    await trx.deleteFrom('messages').where('id', '=', id).execute();
  });
}
