// The ObjectStore port on S3-compatible object storage (AWS S3, Ceph RGW, MinIO,
// OpenStack Swift's s3api), through the AWS SDK v3 client. Why that client and
// what Swift's s3api does and does not do: docs/adr/0006-s3-object-storage.md.
import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type BucketLocationConstraint,
} from '@aws-sdk/client-s3';
import { ObjectNotFoundError, type ByteRange, type ObjectStore, type ObjectStoreCapabilities } from './object-store.js';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface S3ObjectStoreOptions {
  /** e.g. http://127.0.0.1:8080 or https://s3.eu-west-1.amazonaws.com */
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  /** Every key lives under this prefix ("" for the bucket root); a trailing "/" is added. */
  readonly prefix?: string;
  /** Passed in by the caller: this module never reads the environment or profile files for them. */
  readonly credentials: S3Credentials;
  /** Path-style URLs (endpoint/bucket/key): what Swift, MinIO and IP endpoints need. Default true. */
  readonly forcePathStyle?: boolean;
  /** Upper bound on one HTTP request, response body included. Default 120 s. */
  readonly requestTimeoutMs?: number;
  /** Upper bound on establishing a connection. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Attempts per operation, first included; the SDK backs off between them. Default 5. */
  readonly maxAttempts?: number;
  /** Concurrent connections to the endpoint. Default 64. */
  readonly maxSockets?: number;
}

/** The endpoint rejected our credentials or refused us access; retrying will not help. */
export class S3AuthError extends Error {
  constructor(
    readonly store: string,
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(`S3 authentication failed for ${store}: ${code} (check the access key id, the secret and the clock)`, options);
  }
}

// Codes S3 and s3api answer with when the signature, the key or the permission is wrong.
const AUTH_CODES = new Set([
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'RequestTimeTooSkewed',
  'AuthorizationHeaderMalformed',
]);

