// Opens the backup repository a backup service writes to, from config: a local
// directory by default (created on first use, with a random key file, 0600),
// or S3-compatible object storage. Secrets come from files, never from the
// config, the environment or process arguments.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BulwarkConfig } from '../../config/schema.js';
import { Repository } from '../../backup/repository/repository.js';
import { RepositoryFormatError, WrongKeyError } from '../../backup/repository/errors.js';
import { secretFromKeyFile } from '../../backup/repository/keys.js';
import { LocalDirStore } from '../../backup/store/local-dir.js';
import type { ObjectStore } from '../../backup/store/object-store.js';

export function repositoryUrl(config: BulwarkConfig): string {
  return config.backup.repository ?? `file://${join(config.dataDir, 'backups')}`;
}

export function keyFilePath(config: BulwarkConfig): string {
  return config.backup.keyFile ?? join(config.dataDir, 'backup.key');
}

async function storeFor(config: BulwarkConfig, url: string): Promise<ObjectStore> {
  if (url.startsWith('file://')) {
    const dir = url.slice('file://'.length);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new LocalDirStore(dir);
  }
  if (url.startsWith('s3://')) {
    const { s3StoreFromUrl } = await import('./s3-url.js');
    return s3StoreFromUrl(url, config.backup.s3CredentialsFile);
  }
  throw new Error(`unsupported backup repository URL ${url.split(':')[0]}:// (use file:// or s3://)`);
}

/** Opens the repository, creating it (and its key file) when it does not exist yet. */
export async function openRepository(config: BulwarkConfig): Promise<Repository> {
  const url = repositoryUrl(config);
  const store = await storeFor(config, url);
  const keyFile = keyFilePath(config);
  if (!existsSync(keyFile)) {
    if (await store.has('config')) throw new Error(`backup repository ${store.describe} exists but its key file ${keyFile} is missing`);
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  }
  const secret = await secretFromKeyFile(keyFile);
  try {
    return await Repository.open(store, secret);
  } catch (err) {
    // Name the key file: the operator has to know which one is wrong.
    if (err instanceof WrongKeyError) throw new WrongKeyError(`${store.describe} (key file ${keyFile})`);
    if (!(err instanceof RepositoryFormatError) || (await store.has('config'))) throw err;
    return Repository.init(store, secret);
  }
}

export function readJsonFile<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
