// Volume type management (Cinder's types_manage, types_extra_specs and
// volume_type_access extensions, and volume/volume_types.py). Every write runs
// in one transaction after all checks, so a refused request changes nothing.
import { badRequest, conflict, notFound } from '../api/errors.js';
import type { Executor, Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { VolumeTypeRow } from '../store/schema.js';
import type { Caller } from './deps.js';
import { newId } from './ids.js';
import { TYPE_QUOTA_PARTS, typeQuotaKey } from './quotas.js';
import { DEFAULT_TYPE_NAME, hasTypeAccess } from './volume-types.js';

export type ExtraSpecs = Record<string, string>;

/** Extra specs a non-admin may see (Cinder's USER_VISIBLE_EXTRA_SPECS). */
export const USER_VISIBLE_EXTRA_SPECS = ['RESKEY:availability_zones', 'multiattach', 'replication_enabled'];

export function extraSpecsOf(row: VolumeTypeRow): ExtraSpecs {
  return JSON.parse(row.extra_specs) as ExtraSpecs;
}

export function visibleExtraSpecs(specs: ExtraSpecs, isAdmin: boolean): ExtraSpecs {
  if (isAdmin) return specs;
  return Object.fromEntries(Object.entries(specs).filter(([k]) => USER_VISIBLE_EXTRA_SPECS.includes(k)));
}

const typeNotFound = (id: string) => notFound(`Volume type ${id} could not be found.`);

/** A type by id that the caller may see: admins see all, others public or shared ones. */
export async function getVisibleType(ex: Executor, caller: Caller, id: string): Promise<VolumeTypeRow> {
  const row = await ex.selectFrom('volume_types').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw typeNotFound(id);
  if (row.is_public === 1 || caller.isAdmin || (await hasTypeAccess(ex, row.id, caller.projectId))) return row;
  throw typeNotFound(id);
}

/** GET /types/default: without per-project defaults (3.62) this is always __DEFAULT__. */
export async function getDefaultType(ex: Executor): Promise<VolumeTypeRow> {
  const row = await ex.selectFrom('volume_types').selectAll().where('name', '=', DEFAULT_TYPE_NAME).executeTakeFirst();
  if (!row) throw notFound('Default volume type can not be found.');
  return row;
}

/**
 * Cinder's listing visibility: is_public true means public types plus those
 * shared with the caller's project; false only private ones; null all.
 * Non-admins always get `true`.
 */
export async function listTypes(ex: Executor, caller: Caller, isPublic: boolean | null): Promise<VolumeTypeRow[]> {
  const rows = await ex.selectFrom('volume_types').selectAll().execute();
  if (isPublic === null) return rows;
  if (!isPublic) return rows.filter((r) => r.is_public === 0);
  const shared = new Set(
    (await ex.selectFrom('volume_type_access').select('volume_type_id').where('project_id', '=', caller.projectId).execute()).map((r) => r.volume_type_id),
  );
  return rows.filter((r) => r.is_public === 1 || shared.has(r.id));
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '23505' || (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT'));
}

const typeExists = (name: string) => conflict(`Volume Type ${name} already exists.`);

export interface NewTypeInput {
  readonly name: string;
  readonly description: string | null;
  readonly isPublic: boolean;
  readonly extraSpecs: ExtraSpecs;
}

export async function createType(store: Store, input: NewTypeInput): Promise<VolumeTypeRow> {
  if (input.name.trim().length === 0) throw badRequest('Invalid input received: name can not be empty or only spaces.');
  try {
    return await store.transaction(async (trx) => {
      const dup = await trx.selectFrom('volume_types').select('id').where('name', '=', input.name).executeTakeFirst();
      if (dup) throw typeExists(input.name);
      const row: VolumeTypeRow = {
        id: newId(),
        name: input.name,
        description: input.description,
        is_public: input.isPublic ? 1 : 0,
        extra_specs: JSON.stringify(input.extraSpecs),
        created_at: nowIso(),
        updated_at: null,
        qos_specs_id: null,
      };
      await trx.insertInto('volume_types').values(row).execute();
      return row;
    });
  } catch (err) {
    // Two concurrent creates of one name: the unique index refuses the loser.
    if (isUniqueViolation(err)) throw typeExists(input.name);
    throw err;
  }
}

export interface TypePatch {
  readonly name?: string | null;
  readonly description?: string | null;
  readonly isPublic?: boolean | null;
}

export async function updateType(store: Store, id: string, patch: TypePatch): Promise<VolumeTypeRow> {
  const name = patch.name ?? null;
  const description = patch.description ?? null;
  const isPublic = patch.isPublic ?? null;
  if (name !== null && name.trim().length === 0) throw badRequest('Volume type name can not be empty.');
  if (name === null && description === null && isPublic === null) {
    throw badRequest('Specify volume type name, description, is_public or a combination thereof.');
  }
  try {
    return await store.transaction(async (trx) => {
      const row = await trx.selectFrom('volume_types').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw typeNotFound(id);
      const set: Partial<VolumeTypeRow> = { updated_at: nowIso() };
      if (name !== null && name !== row.name) {
        // Volumes created without a type resolve __DEFAULT__ by name; renaming
        // it would leave them nothing to resolve.
        if (row.name === DEFAULT_TYPE_NAME) throw badRequest(`The default volume type ${DEFAULT_TYPE_NAME} cannot be renamed.`);
        const dup = await trx.selectFrom('volume_types').select('id').where('name', '=', name).where('id', '!=', id).executeTakeFirst();
        if (dup) throw typeExists(name);
        set.name = name;
        await renameTypeQuotas(trx, row.name, name);
      }
      if (description !== null) set.description = description;
      if (isPublic !== null) set.is_public = isPublic ? 1 : 0;
      await trx.updateTable('volume_types').set(set).where('id', '=', id).execute();
      return { ...row, ...set };
    });
  } catch (err) {
    if (isUniqueViolation(err) && name !== null) throw typeExists(name);
    throw err;
  }
}

/** Per-type quota rows follow the type's name, as Cinder's update_quota_resource. */
async function renameTypeQuotas(trx: Executor, oldName: string, newName: string): Promise<void> {
  for (const part of TYPE_QUOTA_PARTS) {
    const from = typeQuotaKey(part, oldName);
    const to = typeQuotaKey(part, newName);
    await trx.updateTable('quotas').set({ resource: to }).where('resource', '=', from).execute();
    await trx.updateTable('quota_classes').set({ resource: to }).where('resource', '=', from).execute();
  }
}

async function typeInUse(ex: Executor, id: string): Promise<boolean> {
  const vol = await ex.selectFrom('volumes').select('id').where('volume_type_id', '=', id).limit(1).executeTakeFirst();
  if (vol) return true;
  // groups.volume_type_ids is a JSON array of ids; a substring match on the
  // quoted id is exact because ids are UUIDs.
  const grp = await ex.selectFrom('groups').select('id').where('volume_type_ids', 'like', `%"${id}"%`).limit(1).executeTakeFirst();
  return grp !== undefined;
}

export async function deleteType(store: Store, id: string): Promise<void> {
  await store.transaction(async (trx) => {
    const row = await trx.selectFrom('volume_types').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw typeNotFound(id);
    if (row.name === DEFAULT_TYPE_NAME) throw badRequest(`The Default Volume Type with id ${id} cannot be deleted.`);
    if (await typeInUse(trx, id)) throw badRequest('Target volume type is still in use.');
    await trx.deleteFrom('volume_type_access').where('volume_type_id', '=', id).execute();
    // Cinder drops the type's encryption specs with it.
    await trx.deleteFrom('volume_type_encryption').where('volume_type_id', '=', id).execute();
    // A later type of the same name must not inherit this one's limits.
    const resources = TYPE_QUOTA_PARTS.map((p) => typeQuotaKey(p, row.name));
    await trx.deleteFrom('quotas').where('resource', 'in', resources).execute();
    await trx.deleteFrom('quota_classes').where('resource', 'in', resources).execute();
    await trx.deleteFrom('volume_types').where('id', '=', id).execute();
  });
}

const CACHEABLE_TRUE = '<is> True';

/**
 * Extra specs change what a backend promises for existing volumes, so Cinder
 * refuses any change while a volume uses the type.
 */
async function checkSpecsWritable(ex: Executor, id: string): Promise<VolumeTypeRow> {
  const row = await ex.selectFrom('volume_types').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw typeNotFound(id);
  const vol = await ex.selectFrom('volumes').select('id').where('volume_type_id', '=', id).limit(1).executeTakeFirst();
  if (vol) throw badRequest('Volume Type is currently in use.');
  return row;
}

export async function mergeExtraSpecs(store: Store, id: string, specs: ExtraSpecs): Promise<ExtraSpecs> {
  return store.transaction(async (trx) => {
    const row = await checkSpecsWritable(trx, id);
    const current = extraSpecsOf(row);
    const merged = { ...current, ...specs };
    if (merged['multiattach'] === CACHEABLE_TRUE && merged['cacheable'] === CACHEABLE_TRUE) {
      throw badRequest('cacheable cannot be set with multiattach.');
    }
    await trx.updateTable('volume_types').set({ extra_specs: JSON.stringify(merged), updated_at: nowIso() }).where('id', '=', id).execute();
    return merged;
  });
}

export async function deleteExtraSpec(store: Store, id: string, key: string): Promise<void> {
  await store.transaction(async (trx) => {
    const row = await checkSpecsWritable(trx, id);
    const specs = extraSpecsOf(row);
    if (!(key in specs)) throw notFound(`Volume Type ${id} has no extra specs with key ${key}.`);
    delete specs[key];
    await trx.updateTable('volume_types').set({ extra_specs: JSON.stringify(specs), updated_at: nowIso() }).where('id', '=', id).execute();
  });
}

export async function listTypeAccess(ex: Executor, id: string): Promise<{ volume_type_id: string; project_id: string }[]> {
  const row = await ex.selectFrom('volume_types').select(['id', 'is_public']).where('id', '=', id).executeTakeFirst();
  if (!row) throw typeNotFound(id);
  if (row.is_public === 1) throw notFound('Access list not available for public volume types.');
  const rows = await ex.selectFrom('volume_type_access').selectAll().where('volume_type_id', '=', id).orderBy('project_id').execute();
  return rows.map((r) => ({ volume_type_id: r.volume_type_id, project_id: r.project_id }));
}

export async function changeTypeAccess(store: Store, id: string, projectId: string, op: 'add' | 'remove'): Promise<void> {
  try {
    await store.transaction(async (trx) => {
      const row = await trx.selectFrom('volume_types').select(['id', 'is_public']).where('id', '=', id).executeTakeFirst();
      if (!row) throw typeNotFound(id);
      if (row.is_public === 1) throw badRequest('Invalid volume type: Type access modification is not applicable to public volume type.');
      const present = await hasTypeAccess(trx, id, projectId);
      if (op === 'add') {
        if (present) throw conflict(`Volume type access for ${id} / ${projectId} combination already exists.`);
        await trx.insertInto('volume_type_access').values({ volume_type_id: id, project_id: projectId }).execute();
      } else {
        if (!present) throw notFound(`Volume type access not found for ${id} / ${projectId} combination.`);
        await trx.deleteFrom('volume_type_access').where('volume_type_id', '=', id).where('project_id', '=', projectId).execute();
      }
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`Volume type access for ${id} / ${projectId} combination already exists.`);
    throw err;
  }
}
