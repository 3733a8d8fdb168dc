// s3://bucket/prefix?endpoint=http://127.0.0.1:8080&region=us-east-1, with the
// keys in a separate JSON file ({accessKeyId, secretAccessKey}, mode 0600).
import { S3ObjectStore } from '../../backup/store/s3.js';
import { readJsonFile } from './repository.js';

export async function s3StoreFromUrl(url: string, credentialsFile: string | undefined): Promise<S3ObjectStore> {
  if (!credentialsFile) throw new Error('an s3:// backup repository needs backup.s3CredentialsFile');
  const u = new URL(url);
  const endpoint = u.searchParams.get('endpoint');
  if (!endpoint) throw new Error('an s3:// backup repository URL needs ?endpoint=');
  const creds = readJsonFile<{ accessKeyId?: unknown; secretAccessKey?: unknown }>(credentialsFile);
  if (typeof creds.accessKeyId !== 'string' || typeof creds.secretAccessKey !== 'string') {
    throw new Error(`${credentialsFile} must hold {"accessKeyId": ..., "secretAccessKey": ...}`);
  }
  const store = new S3ObjectStore({
    endpoint,
    region: u.searchParams.get('region') ?? 'us-east-1',
    bucket: u.hostname,
    prefix: u.pathname.replace(/^\/+/, ''),
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
  });
  await store.createBucketIfMissing();
  return store;
}
