// List queries as Cinder parses them: filters (validated against the allowed
// keys from 3.34 on), sort=key:dir,..., limit/marker/offset, with_count, and
// the "next" link. Rows are filtered in memory after the project scoping done
// in SQL; a project's volume count stays far below where that matters.
import { badRequest, invalidInput, notFound } from '../errors.js';
import { atLeast, type Microversion } from '../microversion.js';
import { parseBool } from '../validate.js';

export interface SortKey {
  readonly key: string;
  readonly dir: 'asc' | 'desc';
}

export interface ListQuery {
  readonly filters: Record<string, string>;
  readonly sort: readonly SortKey[];
  readonly limit: number | undefined;
  readonly marker: string | undefined;
  readonly offset: number;
  readonly allTenants: boolean;
  readonly withCount: boolean;
}

const PAGING_KEYS = new Set(['sort', 'sort_key', 'sort_dir', 'limit', 'marker', 'offset', 'all_tenants', 'with_count', 'project_id']);

export function parseListQuery(
  query: Record<string, string | string[] | undefined>,
  opts: { allowedFilters: readonly string[]; sortKeys: readonly string[]; version: Microversion; isAdmin: boolean },
): ListQuery {
  const q: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q[k] = Array.isArray(v) ? v[v.length - 1]! : v;
  const filters: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) {
    if (PAGING_KEYS.has(k)) continue;
    const base = k.endsWith('~') ? k.slice(0, -1) : k;
    if (!opts.allowedFilters.includes(base)) {
      // Before 3.34 Cinder silently ignored unknown filters; from then on it refuses them.
      if (atLeast(opts.version, '3.34')) throw badRequest(`Invalid filters ${k} are found in query options.`);
      continue;
    }
    filters[k] = v;
  }
  const allTenants = q['all_tenants'] !== undefined && opts.isAdmin && parseBool(q['all_tenants'], 'all_tenants');
  if (q['project_id'] !== undefined && allTenants) filters['project_id'] = q['project_id'];
  const sort = parseSort(q, opts.sortKeys);
  let limit: number | undefined;
  if (q['limit'] !== undefined) {
    if (!/^\d+$/.test(q['limit'])) throw badRequest(`limit param must be an integer`);
    limit = Number(q['limit']);
  }
  let offset = 0;
  if (q['offset'] !== undefined) {
    if (!/^\d+$/.test(q['offset'])) throw badRequest(`offset param must be an integer`);
    offset = Number(q['offset']);
  }
  const withCount = q['with_count'] !== undefined && atLeast(opts.version, '3.45') && parseBool(q['with_count'], 'with_count');
  return { filters, sort, limit, marker: q['marker'], offset, allTenants, withCount };
}

function parseSort(q: Record<string, string>, sortKeys: readonly string[]): SortKey[] {
  const keys: SortKey[] = [];
  if (q['sort'] !== undefined) {
    if (q['sort_key'] !== undefined || q['sort_dir'] !== undefined) throw badRequest(`The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.`);
    for (const part of q['sort'].split(',')) {
      const [key, dir = 'desc'] = part.trim().split(':');
      keys.push(checkSort(key ?? '', dir, sortKeys));
    }
  } else if (q['sort_key'] !== undefined || q['sort_dir'] !== undefined) {
    keys.push(checkSort(q['sort_key'] ?? 'created_at', q['sort_dir'] ?? 'desc', sortKeys));
  }
  if (!keys.some((k) => k.key === 'created_at')) keys.push({ key: 'created_at', dir: 'desc' });
  if (!keys.some((k) => k.key === 'id')) keys.push({ key: 'id', dir: keys[0]?.dir ?? 'desc' });
  return keys;
}

function checkSort(key: string, dir: string, sortKeys: readonly string[]): SortKey {
  const d = dir.toLowerCase();
  if (d !== 'asc' && d !== 'desc') throw invalidInput(`Unknown sort direction, must be 'desc' or 'asc'.`);
  const k = key === 'display_name' ? 'name' : key;
  if (!sortKeys.includes(k)) throw invalidInput(`Invalid sort key ${key}.`);
  return { key: k, dir: d };
}

/** Parses Cinder's metadata filter: a JSON or Python-literal dict. */
export function parseMetadataFilter(text: string): Record<string, string> {
  try {
    const parsed: unknown = JSON.parse(text.replace(/'/g, '"'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
    }
  } catch {
    /* fall through */
  }
  throw invalidInput(`Invalid metadata filter: ${text}`);
}

export interface Page<T> {
  readonly items: T[];
  readonly nextMarker: string | null;
  readonly count: number;
}

export function paginate<T extends { id: string }>(rows: T[], q: ListQuery, field: (row: T, key: string) => unknown, maxLimit = 1000): Page<T> {
  const sorted = [...rows].sort((a, b) => {
    for (const s of q.sort) {
      const c = compareValues(field(a, s.key), field(b, s.key));
      if (c !== 0) return s.dir === 'asc' ? c : -c;
    }
    return 0;
  });
  let start = q.offset;
  if (q.marker !== undefined) {
    const idx = sorted.findIndex((r) => r.id === q.marker);
    // Cinder answers an unknown marker with 404 (MarkerNotFound), tempest checks it.
    if (idx < 0) throw notFound(`Marker ${q.marker} could not be found.`);
    start = idx + 1;
  }
  const limit = Math.min(q.limit ?? maxLimit, maxLimit);
  const items = sorted.slice(start, start + limit);
  // Cinder adds the next link whenever a page is full, even if nothing follows;
  // tempest's pagination test expects exactly that.
  const nextMarker = items.length > 0 && items.length === limit ? items[items.length - 1]!.id : null;
  return { items, nextMarker, count: rows.length };
}

function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : 1;
}

export function nextLink(baseCollectionUrl: string, query: Record<string, unknown>, marker: string | null): { href: string; rel: string }[] | undefined {
  if (!marker) return undefined;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (k !== 'marker' && v !== undefined) params.set(k, String(v));
  params.set('marker', marker);
  return [{ href: `${baseCollectionUrl}?${params.toString()}`, rel: 'next' }];
}

/** Generic filter match; `~` suffix means substring ("like") as Cinder 3.34. */
export function matchesFilters<T>(row: T, filters: Record<string, string>, field: (row: T, key: string) => unknown): boolean {
  for (const [rawKey, want] of Object.entries(filters)) {
    const like = rawKey.endsWith('~');
    const key = like ? rawKey.slice(0, -1) : rawKey;
    const have = field(row, key);
    if (key === 'metadata') {
      const meta = (have ?? {}) as Record<string, string>;
      for (const [mk, mv] of Object.entries(parseMetadataFilter(want))) if (meta[mk] !== mv) return false;
      continue;
    }
    const haveText = have === null || have === undefined ? '' : String(have);
    if (like ? !haveText.includes(want) : haveText !== want) return false;
  }
  return true;
}
