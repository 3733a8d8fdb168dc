// The service catalog put in project-scoped tokens, rendered as keystone does.
import { endpointId, serviceId } from './ids.js';

export type EndpointInterface = 'public' | 'internal' | 'admin';

export interface CatalogEndpoint {
  interface: EndpointInterface;
  /**
   * Absolute URL, or a path starting with '/' resolved against the public base URL
   * (or the request's origin when none is configured). May contain
   * %(project_id)s, $(project_id)s or {project_id} (tenant_id too).
   */
  url: string;
  region: string;
}

export interface CatalogService {
  type: string;
  name: string;
  endpoints: CatalogEndpoint[];
}

export interface RenderedEndpoint {
  id: string;
  interface: EndpointInterface;
  region: string;
  region_id: string;
  url: string;
}

export interface RenderedService {
  id: string;
  type: string;
  name: string;
  endpoints: RenderedEndpoint[];
}

const PROJECT_PLACEHOLDER = /%\((?:project|tenant)_id\)s|\$\((?:project|tenant)_id\)s|\{(?:project|tenant)_id\}/g;

/** A catalog URL made absolute: paths are resolved against the public origin. */
export function absoluteUrl(url: string, origin: string): string {
  return url.startsWith('/') ? origin.replace(/\/+$/, '') + url : url;
}

/**
 * Substitutes the token's project into each URL. Like keystone, an endpoint that
 * needs a project id is left out of a catalog rendered without one.
 */
export function renderCatalog(services: readonly CatalogService[], projectId: string | null, origin: string): RenderedService[] {
  return services.map((svc) => ({
    id: serviceId(svc.type, svc.name),
    type: svc.type,
    name: svc.name,
    endpoints: svc.endpoints.flatMap((ep): RenderedEndpoint[] => {
      const needsProject = ep.url.search(PROJECT_PLACEHOLDER) >= 0;
      if (needsProject && projectId === null) return [];
      const url = projectId === null ? ep.url : ep.url.replace(PROJECT_PLACEHOLDER, projectId);
      return [
        {
          id: endpointId(svc.type, ep.interface, ep.url),
          interface: ep.interface,
          region: ep.region,
          region_id: ep.region,
          url: absoluteUrl(url, origin),
        },
      ];
    }),
  }));
}

export interface DefaultCatalogOptions {
  /** Absolute base URL; omit to render paths relative to each request's origin. */
  baseUrl?: string | undefined;
  /** Where the identity plugin is mounted ('' or e.g. '/identity'). */
  identityPrefix?: string | undefined;
  /** Where the Cinder API is mounted ('' or e.g. '/volume', as devstack does). */
  volumePrefix?: string | undefined;
  /** Where the Glance version stub is mounted; null leaves image out of the catalog. */
  imagePrefix?: string | null | undefined;
  region?: string | undefined;
}

function allInterfaces(url: string, region: string): CatalogEndpoint[] {
  return (['public', 'internal', 'admin'] as const).map((iface) => ({ interface: iface, url, region }));
}

/**
 * identity, volumev3 + block-storage (the same Cinder v3 endpoint under its old
 * and its official service type, as devstack registers it) and image.
 */
export function defaultCatalogServices(opts: DefaultCatalogOptions = {}): CatalogService[] {
  const base = (opts.baseUrl ?? '').replace(/\/+$/, '');
  const region = opts.region ?? 'RegionOne';
  const identityPrefix = opts.identityPrefix ?? '';
  const imagePrefix = opts.imagePrefix === undefined ? '/image' : opts.imagePrefix;
  const volume = `${base}${opts.volumePrefix ?? ''}/v3/%(project_id)s`;
  const services: CatalogService[] = [
    { type: 'identity', name: 'keystone', endpoints: allInterfaces(`${base}${identityPrefix}/v3`, region) },
    { type: 'volumev3', name: 'cinderv3', endpoints: allInterfaces(volume, region) },
    { type: 'block-storage', name: 'cinder', endpoints: allInterfaces(volume, region) },
  ];
  if (imagePrefix !== null) services.push({ type: 'image', name: 'glance', endpoints: allInterfaces(`${base}${imagePrefix}`, region) });
  return services;
}
