// Output of the operator CLI: openstackclient-style boxed tables (list and
// show), or raw JSON with --json. Pure string building, unit-tested.
import type { Resource } from './client.js';

export interface Column {
  readonly header: string;
  readonly value: (r: Resource) => unknown;
}

/**
 * Names, descriptions and metadata are chosen by API users, so control
 * characters (ANSI escapes above all) must not reach the operator's terminal.
 */
function clean(text: string): string {
  return text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '?');
}

function quoteScalar(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  return v === undefined ? 'None' : JSON.stringify(v);
}

/** One cell, as openstackclient's format_dict / format_list render them. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return clean(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return clean(v.map((x) => (typeof x === 'object' && x !== null ? JSON.stringify(x) : formatValue(x))).join(', '));
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return clean(entries.map(([k, x]) => `${k}=${quoteScalar(x)}`).join(', '));
  }
  return clean(String(v));
}

/**
 * A boxed table. Cells may span lines ('\n'). Widths count UTF-16 units, so
 * wide CJK characters misalign; the IDs and statuses that matter are ASCII.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const split = (cell: string) => cell.split('\n');
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.max(...split(r[i] ?? '').map((l) => l.length)))));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const out = [rule, line(headers), rule];
  for (const row of rows) {
    const cellLines = headers.map((_, i) => split(row[i] ?? ''));
    const height = Math.max(...cellLines.map((l) => l.length));
    for (let k = 0; k < height; k++) out.push(line(cellLines.map((l) => l[k] ?? '')));
  }
  if (rows.length > 0) out.push(rule);
  return `${out.join('\n')}\n`;
}

export function renderList(columns: readonly Column[], items: readonly Resource[]): string {
  return renderTable(
    columns.map((c) => c.header),
    items.map((item) => columns.map((c) => formatValue(c.value(item)))),
  );
}

/**
 * A Field/Value table of one resource, keys sorted as openstackclient shows
 * them, without `links`. Keys listed in `expand` holding objects become dotted rows
 * (connection_info.data.uri), since one packed line would be unreadable.
 */
export function renderShow(obj: Resource, expand: readonly string[] = []): string {
  const rows: string[][] = [];
  const add = (prefix: string, value: unknown, flatten: boolean) => {
    if (flatten && typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0) {
      for (const [k, v] of Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) add(`${prefix}.${k}`, v, true);
      return;
    }
    rows.push([clean(prefix), formatValue(value)]);
  };
  // API self-links are for programs (still in --json), not for reading.
  for (const key of Object.keys(obj).sort()) if (key !== 'links') add(key, obj[key], expand.includes(key));
  return renderTable(['Field', 'Value'], rows);
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Field/Value rows from an already flat record (limits, summaries). */
export function renderPairs(headers: readonly [string, string], pairs: readonly (readonly [string, unknown])[]): string {
  return renderTable(headers, pairs.map(([k, v]) => [clean(k), formatValue(v)]));
}
