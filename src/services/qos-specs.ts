// QoS specs (Cinder's qos_specs_manage extension and volume/qos_specs.py): a
// named set of key/values for a consumer, associated with volume types. Every
// write runs in one transaction after all checks, so a refused request changes
// nothing (Cinder's delete_keys stops half-way at the first missing key; here
// it deletes all or nothing).
import { badRequest, conflict, notFound } from '../api/errors.js';
import type { Executor, Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { QosSpecsRow } from '../store/schema.js';
import { newId } from './ids.js';

export const QOS_CONSUMERS = ['front-end', 'back-end', 'both'] as const;
export type QosConsumer = (typeof QOS_CONSUMERS)[number];
/** Values are strings; Cinder also lets a key hold null. */
export type QosSpecMap = Record<string, string | null>;

export interface QosSpecs {
  readonly id: string;
  readonly name: string;
  readonly consumer: string;
  readonly specs: QosSpecMap;
  readonly createdAt: string;
  readonly updatedAt: string | null;
}

export interface QosAssociation {
  readonly association_type: 'volume_type';
  readonly name: string;
  readonly id: string;
}

function toQos(row: QosSpecsRow): QosSpecs {
  return { id: row.id, name: row.name, consumer: row.consumer, specs: JSON.parse(row.specs) as QosSpecMap, createdAt: row.created_at, updatedAt: row.updated_at };
}

const qosNotFound = (id: string) => notFound(`No such QoS spec ${id}.`);
const typeNotFound = (id: string) => notFound(`Volume type ${id} could not be found.`);

function checkConsumer(value: string | null): QosConsumer {
  if (!(QOS_CONSUMERS as readonly (string | null)[]).includes(value)) {
    throw badRequest(`Invalid qos specs: Valid consumer of QoS specs are: ['${QOS_CONSUMERS.join("', '")}']`);
  }
  return value as QosConsumer;
}

async function findRow(ex: Executor, id: string): Promise<QosSpecsRow> {
  const row = await ex.selectFrom('qos_specs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw qosNotFound(id);
  return row;
}

export async function getQosSpecs(ex: Executor, id: string): Promise<QosSpecs> {
  return toQos(await findRow(ex, id));
}

export async function listQosSpecs(ex: Executor): Promise<QosSpecs[]> {
  return (await ex.selectFrom('qos_specs').selectAll().execute()).map(toQos);
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '23505' || (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT'));
}

const qosExists = (name: string) => conflict(`QoS Specs ${name} already exists.`);

/** `specs` is the request's qos_specs minus name; a "consumer" key (default back-end) is taken out of it. */
export async function createQosSpecs(store: Store, name: string, specs: QosSpecMap): Promise<QosSpecs> {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw badRequest("Invalid input received: The 'name' can not be empty.");
  const { consumer: rawConsumer, ...rest } = specs;
  const consumer = checkConsumer(rawConsumer === undefined ? 'back-end' : rawConsumer);
  try {
    return await store.transaction(async (trx) => {
      const dup = await trx.selectFrom('qos_specs').select('id').where('name', '=', trimmed).executeTakeFirst();
      if (dup) throw qosExists(trimmed);
      const row: QosSpecsRow = { id: newId(), name: trimmed, consumer, specs: JSON.stringify(rest), created_at: nowIso(), updated_at: null };
      await trx.insertInto('qos_specs').values(row).execute();
      return toQos(row);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw qosExists(trimmed);
    throw err;
  }
}

/** PUT /qos-specs/{id}: merges keys; "consumer" changes the consumer. */
export async function setQosKeys(store: Store, id: string, specs: QosSpecMap): Promise<QosSpecs> {
  const { consumer: rawConsumer, ...rest } = specs;
  const consumer = rawConsumer === undefined ? undefined : checkConsumer(rawConsumer);
  return store.transaction(async (trx) => {
    const row = await findRow(trx, id);
    const merged = { ...(JSON.parse(row.specs) as QosSpecMap), ...rest };
    const set = { specs: JSON.stringify(merged), consumer: consumer ?? row.consumer, updated_at: nowIso() };
    await trx.updateTable('qos_specs').set(set).where('id', '=', id).execute();
    return toQos({ ...row, ...set });
  });
}

export async function deleteQosKeys(store: Store, id: string, keys: readonly string[]): Promise<void> {
  await store.transaction(async (trx) => {
    const row = await findRow(trx, id);
    const specs = JSON.parse(row.specs) as QosSpecMap;
    for (const key of keys) {
      if (!(key in specs)) throw notFound(`QoS spec ${id} has no spec with key ${key}.`);
      delete specs[key];
    }
    await trx.updateTable('qos_specs').set({ specs: JSON.stringify(specs), updated_at: nowIso() }).where('id', '=', id).execute();
  });
}

/** Refused while associated with a type, unless forced (then every association goes first). */
export async function deleteQosSpecs(store: Store, id: string, force: boolean): Promise<void> {
  await store.transaction(async (trx) => {
    await findRow(trx, id);
    const used = await trx.selectFrom('volume_types').select('id').where('qos_specs_id', '=', id).limit(1).executeTakeFirst();
    if (used && !force) throw badRequest('Qos specs still in use.');
    await trx.updateTable('volume_types').set({ qos_specs_id: null, updated_at: nowIso() }).where('qos_specs_id', '=', id).execute();
    await trx.deleteFrom('qos_specs').where('id', '=', id).execute();
  });
}

export async function listQosAssociations(ex: Executor, id: string): Promise<QosAssociation[]> {
  await findRow(ex, id);
  const rows = await ex.selectFrom('volume_types').select(['id', 'name']).where('qos_specs_id', '=', id).orderBy('name').orderBy('id').execute();
  return rows.map((r) => ({ association_type: 'volume_type', name: r.name, id: r.id }));
}

async function findType(ex: Executor, typeId: string): Promise<{ id: string; qos_specs_id: string | null }> {
  const row = await ex.selectFrom('volume_types').select(['id', 'qos_specs_id']).where('id', '=', typeId).executeTakeFirst();
  if (!row) throw typeNotFound(typeId);
  return row;
}

/** A type holds at most one QoS specs; associating it again with the same one is a no-op. */
export async function associateQos(store: Store, id: string, typeId: string): Promise<void> {
  await store.transaction(async (trx) => {
    await findRow(trx, id);
    const vtype = await findType(trx, typeId);
    if (vtype.qos_specs_id === id) return;
    if (vtype.qos_specs_id !== null) {
      throw badRequest(`Invalid volume type: Type ${typeId} is already associated with another qos specs: ${vtype.qos_specs_id}`);
    }
    await trx.updateTable('volume_types').set({ qos_specs_id: id, updated_at: nowIso() }).where('id', '=', typeId).execute();
  });
}

/** Disassociating a type that holds other (or no) specs changes nothing, as in Cinder. */
export async function disassociateQos(store: Store, id: string, typeId: string): Promise<void> {
  await store.transaction(async (trx) => {
    await findRow(trx, id);
    await findType(trx, typeId);
    await trx.updateTable('volume_types').set({ qos_specs_id: null, updated_at: nowIso() }).where('id', '=', typeId).where('qos_specs_id', '=', id).execute();
  });
}

export async function disassociateAllQos(store: Store, id: string): Promise<void> {
  await store.transaction(async (trx) => {
    await findRow(trx, id);
    await trx.updateTable('volume_types').set({ qos_specs_id: null, updated_at: nowIso() }).where('qos_specs_id', '=', id).execute();
  });
}
