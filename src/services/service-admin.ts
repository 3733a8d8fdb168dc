// Admin operations on the services table (Cinder's v3/services.py and the
// freeze/thaw half of volume/api.py). Host matching follows Cinder's
// _filter_host: "h" matches h, h@* and h#*; "h@b" matches h@b and h@b#*;
// "h@b#p" only itself.
import { badRequest, invalidInput, notFound } from '../api/errors.js';
import type { Executor, Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { ServiceRow } from '../store/schema.js';
import { COMPUTE_BINARY, VOLUME_BINARY } from './registry.js';

export function hostMatches(value: string, host: string): boolean {
  if (host === value) return true;
  if (value.includes('#')) return false;
  if (host.startsWith(`${value}#`)) return true;
  return !value.includes('@') && host.startsWith(`${value}@`);
}

export async function listServiceRows(ex: Executor, filters: { host?: string; binary?: string }): Promise<ServiceRow[]> {
  let q = ex.selectFrom('services').selectAll().where('binary', '!=', COMPUTE_BINARY).orderBy('id');
  if (filters.binary !== undefined) q = q.where('binary', '=', filters.binary);
  const rows = await q.execute();
  return filters.host === undefined ? rows : rows.filter((r) => hostMatches(filters.host!, r.host));
}

export interface ServiceToggle {
  readonly host: string;
  readonly binary: string;
  readonly disabled: boolean;
  /** Only for disable-log-reason; enable always clears the reason. */
  readonly reason?: string | null;
}

/** enable / disable / disable-log-reason: the first service matching (host, binary), as Service.get_by_args. */
export async function setServiceDisabled(store: Store, t: ServiceToggle): Promise<ServiceRow> {
  return store.transaction(async (trx) => {
    const rows = await listServiceRows(trx, { host: t.host, binary: t.binary });
    const exact = rows.find((r) => r.host === t.host);
    const row = exact ?? rows[0];
    if (!row) throw notFound(`Service ${t.binary} could not be found on host ${t.host}.`);
    const set: Partial<ServiceRow> = { disabled: t.disabled ? 1 : 0, updated_at: nowIso() };
    if (!t.disabled) set.disabled_reason = null;
    else if (t.reason) set.disabled_reason = t.reason;
    await trx.updateTable('services').set(set).where('id', '=', row.id).execute();
    return { ...row, ...set };
  });
}

/**
 * freeze / thaw a volume backend: flips `frozen` on its cinder-volume
 * services. Unknown hosts are 400 (Cinder turns ServiceNotFound into
 * InvalidInput here), as is a host whose services are all already in the
 * requested state.
 */
export async function setBackendFrozen(store: Store, target: { host: string | null; cluster: string | null }, frozen: boolean): Promise<void> {
  await store.transaction(async (trx) => {
    // Bulwark has no clusters, so a cluster name never matches.
    const rows = target.host === null ? [] : await listServiceRows(trx, { host: target.host, binary: VOLUME_BINARY });
    if (rows.length === 0) {
      throw invalidInput(target.host !== null ? `No service found with host=${target.host}` : `No service found with cluster=${target.cluster ?? ''}`);
    }
    if (rows.some((r) => r.host !== rows[0]!.host)) throw badRequest('Invalid parameter: Services from different clusters found.');
    const res = await trx
      .updateTable('services')
      .set({ frozen: frozen ? 1 : 0, updated_at: nowIso() })
      .where('id', 'in', rows.map((r) => r.id))
      .where('frozen', '=', frozen ? 0 : 1)
      .executeTakeFirst();
    if (res.numUpdatedRows === 0n) {
      throw invalidInput(`No service could be changed: frozen in ['${rows.map((r) => r.host).join("', '")}'] must be ${frozen ? 'False' : 'True'} to failover.`);
    }
  });
}
