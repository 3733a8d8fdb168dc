// Quotas are checked by counting live rows inside the same transaction that
// creates the resource, so usage can never drift from what exists.
import { overQuota } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import type { BulwarkConfig } from '../config/schema.js';

export const QUOTA_RESOURCES = ['volumes', 'snapshots', 'gigabytes', 'backups', 'backup_gigabytes', 'groups', 'per_volume_gigabytes'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];

export type QuotaDelta = Partial<Record<Exclude<QuotaResource, 'per_volume_gigabytes'>, number>>;

export async function quotaLimits(ex: Executor, config: BulwarkConfig, projectId: string): Promise<Record<QuotaResource, number>> {
  const limits: Record<QuotaResource, number> = { ...config.quotas };
  const classRows = await ex.selectFrom('quota_classes').selectAll().where('class_name', '=', 'default').execute();
  for (const r of classRows) if (isResource(r.resource)) limits[r.resource] = r.hard_limit;
  const rows = await ex.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute();
  for (const r of rows) if (isResource(r.resource)) limits[r.resource] = r.hard_limit;
  return limits;
}

export async function quotaUsage(ex: Executor, projectId: string): Promise<Record<Exclude<QuotaResource, 'per_volume_gigabytes'>, number>> {
  const vol = await ex
    .selectFrom('volumes')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('size'), eb.val(0)).as('gb')])
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow();
  const snap = await ex
    .selectFrom('snapshots')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('size'), eb.val(0)).as('gb')])
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow();
  const grp = await ex
    .selectFrom('groups')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow();
  // Every backup row counts, whatever its status, as Cinder's reservations do
  // until the backup is deleted.
  const bak = await ex
    .selectFrom('backups')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('size'), eb.val(0)).as('gb')])
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow();
  return {
    volumes: Number(vol.n),
    gigabytes: Number(vol.gb) + Number(snap.gb),
    snapshots: Number(snap.n),
    groups: Number(grp.n),
    backups: Number(bak.n),
    backup_gigabytes: Number(bak.gb),
  };
}

/** Throws Cinder's 413 when adding `delta` would exceed a limit (-1 = unlimited). */
export async function enforceQuota(ex: Executor, config: BulwarkConfig, projectId: string, delta: QuotaDelta, volumeSizeGiB?: number, volumeTypeId?: string): Promise<void> {
  const limits = await quotaLimits(ex, config, projectId);
  if (volumeSizeGiB !== undefined && limits.per_volume_gigabytes >= 0 && volumeSizeGiB > limits.per_volume_gigabytes) {
    throw overQuota(`VolumeSizeExceedsLimit: Requested volume size ${volumeSizeGiB}G is larger than maximum allowed limit ${limits.per_volume_gigabytes}G.`);
  }
  const usage = await quotaUsage(ex, projectId);
  for (const [res, add] of Object.entries(delta) as [keyof QuotaDelta, number][]) {
    const limit = limits[res];
    if (add > 0 && limit >= 0 && usage[res] + add > limit) {
      const what = res === 'gigabytes' || res === 'backup_gigabytes' ? `${add}G` : String(add);
      throw overQuota(
        `Requested ${res} exceeds allowed ${res} quota: requested ${what}, quota is ${limit}, ${usage[res]} already consumed.`,
      );
    }
  }
  if (volumeTypeId !== undefined) await enforceTypeQuota(ex, config, projectId, delta, volumeTypeId);
}

function isResource(s: string): s is QuotaResource {
  return (QUOTA_RESOURCES as readonly string[]).includes(s);
}

// ---------------------------------------------------------------------------
// Per-volume-type quotas and the full quota set, as Cinder's
// VolumeTypeQuotaEngine exposes them: every volume type adds the resources
// volumes_<name>, gigabytes_<name> and snapshots_<name>, unlimited (-1) unless
// the default quota class or the project says otherwise. The functions above
// keep their shapes; volumes.ts and friends use them unchanged.

export const TYPE_QUOTA_PARTS = ['volumes', 'gigabytes', 'snapshots'] as const;
export type TypeQuotaPart = (typeof TYPE_QUOTA_PARTS)[number];

/** Resource name -> hard limit (-1 = unlimited). */
export type QuotaMap = Record<string, number>;

export const DEFAULT_QUOTA_CLASS = 'default';
/** Cinder's DB_MAX_INT: the largest limit a quota row can hold. */
export const MAX_QUOTA_LIMIT = 0x7fffffff;

export const typeQuotaKey = (part: TypeQuotaPart, typeName: string): string => `${part}_${typeName}`;

/** Every quota resource in Cinder's order: globals, then per type, then groups. */
export async function quotaResourceNames(ex: Executor): Promise<string[]> {
  const types = await ex.selectFrom('volume_types').select('name').orderBy('created_at').orderBy('id').execute();
  const names: string[] = ['volumes', 'per_volume_gigabytes', 'snapshots', 'gigabytes', 'backups', 'backup_gigabytes'];
  for (const t of types) for (const part of TYPE_QUOTA_PARTS) names.push(typeQuotaKey(part, t.name));
  names.push('groups');
  return names;
}

