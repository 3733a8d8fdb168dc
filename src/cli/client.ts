// HTTP client behind `bulwark <resource> <verb>`: Keystone v3 password auth,
// then Cinder v3 calls on the catalog's public volumev3 endpoint with one
// pinned microversion. Everything here speaks only the public API, so the CLI
// works the same against any deployment (or a real Cinder).

export type Resource = Record<string, unknown>;
export type FetchLike = typeof fetch;

/** Printed to stderr as `error: <message>`; the process then exits 1. */
export class CliError extends Error {}

/** A non-2xx answer, carrying the fault's message and code for the error line. */
export class ApiFailure extends CliError {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${detail} (HTTP ${status})`);
  }
}

/**
 * Holds a password or token. Every accidental path to output (string
 * interpolation, JSON.stringify, console.log/util.inspect) shows stars, so a
 * credentials object can be logged or put into an error without leaking.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret(***)';
  }
}

export interface Credentials {
  readonly authUrl: string;
  readonly username: string;
  readonly password: Secret;
  readonly userDomainName: string;
  readonly projectName: string;
  readonly projectDomainName: string;
  /** "3.N": sent on every Cinder request. */
  readonly volumeApiVersion: string;
  /** Narrows the endpoint choice when the catalog spans regions. */
  readonly regionName: string | null;
}

export const DEFAULT_VOLUME_API_VERSION = '3.64';

/**
 * The one place the CLI reads the environment (project rule): the standard
 * OpenStack variables that `bulwark all-in-one` writes into DATA_DIR/openrc.
 */
export function credentialsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): Credentials {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const required = ['OS_AUTH_URL', 'OS_USERNAME', 'OS_PASSWORD', 'OS_PROJECT_NAME'] as const;
  const missing = required.filter((n) => get(n) === undefined);
  if (missing.length > 0) {
    throw new CliError(`${missing.join(', ')} not set; source DATA_DIR/openrc (written by \`bulwark all-in-one\`) first`);
  }
  const authUrl = get('OS_AUTH_URL')!.replace(/\/+$/, '');
  if (!URL.canParse(authUrl) || !/^https?:$/.test(new URL(authUrl).protocol)) throw new CliError(`OS_AUTH_URL is not an http(s) URL: ${authUrl}`);
  return {
    authUrl,
    username: get('OS_USERNAME')!,
    // Not trimmed: a password may legitimately end in whitespace.
    password: new Secret(env['OS_PASSWORD']!),
    // keystoneauth has no default here, but every devstack-style openrc uses Default.
    userDomainName: get('OS_USER_DOMAIN_NAME') ?? 'Default',
    projectName: get('OS_PROJECT_NAME')!,
    projectDomainName: get('OS_PROJECT_DOMAIN_NAME') ?? 'Default',
    volumeApiVersion: normalizeVersion(get('OS_VOLUME_API_VERSION') ?? DEFAULT_VOLUME_API_VERSION),
    regionName: get('OS_REGION_NAME') ?? null,
  };
}

/** "3" means 3.0, as in openstackclient; anything else but 3.N is refused early. */
export function normalizeVersion(text: string): string {
  if (/^\d+$/.test(text)) return `${text}.0`;
  if (/^\d+\.\d+$/.test(text)) return text;
  throw new CliError(`OS_VOLUME_API_VERSION must look like 3 or 3.N, not ${JSON.stringify(text)}`);
}

export function versionAtLeast(have: string, need: string): boolean {
  const [hMaj = 0, hMin = 0] = have.split('.').map(Number);
  const [nMaj = 0, nMin = 0] = need.split('.').map(Number);
  return hMaj !== nMaj ? hMaj > nMaj : hMin >= nMin;
}

/** Keystone's password method with a project scope by name, as openstackclient sends it. */
export function authRequestBody(c: Credentials): Resource {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: c.username, domain: { name: c.userDomainName }, password: c.password.reveal() } },
      },
      scope: { project: { name: c.projectName, domain: { name: c.projectDomainName } } },
    },
  };
}

/**
 * The public URL of the volume service. volumev3 is asked for by name;
 * block-storage (its official type, carrying the same endpoint) is the fallback.
 */
export function pickVolumeEndpoint(catalog: unknown, regionName: string | null): string | null {
  if (!Array.isArray(catalog)) return null;
  for (const type of ['volumev3', 'block-storage']) {
    for (const svc of catalog as unknown[]) {
      const s = asRecordOrNull(svc);
      if (!s || s['type'] !== type || !Array.isArray(s['endpoints'])) continue;
      for (const ep of s['endpoints'] as unknown[]) {
        const e = asRecordOrNull(ep);
        if (!e || e['interface'] !== 'public' || typeof e['url'] !== 'string') continue;
        if (regionName !== null && e['region'] !== regionName && e['region_id'] !== regionName) continue;
        return e['url'].replace(/\/+$/, '');
      }
    }
  }
  return null;
}

/**
 * The message of an error body: Cinder's {"<faultName>": {"code", "message"}},
 * Keystone's {"error": {...}} (the same shape), or a bare {"message"}; the raw
 * text when it is none of these.
 */
export function parseFault(status: number, text: string): ApiFailure {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new ApiFailure(status, text.trim().slice(0, 500) || `request failed`);
  }
  const top = asRecordOrNull(body);
  if (top) {
    for (const value of Object.values(top)) {
      const fault = asRecordOrNull(value);
      if (fault && typeof fault['message'] === 'string') {
        return new ApiFailure(typeof fault['code'] === 'number' ? fault['code'] : status, fault['message']);
      }
    }
    if (typeof top['message'] === 'string') return new ApiFailure(status, top['message']);
  }
  return new ApiFailure(status, text.trim().slice(0, 500));
}

