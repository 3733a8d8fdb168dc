// Helpers shared by every Cinder view: timestamps in Cinder's format, links.
import type { Microversion } from '../../microversion.js';

/** Cinder prints naive UTC with microseconds: 2024-05-01T12:00:00.000000 */
export function cinderTime(iso: string): string;
export function cinderTime(iso: string | null): string | null;
export function cinderTime(iso: string | null): string | null {
  if (!iso) return null;
  return iso.replace(/Z$/, '').replace(/\.(\d{3})$/, '.$1000');
}

export interface ViewContext {
  /** Base URL of the block-storage endpoint without version, e.g. http://h:8776/volume */
  readonly baseUrl: string;
  readonly projectId: string;
  readonly isAdmin: boolean;
  readonly version: Microversion;
}

export function links(v: ViewContext, collection: string, id: string): { href: string; rel: string }[] {
  return [
    { href: `${v.baseUrl}/v3/${v.projectId}/${collection}/${id}`, rel: 'self' },
    { href: `${v.baseUrl}/${v.projectId}/${collection}/${id}`, rel: 'bookmark' },
  ];
}

export function parseJson<T>(text: string | null, fallback: T): T {
  if (!text) return fallback;
  return JSON.parse(text) as T;
}
