// Loads the one config: defaults < config file (JSON) < environment < flags.
// The only place that reads process.env. Unknown keys anywhere are rejected.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { configSchema, type BulwarkConfig } from './schema.js';

export interface ConfigSources {
  /** Path of a JSON config file. */
  readonly file?: string | undefined;
  /** Overrides from command-line flags, merged last. */
  readonly overrides?: Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
}

/** Environment variables that map onto config keys (deliberately few). */
const ENV_KEYS: Record<string, string[]> = {
  BULWARK_DATA_DIR: ['dataDir'],
  BULWARK_DATABASE_URL: ['databaseUrl'],
  BULWARK_HOST: ['host'],
  BULWARK_LOG_LEVEL: ['logLevel'],
};

export class ConfigError extends Error {}

export function loadConfig(sources: ConfigSources = {}): BulwarkConfig {
  const env = sources.env ?? process.env;
  const file = sources.file ?? env['BULWARK_CONFIG'];
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
  }
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, value);
  }
  raw = deepMerge(raw, sources.overrides ?? {});
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${msg}`);
  }
  return finalize(parsed.data);
}

/** Paths become absolute (qemu-storage-daemon chdirs to /); a config without
 *  pools gets one pool in the data dir. */
function finalize(cfg: BulwarkConfig): BulwarkConfig {
  const dataDir = resolve(cfg.dataDir);
  const pools = cfg.volume.pools.length > 0 ? cfg.volume.pools : [{ name: 'default', path: `${dataDir}/pools/default`, capacityGiB: 1024, cache: 'auto' as const }];
  return {
    ...cfg,
    dataDir,
    databaseUrl: cfg.databaseUrl ?? `sqlite://${dataDir}/bulwark.db`,
    volume: { ...cfg.volume, pools: pools.map((p) => ({ ...p, path: resolve(dataDir, p.path) })) },
    compute: { ...cfg.compute, instancesDir: resolve(dataDir, cfg.compute.instancesDir ?? 'instances') },
    images: { ...cfg.images, directory: resolve(dataDir, cfg.images.directory ?? 'images') },
  };
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (!next || typeof next !== 'object') cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev) ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