export function asRecordOrNull(v: unknown): Resource | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Resource) : null;
}

/** A call on the volume API; builders in requests.ts produce these. */
export interface ApiRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Relative to the volume endpoint, e.g. "/volumes/detail". */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** Lowest microversion the call needs; checked before anything is sent. */
  readonly min?: string;
  /** Names the feature in the "needs microversion" error, e.g. "volume revert". */
  readonly what?: string;
}

async function send(fetchImpl: FetchLike, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetchImpl(url, init);
  } catch (err) {
    // fetch hides ECONNREFUSED and friends in `cause`.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const code = asRecordOrNull(cause)?.['code'];
    throw new CliError(`cannot reach ${new URL(url).origin}: ${typeof code === 'string' ? code : String(cause instanceof Error ? cause.message : cause)}`);
  }
}

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!res.ok) throw parseFault(res.status, text);
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`unreadable response from ${res.url} (HTTP ${res.status})`);
  }
}

export class VolumeClient {
  private constructor(
    private readonly fetchImpl: FetchLike,
    private readonly token: Secret,
    /** The volume endpoint, project id already substituted by Keystone. */
    readonly endpoint: string,
    readonly projectId: string,
    readonly version: string,
  ) {}

  static async connect(creds: Credentials, fetchImpl: FetchLike = fetch): Promise<VolumeClient> {
    const res = await send(fetchImpl, `${creds.authUrl}/auth/tokens`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(authRequestBody(creds)),
    });
    const body = asRecordOrNull(await readJson(res));
    const token = res.headers.get('x-subject-token');
    const tokenBody = asRecordOrNull(body?.['token']);
    if (!token || !tokenBody) throw new CliError(`no token in the answer of ${creds.authUrl}/auth/tokens`);
    const projectId = asRecordOrNull(tokenBody['project'])?.['id'];
    const endpoint = pickVolumeEndpoint(tokenBody['catalog'], creds.regionName);
    if (!endpoint) throw new CliError('the service catalog has no public volumev3 endpoint');
    return new VolumeClient(fetchImpl, new Secret(token), endpoint, typeof projectId === 'string' ? projectId : '', creds.volumeApiVersion);
  }

  supports(min: string): boolean {
    return versionAtLeast(this.version, min);
  }

  /** openstackclient's behaviour: refuse locally rather than get a bare 404 for a too-old version. */
  requireVersion(min: string, what: string): void {
    if (!this.supports(min)) {
      throw new CliError(`${what}: needs volume API microversion ${min} or later (OS_VOLUME_API_VERSION is ${this.version})`);
    }
  }

  urlOf(path: string, query?: Readonly<Record<string, string>>): string {
    const qs = query && Object.keys(query).length > 0 ? `?${new URLSearchParams(query).toString()}` : '';
    return `${this.endpoint}${path}${qs}`;
  }

  async call(req: ApiRequest): Promise<unknown> {
    if (req.min) this.requireVersion(req.min, req.what ?? `${req.method} ${req.path}`);
    return this.fetchUrl(req.method, this.urlOf(req.path, req.query), req.body);
  }

  private async fetchUrl(method: string, url: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'X-Auth-Token': this.token.reveal(),
      'OpenStack-API-Version': `volume ${this.version}`,
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await send(this.fetchImpl, url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return readJson(res);
  }

  /** A call to another service of the same deployment (image, compute) by absolute URL;
   *  a Uint8Array body goes out as application/octet-stream. */
  async callUrl(method: string, url: string, body?: object | Uint8Array): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json', 'X-Auth-Token': this.token.reveal() };
    let payload: string | Blob | undefined;
    if (body instanceof Uint8Array) {
      headers['Content-Type'] = 'application/octet-stream';
      payload = new Blob([new Uint8Array(body)]);
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await send(this.fetchImpl, url, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    return readJson(res);
  }

  /** GET returning body[key] as an object (show, create answers). */
  async getOne(path: string, key: string, query?: Readonly<Record<string, string>>): Promise<Resource> {
    return unwrap(await this.call({ method: 'GET', path, ...(query ? { query } : {}) }), key);
  }

  /**
   * Every item of a listing, following the `<key>_links` next links Cinder adds
   * when a page is full, so the table is never silently cut at osapi_max_limit.
   */
  async listAll(req: ApiRequest, key: string): Promise<Resource[]> {
    const items: Resource[] = [];
    const seen = new Set<string>();
    let body = await this.call(req);
    for (;;) {
      const page = asRecordOrNull(body);
      const list = page?.[key];
      if (!Array.isArray(list)) throw new CliError(`the answer to GET ${req.path} has no "${key}" list`);
      for (const item of list as unknown[]) {
        const r = asRecordOrNull(item);
        if (r) items.push(r);
      }
      const links = page?.[`${key}_links`];
      const next = Array.isArray(links) ? (links as unknown[]).map(asRecordOrNull).find((l) => l?.['rel'] === 'next')?.['href'] : undefined;
      // A server that hands back the same link again would loop forever.
      if (typeof next !== 'string' || seen.has(next)) return items;
      seen.add(next);
      body = await this.fetchUrl('GET', next);
    }
  }
}

/** body[key] as an object, or an error naming what was missing. */
export function unwrap(body: unknown, key: string): Resource {
  const inner = asRecordOrNull(asRecordOrNull(body)?.[key]);
  if (!inner) throw new CliError(`the answer has no "${key}" object`);
  return inner;
}
