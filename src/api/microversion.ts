// Cinder microversions: "OpenStack-API-Version: volume 3.N". The negotiated
// version decides which fields a body carries and which routes exist.
import { ApiError } from './errors.js';

export const MIN_VERSION = '3.0';
export const MAX_VERSION = '3.64';

export interface Microversion {
  readonly major: number;
  readonly minor: number;
}

export function parseVersion(text: string): Microversion | null {
  const m = /^(\d+)\.(\d+)$/.exec(text.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

const min = parseVersion(MIN_VERSION)!;
const max = parseVersion(MAX_VERSION)!;

export function compare(a: Microversion, b: Microversion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

export function atLeast(v: Microversion, text: string): boolean {
  return compare(v, parseVersion(text)!) >= 0;
}

export function format(v: Microversion): string {
  return `${v.major}.${v.minor}`;
}

/** Reads the request headers; absent means the minimum, as Cinder does. */
export function negotiate(headers: Record<string, string | string[] | undefined>): Microversion {
  const raw = headerValue(headers['openstack-api-version']);
  let requested: string | undefined;
  if (raw) {
    // May list several services: "volume 3.27, compute 2.1".
    for (const part of raw.split(',')) {
      const [service, ver] = part.trim().split(/\s+/);
      if (service?.toLowerCase() === 'volume' && ver) requested = ver;
    }
  }
  requested ??= headerValue(headers['x-openstack-volume-api-version']);
  if (!requested) return min;
  if (requested.toLowerCase() === 'latest') return max;
  const v = parseVersion(requested);
  if (!v) throw new ApiError(400, `API Version String ${requested} is of invalid format. Must be of format MajorNum.MinorNum.`);
  if (compare(v, min) < 0 || compare(v, max) > 0) {
    throw new ApiError(406, `Version ${requested} is not supported by the API. Minimum is ${MIN_VERSION} and maximum is ${MAX_VERSION}.`);
  }
  return v;
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}
