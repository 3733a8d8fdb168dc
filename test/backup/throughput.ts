// Throughput of the repository core on a local-dir repository (not a test;
// run by hand): `node dist/test/backup/throughput.js [dir] [GiB] [level]`.
// Writes GiB of chunks, alternating random and text-like (each made unique by
// a counter, so nothing dedups), restores them, and prints MiB/s, peak RSS,
// and a baseline: the same bytes written to one plain file and fsynced.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../../src/backup/repository/index.js';
import { LocalDirStore } from '../../src/backup/store/local-dir.js';
import { FAST, MiB, PASS, textLike } from './helpers.js';

const dir = process.argv[2] ?? '/tmp/bulwark-throughput';
const gib = Number(process.argv[3] ?? '1');
const level = Number(process.argv[4] ?? '1');
const chunks = Math.round(gib * 1024);
const bases = [randomBytes(MiB), textLike(MiB, 42)];

function chunk(i: number): Buffer {
  const b = bases[i % 2]!;
  b.writeUInt32LE(i, 0); // unique, same compressibility
  return b;
}

const rate = (bytes: number, ms: number): string => `${((bytes / MiB) * 1000 / ms).toFixed(0)} MiB/s`;

await rm(dir, { recursive: true, force: true });
const store = new LocalDirStore(join(dir, 'repo'));
const repo = await Repository.init(store, PASS, { ...FAST, compressionLevel: level });
let t = performance.now();
const w = await repo.writer({ backupId: 'tp', volumeId: 'v', volumeSize: chunks * MiB });
for (let i = 0; i < chunks; i++) await w.writeChunk(i * MiB, chunk(i));
const m = await w.commit();
const writeMs = performance.now() - t;
console.log(`backup  ${chunks} MiB in ${(writeMs / 1000).toFixed(2)} s: ${rate(chunks * MiB, writeMs)}; stored ${(m.stats.bytesStored / MiB).toFixed(0)} MiB (zstd level ${level}), workers ${availableParallelism()}`);

t = performance.now();
let read = 0;
for await (const e of repo.reader('tp')) read += e.data ? e.data.length : 0;
const readMs = performance.now() - t;
console.log(`restore ${read / MiB} MiB in ${(readMs / 1000).toFixed(2)} s: ${rate(read, readMs)} (authenticated, decompressed, discarded)`);
await repo.close();

t = performance.now();
const fh = await open(join(dir, 'plain'), 'w');
for (let i = 0; i < chunks; i++) await fh.write(chunk(i));
await fh.sync();
await fh.close();
const plainMs = performance.now() - t;
console.log(`baseline plain file write + fsync: ${rate(chunks * MiB, plainMs)}`);
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
await rm(dir, { recursive: true, force: true });
