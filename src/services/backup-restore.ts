// Restoring a backup (Cinder's backup API restore): into a volume the caller
// names, which must be available and large enough, or into a new volume made
// here exactly as POST /volumes would make it. The backup role writes the data.
import { invalidVolume } from '../api/errors.js';
import type { VolumeRow } from '../store/schema.js';
import { BACKUP_TARGET, getBackup, invalidBackup } from './backups.js';
import type { Caller, ServiceDeps } from './deps.js';
import { casStatus } from './status.js';
import { getVolume, insertVolume } from './volumes.js';

export interface RestoreInput {
  /** Restore into this volume; absent: into a new volume of the backup's size. */
  volumeId: string | null;
  /** The new volume's name (ignored with volumeId, as in Cinder). */
  name: string | null;
}

export interface RestoreResult {
  readonly backupId: string;
  readonly volumeId: string;
  readonly volumeName: string | null;
}

/** Cinder's description of a volume it makes for a restore. */
export const RESTORE_VOLUME_DESCRIPTION = 'auto-created_from_restore_from_backup';

/**
 * Moves the backup to 'restoring' and enqueues one restore_backup job with
 * payload {volumeId, volumeIsNew}. An existing target moves to
 * 'restoring-backup' here; a new one is 'creating' with its own create job,
 * and the role waits for it to be available before it takes it.
 */
export async function restoreBackup(deps: ServiceDeps, caller: Caller, id: string, input: RestoreInput): Promise<RestoreResult> {
  const result = await deps.store.transaction(async (trx) => {
    const backup = await getBackup(trx, caller, id);
    if (backup.status !== 'available') throw invalidBackup('Backup status must be available');
    let volume: VolumeRow;
    const volumeIsNew = input.volumeId === null;
    if (input.volumeId === null) {
      volume = await insertVolume(trx, deps, caller, {
        size: backup.size,
        name: input.name ?? `restore_backup_${backup.id}`,
        description: RESTORE_VOLUME_DESCRIPTION,
      });
      // The restored volume boots like its source did (image metadata and bootable flag).
      const source = await trx.selectFrom('volumes').select(['image_metadata', 'bootable']).where('id', '=', backup.volume_id).executeTakeFirst();
      if (source?.image_metadata) {
        await trx.updateTable('volumes').set({ image_metadata: source.image_metadata, bootable: source.bootable }).where('id', '=', volume.id).execute();
      }
    } else {
      volume = await getVolume(trx, caller, input.volumeId);
      if (volume.status !== 'available') throw invalidVolume('Volume to be restored to must be available');
      if (backup.size > volume.size) throw invalidVolume(`volume size ${volume.size} is too small to restore backup of size ${backup.size}.`);
      if (!(await casStatus(trx, 'volumes', volume.id, ['available'], { status: 'restoring-backup' }))) throw invalidVolume(`Volume ${volume.id} changed status concurrently; try again.`);
    }
    if (!(await casStatus(trx, 'backups', backup.id, ['available'], { status: 'restoring', restore_volume_id: volume.id }))) {
      throw invalidBackup(`Backup ${backup.id} changed status concurrently; try again.`);
    }
    await deps.jobs.enqueue(trx, { kind: 'restore_backup', target: BACKUP_TARGET, resourceId: backup.id, payload: { volumeId: volume.id, volumeIsNew } });
    return { backupId: backup.id, volumeId: volume.id, volumeName: volume.name };
  });
  deps.kick?.();
  return result;
}
