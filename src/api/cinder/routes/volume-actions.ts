// POST /volumes/{id}/action: one body key names the action, as in Cinder.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  completeAttachment,
  connectAttachment,
  deleteAttachment,
  findLegacyAttachment,
  reserveAttachment,
  type Connector,
} from '../../../services/attachments.js';
import { changeVolumeImageMetadata, deleteVolume, extendVolume, getVolume, resetVolumeStatus, retypeVolume, revertVolume, setBootable, uploadVolumeToImage } from '../../../services/volumes.js';
import { volumeTypeView } from '../views/volume-type.js';
import { casStatus } from '../../../services/status.js';
import { badRequest, invalidVolume } from '../../errors.js';
import { atLeast } from '../../microversion.js';
import { metadataField, parseBody, parseBool, sizeGiB, uuidField } from '../../validate.js';
import { requireAdmin, requireWriter } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';

const connectorSchema = z.object({ connector: z.record(z.string(), z.unknown()) }).passthrough();

export function registerVolumeActionRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { deps } = opts;
  const db = deps.store.db;

  app.post('/volumes/:id/action', async (req, reply) => {
    const s = scopeOf(req);
    const id = (req.params as { id: string }).id;
    const body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length !== 1) {
      throw badRequest('Invalid input received: the action body must hold exactly one action.');
    }
    const [action, args] = Object.entries(body as Record<string, unknown>)[0]!;
    requireWriter(s);
    switch (action) {
      case 'os-extend': {
        const { new_size } = parseBody(z.object({ new_size: sizeGiB }).strict(), args, 'os-extend');
        await extendVolume(deps, s, id, new_size, atLeast(s.version, '3.42'));
        return reply.code(202).send();
      }
      case 'os-reset_status': {
        requireAdmin(s);
        const b = parseBody(z.object({ status: z.string().optional(), attach_status: z.string().optional(), migration_status: z.string().optional() }).strict(), args, 'os-reset_status');
        await resetVolumeStatus(deps, s, id, b);
        return reply.code(202).send();
      }
      case 'os-force_delete': {
        requireAdmin(s);
        await deleteVolume(deps, s, id, { cascade: true, force: true });
        return reply.code(202).send();
      }
      case 'revert': {
        if (!atLeast(s.version, '3.40')) throw badRequest('Invalid input received: revert needs microversion 3.40 or later.');
        const { snapshot_id } = parseBody(z.object({ snapshot_id: uuidField }).strict(), args, 'revert');
        await revertVolume(deps, s, id, snapshot_id);
        return reply.code(202).send();
      }
      case 'os-set_bootable': {
        const b = parseBody(z.object({ bootable: z.union([z.boolean(), z.string()]) }).strict(), args, 'os-set_bootable');
        await setBootable(deps, s, id, parseBool(b.bootable, 'bootable'));
        return reply.code(200).send();
      }
      case 'os-update_readonly_flag': {
        const b = parseBody(z.object({ readonly: z.union([z.boolean(), z.string()]) }).strict(), args, 'os-update_readonly_flag');
        const ro = parseBool(b.readonly, 'readonly');
        const vol = await getVolume(db, s, id);
        const meta = { ...(JSON.parse(vol.metadata) as Record<string, string>), readonly: ro ? 'True' : 'False' };
        await db.updateTable('volumes').set({ metadata: JSON.stringify(meta) }).where('id', '=', id).execute();
        return reply.code(202).send();
      }
      case 'os-retype': {
        const b = parseBody(z.object({ new_type: z.string().min(1), migration_policy: z.enum(['never', 'on-demand']).optional() }).strict(), args, 'os-retype');
        await retypeVolume(deps, s, id, b.new_type, b.migration_policy ?? 'never');
        return reply.code(202).send();
      }
      case 'os-reserve': {
        await reserveAttachment(deps, s, id, { instanceUuid: null, mode: 'rw', legacy: true });
        return reply.code(202).send();
      }
      case 'os-unreserve': {
        await deps.store.transaction(async (trx) => {
          const vol = await getVolume(trx, s, id);
          if (vol.status !== 'attaching' && vol.status !== 'reserved') return;
          const pending = await trx.selectFrom('attachments').select('id').where('volume_id', '=', id).where('status', '=', 'reserved').execute();
          await trx.deleteFrom('attachments').where('volume_id', '=', id).where('status', '=', 'reserved').execute();
          const attached = await trx.selectFrom('attachments').select('id').where('volume_id', '=', id).where('status', '=', 'attached').execute();
          if (pending.length >= 0) await casStatus(trx, 'volumes', id, [vol.status], { status: attached.length > 0 ? 'in-use' : 'available' });
        });
        return reply.code(202).send();
      }
      case 'os-begin_detaching': {
        await deps.store.transaction(async (trx) => {
          const vol = await getVolume(trx, s, id);
          if (vol.status !== 'in-use') throw invalidVolume(`Volume status must be in-use to begin detaching, but current status is: ${vol.status}.`);
          await casStatus(trx, 'volumes', id, ['in-use'], { status: 'detaching' });
        });
        return reply.code(202).send();
      }
      case 'os-roll_detaching': {
        await deps.store.transaction(async (trx) => {
          await getVolume(trx, s, id);
          await casStatus(trx, 'volumes', id, ['detaching'], { status: 'in-use' });
        });
        return reply.code(202).send();
      }
      case 'os-initialize_connection': {
        const { connector } = parseBody(connectorSchema, args, 'os-initialize_connection');
        const c = connector as Connector;
        let att = await findLegacyAttachment(db, id, { host: typeof c.host === 'string' ? c.host : null });
        att ??= await reserveAttachment(deps, s, id, { instanceUuid: null, mode: 'rw', legacy: true, keepStatus: true });
        const info = await connectAttachment(deps, s, att.id, c);
        return reply.code(200).send({ connection_info: info });
      }
      case 'os-terminate_connection': {
        const { connector } = parseBody(connectorSchema, args, 'os-terminate_connection');
        const c = connector as Connector;
        await getVolume(db, s, id);
        const att = await findLegacyAttachment(db, id, { host: typeof c.host === 'string' ? c.host : null });
        if (att && att.status !== 'attached') await deleteAttachment(deps, s, att.id);
        else if (att?.export_id) {
          // Attached: the export goes, the attachment record stays until os-detach.
          const vol = await getVolume(db, s, id);
          const jobId = await deps.jobs.enqueue(db, { kind: 'unexport_volume', target: vol.host, resourceId: id, payload: { exportId: att.export_id, attachmentId: null } });
          deps.kick?.();
          await deps.jobs.waitFor(jobId, 30_000);
          await db.updateTable('attachments').set({ export_id: null, connection_info: null }).where('id', '=', att.id).execute();
        }
        return reply.code(202).send();
      }
      case 'os-attach': {
        const b = parseBody(
          z.object({ instance_uuid: uuidField.optional(), mountpoint: z.string().max(255), host_name: z.string().max(255).optional(), mode: z.enum(['rw', 'ro']).optional() }).strict(),
          args,
          'os-attach',
        );
        if (!b.instance_uuid && !b.host_name) throw badRequest('Invalid input received: instance_uuid or host_name is required.');
        let att = await findLegacyAttachment(db, id, { instanceUuid: b.instance_uuid ?? null, host: b.host_name ?? null });
        att ??= await reserveAttachment(deps, s, id, { instanceUuid: b.instance_uuid ?? null, mode: b.mode ?? 'rw', legacy: true });
        await completeAttachment(deps, s, att.id, { mountpoint: b.mountpoint, hostName: b.host_name ?? null, instanceUuid: b.instance_uuid ?? null });
        return reply.code(202).send();
      }
      case 'os-detach': {
        const b = parseBody(z.object({ attachment_id: uuidField.optional() }).strict(), args ?? {}, 'os-detach');
        await getVolume(db, s, id);
        const att = await findLegacyAttachment(db, id, { attachmentId: b.attachment_id ?? null });
        if (!att) throw badRequest(`Invalid volume: Volume ${id} is not attached${b.attachment_id ? ` through attachment ${b.attachment_id}` : ''}.`);
        await deleteAttachment(deps, s, att.id);
        return reply.code(202).send();
      }
      case 'os-force_detach': {
        requireAdmin(s);
        const b = parseBody(z.object({ attachment_id: uuidField.optional(), connector: z.unknown().optional() }).strict(), args ?? {}, 'os-force_detach');
        const att = await findLegacyAttachment(db, id, { attachmentId: b.attachment_id ?? null });
        if (att) await deleteAttachment(deps, s, att.id);
        return reply.code(202).send();
      }
      case 'os-volume_upload_image': {
        const b = parseBody(
          z.object({
            image_name: z.string().min(1).max(255),
            force: z.union([z.boolean(), z.string()]).optional(),
            disk_format: z.string().optional(),
            container_format: z.string().optional(),
            visibility: z.string().optional(),
            protected: z.union([z.boolean(), z.string()]).optional(),
          }).strict(),
          args,
          'os-volume_upload_image',
        );
        const { volume, image } = await uploadVolumeToImage(deps, s, id, {
          imageName: b.image_name,
          force: b.force === undefined ? false : parseBool(b.force, 'force'),
          diskFormat: b.disk_format ?? 'raw',
          containerFormat: b.container_format ?? 'bare',
          visibility: b.visibility ?? 'private',
          protected: b.protected === undefined ? false : parseBool(b.protected, 'protected'),
        });
        const vtype = await db.selectFrom('volume_types').selectAll().where('id', '=', volume.volume_type_id).executeTakeFirst();
        return reply.code(202).send({
          'os-volume_upload_image': {
            id: volume.id,
            updated_at: volume.updated_at,
            status: 'uploading',
            display_description: volume.description,
            size: volume.size,
            volume_type: vtype ? volumeTypeView(s, vtype) : null,
            image_id: image.id,
            container_format: image.container_format,
            disk_format: image.disk_format,
            image_name: image.name,
            protected: image.protected === 1,
            visibility: image.visibility,
          },
        });
      }
      case 'os-set_image_metadata': {
        const b = parseBody(z.object({ metadata: metadataField }).strict(), args, 'os-set_image_metadata');
        return reply.code(200).send({ metadata: await changeVolumeImageMetadata(deps, s, id, { set: b.metadata }) });
      }
      case 'os-unset_image_metadata': {
        const b = parseBody(z.object({ key: z.string().min(1).max(255) }).strict(), args, 'os-unset_image_metadata');
        await changeVolumeImageMetadata(deps, s, id, { unset: b.key });
        return reply.code(200).send();
      }
      case 'os-show_image_metadata': {
        const vol = await getVolume(db, s, id);
        return reply.code(200).send({ metadata: JSON.parse(vol.image_metadata ?? '{}') as Record<string, string> });
      }
      default:
        throw badRequest(`Invalid input received: there is no volume action '${action}'.`);
    }
  });
}
