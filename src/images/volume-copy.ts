// The volume role's half of Cinder's image operations. Data only moves through
// QSD's NBD exports, so QSD keeps sole ownership of the layer files: a fresh
// volume is filled through a writable export of its (not yet available) layer,
// and an upload reads a read-only export of a layer nobody writes to: the
// volume's top while it is `uploading` from available, or a layer frozen by a
// snapshot switch (and pinned against garbage collection) when it is in use.
import { mkdir, rename, unlink } from 'node:fs/promises';
import { addExport, removeExport } from '../drivers/qsd/images.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { ClaimedJob } from '../store/jobs.js';
import type { HandlerContext } from '../roles/volume/handlers.js';
import { casImage, volumeImageMetadata } from '../services/images.js';
import { nbdUnixUrl, qemuImgConvert, qemuImgInfo } from './qemu-img.js';
import { finalPath, hashFile, partPath } from './receive.js';

const PIN_KIND = 'image_upload';

const diskFormatOf = (f: string | null): 'raw' | 'qcow2' => {
  if (f === 'raw' || f === 'qcow2') return f;
  throw new Error(`disk format ${f ?? 'none'} cannot be copied to or from a volume`);
};

/** create_volume_from_image: the volume's empty layer exists; write the image into it. */
export async function fillVolumeFromImage(ctx: HandlerContext, job: ClaimedJob): Promise<void> {
  const db = ctx.store.db;
  const vol = await db.selectFrom('volumes').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!vol || vol.status !== 'downloading' || !vol.active_layer_id) return;
  const imageId = String((JSON.parse(vol.image_metadata ?? '{}') as Record<string, unknown>)['image_id'] ?? '');
  const image = await db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
  if (!image || image.status !== 'active' || !image.location) throw new Error(`image ${imageId} is no longer available`);
  const format = diskFormatOf(image.disk_format);
  const exportId = `fill-${vol.id}`;
  await addExport(ctx.pool.qmp, { exportId, layerId: vol.active_layer_id, name: exportId, writable: true });
  try {
    // -n: the target exists (the layer). Zero runs are written as zeroes, so a
    // retry over a half-filled layer still ends byte-identical to the image.
    await qemuImgConvert({ src: image.location, srcFormat: format, dst: nbdUnixUrl(ctx.pool.nbdSocketPath, exportId), dstFormat: 'raw', noCreate: true });
  } finally {
    await removeExport(ctx.pool.qmp, exportId);
  }
  await ctx.jobs.withFence(job, async (trx) => {
    await trx
      .updateTable('volumes')
      .set({ status: 'available', bootable: 1, image_metadata: JSON.stringify(volumeImageMetadata(image)), updated_at: nowIso() })
      .where('id', '=', vol.id)
      .where('status', '=', 'downloading')
      .execute();
  });
}

/** upload_volume_to_image: copy the volume's data into the queued image the API made. */
export async function uploadVolumeToImage(ctx: HandlerContext, job: ClaimedJob): Promise<void> {
  const db = ctx.store.db;
  const imageId = String(job.payload['imageId']);
  const previous = String(job.payload['previousStatus'] ?? 'available');
  const dir = String(job.payload['directory']);
  const vol = await db.selectFrom('volumes').selectAll().where('id', '=', job.resourceId).executeTakeFirst();
  if (!vol || vol.status !== 'uploading' || !vol.active_layer_id) return;
  const image = await db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
  if (!image || !['queued', 'saving'].includes(image.status)) {
    // The image was deleted meanwhile: nothing to fill, the volume goes back.
    await ctx.jobs.withFence(job, (trx) => restoreVolume(trx, vol.id, previous, imageId));
    return;
  }
  const format = diskFormatOf(image.disk_format);
  if (image.status === 'queued' && !(await casImage(db, imageId, ['queued'], { status: 'saving' }))) throw new Error(`image ${imageId} changed status concurrently`);

  let layerId = vol.active_layer_id;
  let frozen = false;
  if (previous !== 'available') {
    // In use: writes continue, so read a point-in-time copy. The switch's
    // `clone:` purpose lets a crash between switch and commit roll forward.
    const pin = await db.selectFrom('layer_pins').select('layer_id').where('owner_kind', '=', PIN_KIND).where('owner_id', '=', imageId).executeTakeFirst();
    if (pin) layerId = pin.layer_id;
    else {
      const map = await ctx.ops.switchToOverlays((fn) => ctx.jobs.withFence(job, fn), [{ volumeId: vol.id, purpose: `clone:image-upload:${imageId}` }], async (trx, f) => {
        await trx.insertInto('layer_pins').values({ layer_id: f.get(vol.id)!, owner_kind: PIN_KIND, owner_id: imageId, volume_id: vol.id, created_at: nowIso() }).execute();
      });
      layerId = map.get(vol.id)!;
    }
    frozen = true;
  }

  const exportId = `upload-${imageId}`;
  const part = partPath(dir, imageId);
  const final = finalPath(dir, imageId);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await addExport(ctx.pool.qmp, { exportId, layerId, name: exportId, writable: false });
    try {
      await qemuImgConvert({ src: nbdUnixUrl(ctx.pool.nbdSocketPath, exportId), srcFormat: 'raw', dst: part, dstFormat: format });
    } finally {
      await removeExport(ctx.pool.qmp, exportId);
    }
    const info = await qemuImgInfo(part, format);
    const sums = await hashFile(part);
    await rename(part, final);
    const done = await ctx.jobs.withFence(job, async (trx) => {
      const ok = await casImage(trx, imageId, ['saving'], {
        status: 'active', size: sums.size, virtual_size: info.virtualSizeBytes, checksum: sums.md5, os_hash_algo: 'sha512', os_hash_value: sums.sha512, location: final,
      });
      await restoreVolume(trx, vol.id, previous, imageId);
      return ok;
    });
    if (!done) await unlink(final).catch(() => undefined);
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  }
  if (frozen) await ctx.ops.collectGarbage();
}

/** The volume leaves `uploading` for the status it had; the frozen layer's pin goes. */
async function restoreVolume(trx: Executor, volumeId: string, previous: string, imageId: string): Promise<void> {
  await trx.updateTable('volumes').set({ status: previous, updated_at: nowIso() }).where('id', '=', volumeId).where('status', '=', 'uploading').execute();
  await trx.deleteFrom('layer_pins').where('owner_kind', '=', PIN_KIND).where('owner_id', '=', imageId).execute();
}

/** recordFailure's part: the image is killed (its data never became active), the volume goes back. */
export async function recordUploadFailure(trx: Executor, job: ClaimedJob): Promise<void> {
  const imageId = String(job.payload['imageId']);
  await casImage(trx, imageId, ['queued', 'saving'], { status: 'killed' });
  await restoreVolume(trx, job.resourceId, String(job.payload['previousStatus'] ?? 'available'), imageId);
}
