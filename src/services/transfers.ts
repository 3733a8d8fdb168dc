// Volume transfers on the API side (Cinder's transfer/api.py): a volume's owner
// offers it under a one-time auth key; whoever presents id and key takes it
// into their project. Pure bookkeeping: the data stays where it is, only the
// rows change owner, so no job is involved.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { badRequest, invalidSnapshot, invalidVolume, notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { TransferRow } from '../store/schema.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';
import { enforceQuota } from './quotas.js';
import { casStatus } from './status.js';
import { getVolume } from './volumes.js';

/** Cinder's volume_transfer_key_length: 16 hex characters, easy to type. */
const AUTH_KEY_BYTES = 8;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

export interface CreateTransferInput {
  volumeId: string;
  name: string | null;
  noSnapshots: boolean;
}

export interface NewTransfer {
  readonly row: TransferRow;
  /** Shown once, in the create response; only its salted hash is kept. */
  readonly authKey: string;
}

function hashKey(authKey: string, salt: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(authKey, salt, HASH_BYTES, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

async function keyMatches(row: TransferRow, authKey: string): Promise<boolean> {
  const want = Buffer.from(row.crypt_hash, 'hex');
  const have = await hashKey(authKey, row.salt);
  return want.length === have.length && timingSafeEqual(want, have);
}

const transferNotFound = (id: string) => notFound(`Transfer ${id} could not be found.`);

/** A transfer as its source project (or an admin) sees it; 404 for anyone else. */
export async function getTransfer(ex: Executor, caller: Caller, id: string): Promise<TransferRow> {
  const row = await ex.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw transferNotFound(id);
  return row;
}

export async function createTransfer(deps: ServiceDeps, caller: Caller, input: CreateTransferInput): Promise<NewTransfer> {
  const authKey = randomBytes(AUTH_KEY_BYTES).toString('hex');
  const salt = randomBytes(SALT_BYTES).toString('hex');
  const cryptHash = (await hashKey(authKey, salt)).toString('hex');
  const row = await deps.store.transaction(async (trx) => {
    const vol = await getVolume(trx, caller, input.volumeId);
    if (vol.status !== 'available') throw invalidVolume('status must be available');
    // Cinder refuses consistency-group members at accept; a Bulwark group is
    // one project's, so a member may not leave it for another project at all.
    if (vol.group_id) throw invalidVolume(`Volume ${vol.id} must not be part of a group.`);
    if (!input.noSnapshots) {
      const snaps = await trx.selectFrom('snapshots').select(['id', 'status']).where('volume_id', '=', vol.id).execute();
      const busy = snaps.find((s) => s.status !== 'available');
      if (busy) throw invalidSnapshot(`snapshot: ${busy.id} status must be available`);
    }
    const transfer: TransferRow = {
      id: newId(),
      volume_id: vol.id,
      project_id: vol.project_id,
      name: input.name,
      salt,
      crypt_hash: cryptHash,
      no_snapshots: input.noSnapshots ? 1 : 0,
      created_at: nowIso(),
      expires_at: null,
    };
    if (!(await casStatus(trx, 'volumes', vol.id, ['available'], { status: 'awaiting-transfer' }))) {
      throw invalidVolume(`Transfer ${transfer.id}: Volume id ${vol.id} expected in available state.`);
    }
    await trx.insertInto('transfers').values(transfer).execute();
    return transfer;
  });
  return { row, authKey };
}

/** Withdraws an offer: the row goes and the volume is 'available' again. */
export async function deleteTransfer(deps: ServiceDeps, caller: Caller, id: string): Promise<void> {
  await deps.store.transaction(async (trx) => {
    const row = await getTransfer(trx, caller, id);
    // As Cinder: a volume no longer awaiting transfer keeps its status; the offer goes anyway.
    await casStatus(trx, 'volumes', row.volume_id, ['awaiting-transfer'], { status: 'available' });
    await trx.deleteFrom('transfers').where('id', '=', id).execute();
  });
}

/**
 * Takes the volume (and, unless the offer said no_snapshots, its snapshots)
 * into the caller's project: key, quota of the accepting project, ownership
 * and status change, and the end of the offer, all in one transaction.
 */
export async function acceptTransfer(deps: ServiceDeps, caller: Caller, id: string, authKey: string): Promise<TransferRow> {
  // Any project may accept: the offer is found without project scoping, and
  // the key (hashed outside the write transaction) is what authorizes.
  const offered = await deps.store.db.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirst();
  if (!offered) throw transferNotFound(id);
  if (!(await keyMatches(offered, authKey))) throw badRequest(`Invalid auth key: Attempt to transfer ${id} with invalid auth key.`);
  return deps.store.transaction(async (trx) => {
    const row = await trx.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirst();
    // Accepted or withdrawn meanwhile.
    if (!row || row.crypt_hash !== offered.crypt_hash) throw transferNotFound(id);
    const vol = await trx.selectFrom('volumes').selectAll().where('id', '=', row.volume_id).executeTakeFirst();
    if (!vol) throw notFound(`Volume ${row.volume_id} could not be found.`);
    if (vol.status === 'maintenance') throw invalidVolume('The volume cannot accept transfer in maintenance mode.');
    const snaps = row.no_snapshots ? [] : await trx.selectFrom('snapshots').select(['id', 'status', 'size']).where('volume_id', '=', vol.id).execute();
    if (vol.project_id !== caller.projectId) {
      const snapGb = snaps.reduce((n, s) => n + s.size, 0);
      await enforceQuota(trx, deps.config, caller.projectId, { volumes: 1, gigabytes: vol.size + snapGb, snapshots: snaps.length }, vol.size, vol.volume_type_id);
    }
    const owner = { project_id: caller.projectId, user_id: caller.userId };
    if (!(await casStatus(trx, 'volumes', vol.id, ['awaiting-transfer'], { status: 'available', ...owner }))) {
      throw invalidVolume(`Transfer ${id}: Volume id ${vol.id} expected in awaiting-transfer state.`);
    }
    for (const s of snaps) {
      if (!(await casStatus(trx, 'snapshots', s.id, ['available'], owner))) {
        throw invalidSnapshot(`Transfer ${id}: Snapshot ${s.id} is not in the expected available state.`);
      }
    }
    await trx.deleteFrom('transfers').where('id', '=', id).execute();
    return row;
  });
}
