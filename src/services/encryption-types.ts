// Volume type encryption specs (Cinder's volume_type_encryption extension).
// Bulwark stores and shows them but does not encrypt volumes: creating a
// volume of an encrypted type is refused (see createVolume). As in Cinder, the
// specs of a type that volumes use cannot change.
import { badRequest, invalidInput, notFound } from '../api/errors.js';
import type { Executor, Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { VolumeTypeEncryptionRow } from '../store/schema.js';
import { newId } from './ids.js';

export interface EncryptionSpecs {
  provider?: string;
  control_location?: 'front-end' | 'back-end';
  cipher?: string | null;
  key_size?: number | null;
}

const typeNotFound = (id: string) => notFound(`Volume type ${id} could not be found.`);
const encryptionNotFound = (id: string) => notFound(`Volume type encryption for type ${id} does not exist.`);

async function checkType(ex: Executor, typeId: string): Promise<void> {
  const row = await ex.selectFrom('volume_types').select('id').where('id', '=', typeId).executeTakeFirst();
  if (!row) throw typeNotFound(typeId);
}

async function typeInUse(ex: Executor, typeId: string): Promise<boolean> {
  const vol = await ex.selectFrom('volumes').select('id').where('volume_type_id', '=', typeId).limit(1).executeTakeFirst();
  return vol !== undefined;
}

export async function findEncryption(ex: Executor, typeId: string): Promise<VolumeTypeEncryptionRow | undefined> {
  return ex.selectFrom('volume_type_encryption').selectAll().where('volume_type_id', '=', typeId).executeTakeFirst();
}

/** True when the type has encryption specs (volumes of it cannot be made here). */
export async function isEncryptedType(ex: Executor, typeId: string): Promise<boolean> {
  return (await findEncryption(ex, typeId)) !== undefined;
}

/** The type's specs, or null when it has none (the type itself must exist). */
export async function getEncryption(ex: Executor, typeId: string): Promise<VolumeTypeEncryptionRow | null> {
  await checkType(ex, typeId);
  return (await findEncryption(ex, typeId)) ?? null;
}

export async function createEncryption(store: Store, typeId: string, specs: EncryptionSpecs & { provider: string; control_location: 'front-end' | 'back-end' }): Promise<VolumeTypeEncryptionRow> {
  return store.transaction(async (trx) => {
    // Cinder's order: in use, then unknown type, then already encrypted.
    if (await typeInUse(trx, typeId)) throw badRequest('Cannot create encryption specs. Volume type in use.');
    await checkType(trx, typeId);
    if (await findEncryption(trx, typeId)) throw invalidInput(`Volume type encryption for type ${typeId} already exists.`);
    const row: VolumeTypeEncryptionRow = {
      volume_type_id: typeId,
      encryption_id: newId(),
      provider: specs.provider,
      control_location: specs.control_location,
      cipher: specs.cipher ?? null,
      key_size: specs.key_size ?? null,
      created_at: nowIso(),
      updated_at: null,
    };
    await trx.insertInto('volume_type_encryption').values(row).execute();
    return row;
  });
}

export async function updateEncryption(store: Store, typeId: string, specs: EncryptionSpecs): Promise<VolumeTypeEncryptionRow> {
  return store.transaction(async (trx) => {
    await checkType(trx, typeId);
    if (await typeInUse(trx, typeId)) throw badRequest('Cannot update encryption specs. Volume type in use.');
    const row = await findEncryption(trx, typeId);
    if (!row) throw encryptionNotFound(typeId);
    const set: Partial<VolumeTypeEncryptionRow> = { updated_at: nowIso() };
    if (specs.provider !== undefined) set.provider = specs.provider;
    if (specs.control_location !== undefined) set.control_location = specs.control_location;
    if (specs.cipher !== undefined) set.cipher = specs.cipher;
    if (specs.key_size !== undefined) set.key_size = specs.key_size;
    await trx.updateTable('volume_type_encryption').set(set).where('volume_type_id', '=', typeId).execute();
    return { ...row, ...set };
  });
}

export async function deleteEncryption(store: Store, typeId: string): Promise<void> {
  await store.transaction(async (trx) => {
    if (await typeInUse(trx, typeId)) throw badRequest('Cannot delete encryption specs. Volume type in use.');
    const res = await trx.deleteFrom('volume_type_encryption').where('volume_type_id', '=', typeId).executeTakeFirst();
    if (res.numDeletedRows === 0n) throw encryptionNotFound(typeId);
  });
}
