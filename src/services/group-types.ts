// Group types (Cinder's volume/group_types.py and the group type DB calls):
// admin-managed templates that groups are created from. Private types are
// invisible to non-admins, as Cinder's project-scoped query makes them.
import { badRequest, conflict, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { GroupTypeRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';

export const DEFAULT_GROUP_TYPE_NAME = 'default_group_type';

export type GroupSpecs = Record<string, string | null>;

/** Exists in every deployment so GET /group_types/default always answers. */
export async function ensureDefaultGroupType(ex: Executor): Promise<void> {
  const found = await ex.selectFrom('group_types').select('id').where('name', '=', DEFAULT_GROUP_TYPE_NAME).executeTakeFirst();
  if (found) return;
  await ex
    .insertInto('group_types')
    .values({ id: newId(), name: DEFAULT_GROUP_TYPE_NAME, description: 'Default group type', is_public: 1, group_specs: '{}', created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

export async function getDefaultGroupType(ex: Executor): Promise<GroupTypeRow> {
  const row = await ex.selectFrom('group_types').selectAll().where('name', '=', DEFAULT_GROUP_TYPE_NAME).executeTakeFirst();
  if (!row) throw notFound('Default group type can not be found.');
  return row;
}

function visible(caller: Caller, row: GroupTypeRow | undefined): row is GroupTypeRow {
  return row !== undefined && (caller.isAdmin || row.is_public === 1);
}

export async function getGroupType(ex: Executor, caller: Caller, id: string): Promise<GroupTypeRow> {
  const row = await ex.selectFrom('group_types').selectAll().where('id', '=', id).executeTakeFirst();
  if (!visible(caller, row)) throw notFound(`Group type ${id} could not be found.`);
  return row;
}

/** By id first, then by name (a name may look like a UUID), as Cinder's group create does. */
export async function resolveGroupType(ex: Executor, caller: Caller, nameOrId: string): Promise<GroupTypeRow> {
  const byId = await ex.selectFrom('group_types').selectAll().where('id', '=', nameOrId).executeTakeFirst();
  if (visible(caller, byId)) return byId;
  const byName = await ex.selectFrom('group_types').selectAll().where('name', '=', nameOrId).executeTakeFirst();
  if (visible(caller, byName)) return byName;
  throw notFound(`Group type with name ${nameOrId} could not be found.`);
}

/** isPublic: true = public only, false = private only, null = both (admins only get a choice). */
export async function listGroupTypes(ex: Executor, caller: Caller, isPublic: boolean | null): Promise<GroupTypeRow[]> {
  let sel = ex.selectFrom('group_types').selectAll();
  const filter = caller.isAdmin ? isPublic : true;
  if (filter !== null) sel = sel.where('is_public', '=', filter ? 1 : 0);
  return sel.execute();
}

async function assertNameFree(ex: Executor, name: string, exceptId?: string): Promise<void> {
  const clash = await ex.selectFrom('group_types').select('id').where('name', '=', name).executeTakeFirst();
  if (clash && clash.id !== exceptId) throw conflict(`Group Type ${name} already exists.`);
}

export async function createGroupType(deps: ServiceDeps, input: { name: string; description: string | null; isPublic: boolean; specs: GroupSpecs }): Promise<GroupTypeRow> {
  // Cinder's 'name' format: refused when blank, otherwise stored as given.
  const name = input.name;
  if (!name.trim()) throw badRequest("Invalid input received: The 'name' can not be empty.");
  return deps.store.transaction(async (trx) => {
    await assertNameFree(trx, name);
    const row: GroupTypeRow = {
      id: newId(),
      name,
      description: input.description,
      is_public: input.isPublic ? 1 : 0,
      group_specs: JSON.stringify(input.specs),
      created_at: nowIso(),
      updated_at: null,
    };
    await trx.insertInto('group_types').values(row).execute();
    return row;
  });
}

export async function updateGroupType(deps: ServiceDeps, caller: Caller, id: string, patch: { name?: string | null; description?: string | null; isPublic?: boolean | null }): Promise<GroupTypeRow> {
  const name = patch.name ?? undefined;
  if (name !== undefined && name.trim().length === 0) throw badRequest('Group type name can not be empty.');
  // Cinder treats null like "not given": at least one real change is required.
  if (name === undefined && (patch.description ?? undefined) === undefined && (patch.isPublic ?? undefined) === undefined) {
    throw badRequest('Specify group type name, description or a combination thereof.');
  }
  return deps.store.transaction(async (trx) => {
    await getGroupType(trx, caller, id);
    const set: Record<string, unknown> = { updated_at: nowIso() };
    if (name !== undefined) {
      await assertNameFree(trx, name.trim(), id);
      set['name'] = name.trim();
    }
    if (patch.description !== undefined && patch.description !== null) set['description'] = patch.description;
    if (patch.isPublic !== undefined && patch.isPublic !== null) set['is_public'] = patch.isPublic ? 1 : 0;
    await trx.updateTable('group_types').set(set).where('id', '=', id).execute();
    return getGroupType(trx, caller, id);
  });
}

export async function deleteGroupType(deps: ServiceDeps, caller: Caller, id: string): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const row = await getGroupType(trx, caller, id);
    // Recreated at every start anyway; refusing keeps /group_types/default stable.
    if (row.name === DEFAULT_GROUP_TYPE_NAME) throw badRequest('Default group type can not be deleted.');
    const usedByGroup = await trx.selectFrom('groups').select('id').where('group_type_id', '=', id).executeTakeFirst();
    const usedBySnap = await trx.selectFrom('group_snapshots').select('id').where('group_type_id', '=', id).executeTakeFirst();
    if (usedByGroup || usedBySnap) throw badRequest('Target group type is still in use.');
    await trx.deleteFrom('group_types').where('id', '=', id).execute();
  });
}

export function groupSpecsOf(row: GroupTypeRow): GroupSpecs {
  return JSON.parse(row.group_specs) as GroupSpecs;
}

/** Creates or updates keys (merge), or removes one key; returns the full spec set. */
export async function setGroupSpecs(deps: ServiceDeps, caller: Caller, id: string, specs: GroupSpecs, mode: 'merge' | { delete: string }): Promise<GroupSpecs> {
  return deps.store.transaction(async (trx) => {
    const row = await getGroupType(trx, caller, id);
    const current = groupSpecsOf(row);
    if (mode === 'merge') Object.assign(current, specs);
    else {
      if (!(mode.delete in current)) throw notFound(`Group Type ${id} has no specs with key ${mode.delete}.`);
      delete current[mode.delete];
    }
    await trx.updateTable('group_types').set({ group_specs: JSON.stringify(current), updated_at: nowIso() }).where('id', '=', id).execute();
    return current;
  });
}