function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  // HEAD responses have no body, so the SDK names them after the status.
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.name === 'NoSuchBucket' || err.$metadata.httpStatusCode === 404;
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix) return '';
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/** The endpoint without userinfo, query or fragment: safe for logs. */
function safeEndpoint(endpoint: string): string {
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

export class S3ObjectStore implements ObjectStore {
  // S3 PUT replaces an object all at once; Swift's s3api ignores If-None-Match on PUT.
  readonly capabilities: ObjectStoreCapabilities = { atomicPut: true, conditionalPut: false, readInto: false };
  readonly describe: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly region: string;
  private readonly base: string;

  constructor(opts: S3ObjectStoreOptions) {
    this.bucket = opts.bucket;
    this.region = opts.region;
    this.base = normalizePrefix(opts.prefix);
    this.describe = `s3://${opts.bucket}/${this.base} at ${safeEndpoint(opts.endpoint)}`;
    const requestTimeout = opts.requestTimeoutMs ?? 120_000;
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region,
      forcePathStyle: opts.forcePathStyle ?? true,
      // A static object: the SDK's default chain (env, ~/.aws, IMDS) is never consulted.
      credentials: { ...opts.credentials },
      maxAttempts: opts.maxAttempts ?? 5,
      retryMode: 'standard',
      // The SDK's default CRC32 checksums (since 3.729) use headers and aws-chunked
      // trailers that older S3-compatible servers, Swift's s3api among them,
      // reject or ignore; put sends Content-MD5 instead, which they all verify.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 5_000,
        requestTimeout,
        // Without this a breached requestTimeout is only a logged warning.
        throwOnRequestTimeout: true,
        httpAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 64 },
        httpsAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 64 },
      },
    });
  }

  async put(key: string, parts: Uint8Array | readonly Uint8Array[], opts?: { signal?: AbortSignal }): Promise<void> {
    // One PUT per object (a pack is one request): the parts are joined for the body.
    const data = parts instanceof Uint8Array ? parts : Buffer.concat(parts);
    // Content-MD5 makes the server reject a body damaged in transit (BadDigest).
    const md5 = createHash('md5').update(data).digest('base64');
    await this.call('put', key, opts?.signal, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.base + key, Body: data, ContentMD5: md5, ContentLength: data.byteLength }),
        { abortSignal: opts?.signal },
      ),
    );
  }

  async get(key: string, opts?: { signal?: AbortSignal }): Promise<Uint8Array> {
    return this.call('get', key, opts?.signal, async () => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.base + key }), {
        abortSignal: opts?.signal,
      });
      if (!res.Body) throw new Error(`S3 get ${key} on ${this.describe}: response has no body`);
      return res.Body.transformToByteArray();
    });
  }

  async getRange(key: string, range: ByteRange, opts?: { signal?: AbortSignal }): Promise<Uint8Array> {
    if (!('suffix' in range) && range.length <= 0) return new Uint8Array(0);
    if ('suffix' in range && range.suffix <= 0) return new Uint8Array(0);
    const header = 'suffix' in range ? `bytes=-${range.suffix}` : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    return this.call('get', key, opts?.signal, async () => {
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.base + key, Range: header }), {
          abortSignal: opts?.signal,
        });
        if (!res.Body) throw new Error(`S3 get ${key} on ${this.describe}: response has no body`);
        return await res.Body.transformToByteArray();
      } catch (err) {
        // A range starting past the end is "not satisfiable": no bytes there, like a short read.
        if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 416) return new Uint8Array(0);
        throw err;
      }
    });
  }

  async has(key: string): Promise<boolean> {
    try {
      await this.call('has', key, undefined, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.base + key })));
      return true;
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return false;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.call('list', prefix, undefined, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base + prefix, ContinuationToken: token, MaxKeys: 1000 }),
        ),
      );
      for (const obj of page.Contents ?? []) {
        if (obj.Key !== undefined && obj.Key.startsWith(this.base)) yield obj.Key.slice(this.base.length);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.call('delete', key, undefined, () =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.base + key })),
      );
    } catch (err) {
      // S3 answers 204 for an absent key; some compatible servers answer 404.
      if (!(err instanceof ObjectNotFoundError)) throw err;
    }
  }

  /** Creates the bucket unless it exists already (ours, or created concurrently). */
  async createBucketIfMissing(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw this.wrap('head bucket', this.bucket, err);
    }
    try {
      // us-east-1 is the one region that must not be named as a location constraint.
      const config =
        this.region === 'us-east-1' ? undefined : { LocationConstraint: this.region as BucketLocationConstraint };
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket, CreateBucketConfiguration: config }));
    } catch (err) {
      if (err instanceof S3ServiceException && (err.name === 'BucketAlreadyOwnedByYou' || err.name === 'BucketAlreadyExists')) return;
      throw this.wrap('create bucket', this.bucket, err);
    }
  }

  /** Closes idle connections; the store is unusable afterwards. */
  close(): void {
    this.client.destroy();
  }

  private async call<T>(op: string, key: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (signal?.aborted) throw err;
      if (isNotFound(err) && (err as S3ServiceException).name !== 'NoSuchBucket') throw new ObjectNotFoundError(key);
      throw this.wrap(op, key, err);
    }
  }

  private wrap(op: string, key: string, err: unknown): Error {
    if (err instanceof S3ServiceException) {
      const status = err.$metadata.httpStatusCode;
      // A HEAD answer has no body, hence no error code: the SDK calls it "Unknown"
      // (older releases used the status text), so name it by its status instead.
      if (AUTH_CODES.has(err.name) || status === 401 || status === 403) {
        return new S3AuthError(this.describe, AUTH_CODES.has(err.name) ? err.name : `HTTP ${status ?? '?'}`, { cause: err });
      }
      return new Error(`S3 ${op} ${key} on ${this.describe} failed: ${err.name} (HTTP ${status ?? '?'})`, { cause: err });
    }
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return new Error(`S3 ${op} ${key} on ${this.describe} failed: ${msg}`, { cause: err });
  }
}
