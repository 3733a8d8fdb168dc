import { notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { VolumeTypeRow } from '../store/schema.js';
import { newId } from './ids.js';
import type { Caller } from './deps.js';

export const DEFAULT_TYPE_NAME = '__DEFAULT__';

/** The default type exists in every deployment, as in Cinder since Train. */
export async function ensureDefaultVolumeType(ex: Executor): Promise<void> {
  const found = await ex.selectFrom('volume_types').select('id').where('name', '=', DEFAULT_TYPE_NAME).executeTakeFirst();
  if (found) return;
  await ex
    .insertInto('volume_types')
    .values({ id: newId(), name: DEFAULT_TYPE_NAME, description: 'Default Volume Type', is_public: 1, extra_specs: '{}', created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

/** A type by name or id that the caller may use (public, or shared with its project). */
export async function resolveVolumeType(ex: Executor, caller: Caller, nameOrId: string | null | undefined): Promise<VolumeTypeRow> {
  const key = nameOrId ?? DEFAULT_TYPE_NAME;
  const row = await ex
    .selectFrom('volume_types')
    .selectAll()
    .where((eb) => eb.or([eb('id', '=', key), eb('name', '=', key)]))
    .executeTakeFirst();
  if (row && (row.is_public === 1 || caller.isAdmin || (await hasTypeAccess(ex, row.id, caller.projectId)))) return row;
  throw notFound(`Volume type with name ${key} could not be found.`);
}

export async function hasTypeAccess(ex: Executor, typeId: string, projectId: string): Promise<boolean> {
  const row = await ex
    .selectFrom('volume_type_access')
    .select('project_id')
    .where('volume_type_id', '=', typeId)
    .where('project_id', '=', projectId)
    .executeTakeFirst();
  return row !== undefined;
}
