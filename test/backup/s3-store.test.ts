// S3ObjectStore against a real S3 endpoint: OpenStack Swift's s3api, started on
// loopback by the harness. Skipped only when Swift is not installed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ObjectNotFoundError } from '../../src/backup/store/object-store.js';
import { S3AuthError, S3ObjectStore } from '../../src/backup/store/s3.js';
import { startSwift, swiftUnavailableReason, type SwiftS3 } from '../harness/swift.js';

const MiB = 1024 * 1024;
const unavailable = swiftUnavailableReason();

/** Runs fn over items with at most `limit` in flight. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of it) keys.push(k);
  return keys;
}

describe('S3ObjectStore on Swift s3api', { skip: unavailable ? `Swift is not installed: ${unavailable}` : false, timeout: 300_000 }, () => {
  let swift: SwiftS3 | undefined;
  let store: S3ObjectStore;

  const open = (overrides: { secretAccessKey?: string; prefix?: string } = {}): S3ObjectStore => {
    const s = swift!;
    return new S3ObjectStore({
      endpoint: s.endpoint,
      region: s.region,
      bucket: 'bulwark-test',
      prefix: overrides.prefix ?? 'repo-a',
      credentials: { accessKeyId: s.accessKeyId, secretAccessKey: overrides.secretAccessKey ?? s.secretAccessKey },
      requestTimeoutMs: 30_000,
      maxAttempts: 2,
    });
  };

  before(async () => {
    swift = await startSwift();
    store = open();
    await store.createBucketIfMissing();
  });

  after(async () => {
    store?.close();
    await swift?.stop();
  });

  it('describes itself without the secret', () => {
    assert.match(store.describe, /^s3:\/\/bulwark-test\/repo-a\/ at http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(!store.describe.includes(swift!.secretAccessKey));
    assert.deepEqual(store.capabilities, { atomicPut: true, conditionalPut: false, readInto: false });
  });

  it('createBucketIfMissing is idempotent', async () => {
    await store.createBucketIfMissing();
    await store.createBucketIfMissing();
  });

  it('puts and gets small objects byte for byte, empty included', async () => {
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    await store.put('small/all-bytes', every);
    await store.put('small/empty', new Uint8Array(0));
    assert.deepEqual(await store.get('small/all-bytes'), every);
    const empty = await store.get('small/empty');
    assert.equal(empty.byteLength, 0);
    assert.ok(empty instanceof Uint8Array);
  });

  it('puts and gets a 4 MiB object byte for byte, and overwrites it whole', async () => {
    const big = new Uint8Array(randomBytes(4 * MiB));
    await store.put('big/4mib', big);
    const back = await store.get('big/4mib');
    assert.equal(back.byteLength, big.byteLength);
    assert.ok(Buffer.from(back).equals(Buffer.from(big)));
    const other = new Uint8Array(randomBytes(1234));
    await store.put('big/4mib', other);
    assert.ok(Buffer.from(await store.get('big/4mib')).equals(Buffer.from(other)));
  });

  it('stores parts as one object, and reads ranges and suffixes of it (packs)', async () => {
    const a = randomBytes(300_000);
    const b = randomBytes(5);
    const c = randomBytes(1_000_000);
    await store.put('range/pack', [a, b, c]);
    const whole = Buffer.concat([a, b, c]);
    assert.ok(Buffer.from(await store.get('range/pack')).equals(whole));
    assert.ok(Buffer.from(await store.getRange('range/pack', { offset: 300_000, length: 5 })).equals(b));
    assert.ok(Buffer.from(await store.getRange('range/pack', { offset: 299_990, length: 20 })).equals(whole.subarray(299_990, 300_010)));
    assert.ok(Buffer.from(await store.getRange('range/pack', { suffix: 12 })).equals(whole.subarray(whole.length - 12)));
    // Past the end: the bytes that exist (a short read), or none.
    assert.equal((await store.getRange('range/pack', { offset: whole.length - 3, length: 10 })).length, 3);
    assert.equal((await store.getRange('range/pack', { offset: whole.length + 10, length: 10 })).length, 0);
    await assert.rejects(store.getRange('range/absent', { offset: 0, length: 1 }), ObjectNotFoundError);
  });

  it('has tells present from absent', async () => {
    await store.put('has/yes', new Uint8Array([1]));
    assert.equal(await store.has('has/yes'), true);
    assert.equal(await store.has('has/no'), false);
  });

  it('get of a missing key throws ObjectNotFoundError', async () => {
    await assert.rejects(store.get('nope/missing'), (err: unknown) => {
      assert.ok(err instanceof ObjectNotFoundError);
      assert.equal(err.key, 'nope/missing');
      return true;
    });
  });

  it('delete removes, and deleting an absent key succeeds', async () => {
    await store.put('del/k', new Uint8Array([7, 7]));
    await store.delete('del/k');
    assert.equal(await store.has('del/k'), false);
    await store.delete('del/k');
    await store.delete('del/never-existed');
    await assert.rejects(store.get('del/k'), ObjectNotFoundError);
  });

  it('lists > 1000 keys across pages, under the store prefix only', async () => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
    const body = new Uint8Array([42]);
    await pool(keys, 16, (k) => store.put(k, body));
    // Same keys under another store prefix must not show up.
    const neighbour = open({ prefix: 'repo-b' });
    try {
      await neighbour.put('many/00000', body);
      const listed = await collect(store.list('many/'));
      assert.equal(listed.length, keys.length);
      assert.deepEqual([...listed].sort(), keys);
      assert.deepEqual(await collect(neighbour.list('many/')), ['many/00000']);
      assert.deepEqual(await collect(store.list('many/0001')), keys.slice(10, 20));
      assert.deepEqual(await collect(store.list('no-such-prefix/')), []);
    } finally {
      neighbour.close();
    }
  });

  it('a wrong secret is a clear authentication error on every operation', async () => {
    const bad = open({ secretAccessKey: 'not-the-secret' });
    try {
      const checks: Array<[string, () => Promise<unknown>]> = [
        ['put', () => bad.put('auth/k', new Uint8Array([1]))],
        ['get', () => bad.get('small/all-bytes')],
        ['has', () => bad.has('small/all-bytes')],
        ['list', () => collect(bad.list(''))],
        ['delete', () => bad.delete('small/all-bytes')],
      ];
      for (const [op, call] of checks) {
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof S3AuthError, `${op}: ${String(err)}`);
          assert.match(err.message, /^S3 authentication failed for s3:\/\/bulwark-test\/repo-a\/ at http:\/\/127\.0\.0\.1:\d+: /);
          // A HEAD answer has no body to carry the S3 error code.
          assert.equal(err.code, op === 'has' ? 'HTTP 403' : 'SignatureDoesNotMatch');
          assert.ok(!err.message.includes('not-the-secret'));
          return true;
        });
      }
      assert.equal(await store.has('small/all-bytes'), true, 'the failed delete removed nothing');
    } finally {
      bad.close();
    }
  });

  it('gives up on an endpoint that never answers after the request timeout', async () => {
    // Accepts connections and never responds: what a wedged proxy looks like.
    const sockets = new Set<Socket>();
    const hung = createServer((sock) => sockets.add(sock));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const port = (hung.address() as { port: number }).port;
    const slow = new S3ObjectStore({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      bucket: 'bulwark-test',
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
      requestTimeoutMs: 300,
      maxAttempts: 1,
    });
    try {
      const t0 = Date.now();
      await assert.rejects(slow.get('k'), /S3 get k on s3:\/\/bulwark-test\/ at http:\/\/127\.0\.0\.1:\d+ failed: .*timeout/i);
      assert.ok(Date.now() - t0 < 5_000, 'failed within the timeout, not the default');
    } finally {
      slow.close();
      for (const sock of sockets) sock.destroy();
      hung.close();
    }
  });

  it('measures throughput: 64 x 1 MiB objects, 8 in flight', async (t) => {
    const objects = Array.from({ length: 64 }, (_, i) => ({ key: `perf/${i}`, data: new Uint8Array(randomBytes(MiB)) }));
    const t0 = performance.now();
    await pool(objects, 8, (o) => store.put(o.key, o.data));
    const t1 = performance.now();
    const back = await pool(objects, 8, (o) => store.get(o.key));
    const t2 = performance.now();
    back.forEach((b, i) => assert.ok(Buffer.from(b).equals(Buffer.from(objects[i]!.data)), `perf/${i} round-trips`));
    const up = 64 / ((t1 - t0) / 1000);
    const down = 64 / ((t2 - t1) / 1000);
    t.diagnostic(`upload ${up.toFixed(1)} MiB/s, download ${down.toFixed(1)} MiB/s (64 x 1 MiB, 8 in flight)`);
  });
});