/** Limits of a quota class: the class's rows over the defaults (config, then the 'default' class). */
export async function classQuotaLimits(ex: Executor, config: BulwarkConfig, className: string = DEFAULT_QUOTA_CLASS): Promise<QuotaMap> {
  const names = await quotaResourceNames(ex);
  const out: QuotaMap = {};
  for (const n of names) out[n] = isResource(n) ? config.quotas[n] : -1;
  const classes = className === DEFAULT_QUOTA_CLASS ? [DEFAULT_QUOTA_CLASS] : [DEFAULT_QUOTA_CLASS, className];
  for (const cls of classes) {
    const rows = await ex.selectFrom('quota_classes').selectAll().where('class_name', '=', cls).execute();
    for (const r of rows) if (r.resource in out) out[r.resource] = r.hard_limit;
  }
  return out;
}

/** A project's effective limits: its own rows over the default class. */
export async function projectQuotaLimits(ex: Executor, config: BulwarkConfig, projectId: string): Promise<QuotaMap> {
  const out = await classQuotaLimits(ex, config);
  const rows = await ex.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute();
  for (const r of rows) if (r.resource in out) out[r.resource] = r.hard_limit;
  return out;
}

/** Only the limits the project set explicitly (Cinder's defaults=False). */
export async function projectQuotaOverrides(ex: Executor, projectId: string): Promise<QuotaMap> {
  const rows = await ex.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute();
  return Object.fromEntries(rows.map((r) => [r.resource, r.hard_limit]));
}

/** Usage of every resource, per-type ones included (counted, never tracked). */
export async function projectQuotaUsage(ex: Executor, projectId: string): Promise<QuotaMap> {
  const out: QuotaMap = { ...(await quotaUsage(ex, projectId)), per_volume_gigabytes: 0 };
  const types = await ex.selectFrom('volume_types').select(['id', 'name']).execute();
  const perType = await typeUsage(ex, projectId);
  for (const t of types) {
    const u = perType.get(t.id);
    out[typeQuotaKey('volumes', t.name)] = u?.volumes ?? 0;
    out[typeQuotaKey('gigabytes', t.name)] = u?.gigabytes ?? 0;
    out[typeQuotaKey('snapshots', t.name)] = u?.snapshots ?? 0;
  }
  return out;
}

async function typeUsage(ex: Executor, projectId: string): Promise<Map<string, Record<TypeQuotaPart, number>>> {
  const vols = await ex
    .selectFrom('volumes')
    .select((eb) => ['volume_type_id', eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('size'), eb.val(0)).as('gb')])
    .where('project_id', '=', projectId)
    .groupBy('volume_type_id')
    .execute();
  // A snapshot counts against the type of the volume it was taken from, as
  // Cinder reserves snapshots_<type> and gigabytes_<type> for it.
  const snaps = await ex
    .selectFrom('snapshots')
    .innerJoin('volumes', 'volumes.id', 'snapshots.volume_id')
    .select((eb) => ['volumes.volume_type_id', eb.fn.countAll<number>().as('n'), eb.fn.coalesce(eb.fn.sum<number>('snapshots.size'), eb.val(0)).as('gb')])
    .where('snapshots.project_id', '=', projectId)
    .groupBy('volumes.volume_type_id')
    .execute();
  const out = new Map<string, Record<TypeQuotaPart, number>>();
  const entry = (id: string) => {
    let e = out.get(id);
    if (!e) out.set(id, (e = { volumes: 0, gigabytes: 0, snapshots: 0 }));
    return e;
  };
  for (const v of vols) {
    const e = entry(v.volume_type_id);
    e.volumes += Number(v.n);
    e.gigabytes += Number(v.gb);
  }
  for (const s of snaps) {
    const e = entry(s.volume_type_id);
    e.snapshots += Number(s.n);
    e.gigabytes += Number(s.gb);
  }
  return out;
}

/**
 * The per-volume-type half of Cinder's quota check: `delta`'s volumes,
 * gigabytes and snapshots are also charged to <part>_<type name>. Call it next
 * to enforceQuota (or pass the type id to enforceQuota) inside the same
 * transaction that creates the resource.
 */
export async function enforceTypeQuota(ex: Executor, config: BulwarkConfig, projectId: string, delta: QuotaDelta, volumeTypeId: string): Promise<void> {
  const vtype = await ex.selectFrom('volume_types').select(['id', 'name']).where('id', '=', volumeTypeId).executeTakeFirst();
  if (!vtype) return;
  const charged = TYPE_QUOTA_PARTS.filter((p) => (delta[p] ?? 0) > 0);
  if (charged.length === 0) return;
  const limits = await projectQuotaLimits(ex, config, projectId);
  if (charged.every((p) => (limits[typeQuotaKey(p, vtype.name)] ?? -1) < 0)) return;
  const usage = (await typeUsage(ex, projectId)).get(vtype.id) ?? { volumes: 0, gigabytes: 0, snapshots: 0 };
  for (const part of charged) {
    const key = typeQuotaKey(part, vtype.name);
    const limit = limits[key] ?? -1;
    const add = delta[part] ?? 0;
    if (limit >= 0 && usage[part] + add > limit) {
      const what = part === 'gigabytes' ? `${add}G` : String(add);
      throw overQuota(`Requested ${key} exceeds allowed ${key} quota: requested ${what}, quota is ${limit}, ${usage[part]} already consumed.`);
    }
  }
}
