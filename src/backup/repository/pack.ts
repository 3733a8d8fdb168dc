// Pack objects: many sealed chunk objects in one store object, so a backup
// costs one put (one fsync, one S3 PUT) per pack instead of one per chunk.
//
// pack      = chunk object | chunk object | ... | trailer
// trailer   = entry * n | n (u32le) | magic "BWPACK\0\1"
// entry     = chunk id (32 bytes) | offset (u32le) | length (u32le)
//
// Each chunk object is the sealed format of chunk-format.ts, unchanged: its id
// is its AAD, so a chunk read from the wrong place fails authentication. The
// trailer is plaintext and unauthenticated on purpose: it is a recovery hint
// (index objects are the authority), it names only ids, which reveal nothing
// about content (keyed hashes), and every chunk located through it is still
// authenticated when read.
import { randomBytes } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import type { ChunkLocation } from './chunk-map.js';
import type { RepoContext } from './context.js';
import { Semaphore } from './semaphore.js';

export const PACK_PREFIX = 'packs/';
const MAGIC = Buffer.from('BWPACK\0\x01', 'latin1');
const ENTRY = 40;
const TAIL = 4 + MAGIC.length;
/** Bounds a pack's trailer (160 KiB) however well its chunks compress. */
export const MAX_PACK_ENTRIES = 4096;

export function packKey(packId: string): string {
  return `${PACK_PREFIX}${packId}`;
}

export function newPackId(): string {
  return randomBytes(16).toString('hex');
}

export interface PackEntry {
  readonly id: string;
  readonly offset: number;
  readonly length: number;
}

/** The pack object's bytes: the chunk objects as given, then the trailer. */
export function encodePack(parts: readonly Uint8Array[], entries: readonly PackEntry[]): Buffer {
  return Buffer.concat([...parts, encodeTrailer(entries)]);
}

function encodeTrailer(entries: readonly PackEntry[]): Buffer {
  const trailer = Buffer.alloc(entries.length * ENTRY + TAIL);
  entries.forEach((e, k) => {
    trailer.write(e.id, k * ENTRY, 32, 'hex');
    trailer.writeUInt32LE(e.offset, k * ENTRY + 32);
    trailer.writeUInt32LE(e.length, k * ENTRY + 36);
  });
  trailer.writeUInt32LE(entries.length, entries.length * ENTRY);
  MAGIC.copy(trailer, entries.length * ENTRY + 4);
  return trailer;
}

export class PackFormatError extends Error {
  override readonly name = 'PackFormatError';
}

/** The entries a pack's trailer lists (two ranged reads). PackFormatError when it is not a pack. */
export async function readPackEntries(store: ObjectStore, packId: string): Promise<PackEntry[]> {
  const key = packKey(packId);
  const tail = Buffer.from(await store.getRange(key, { suffix: TAIL }));
  if (tail.length !== TAIL || !tail.subarray(4).equals(MAGIC)) throw new PackFormatError(`${key} has no pack trailer`);
  const n = tail.readUInt32LE(0);
  if (n > MAX_PACK_ENTRIES) throw new PackFormatError(`${key} claims ${n} entries`);
  const raw = Buffer.from(await store.getRange(key, { suffix: TAIL + n * ENTRY }));
  if (raw.length !== TAIL + n * ENTRY) throw new PackFormatError(`${key} is shorter than its trailer`);
  const out: PackEntry[] = [];
  for (let k = 0; k < n; k++) {
    out.push({ id: raw.toString('hex', k * ENTRY, k * ENTRY + 32), offset: raw.readUInt32LE(k * ENTRY + 32), length: raw.readUInt32LE(k * ENTRY + 36) });
  }
  return out;
}

/**
 * Collects sealed chunks into packs of about `packSize` bytes and uploads each
 * when full, at most `packUploads` at once (add() waits for a free upload slot, so
 * a fast producer is held back and memory stays bounded). `onStored` runs once
 * a pack is durably stored, with the locations of its chunks.
 */
export class PackWriter {
  /** The pack being filled: the chunk objects as the workers returned them (slab slots or small buffers), in order. */
  private parts: Uint8Array[] = [];
  private entries: PackEntry[] = [];
  private size = 0;
  private readonly slots: Semaphore;
  private readonly running = new Set<Promise<void>>();
  /** A full pack's wait for an upload slot; add() holds back while it lasts. */
  private waiting: Promise<void> | null = null;
  private failure: { error: unknown } | undefined;
  packsStored = 0;

  constructor(
    private readonly ctx: RepoContext,
    private readonly onStored: (packId: string, chunks: readonly (readonly [string, ChunkLocation])[]) => void,
  ) {
    this.slots = new Semaphore(Math.max(1, ctx.options.packUploads));
  }

  /** Queues a sealed chunk; uploads the pack when it is full. Throws an earlier upload's failure. */
  async add(id: string, sealed: Uint8Array): Promise<void> {
    // Backpressure for every caller, not only the one whose chunk filled a
    // pack: while a full pack waits for an upload slot nothing starts the next
    // one. Otherwise, on a slow store, full packs piled up in memory (each
    // holding its chunks' slab slots) until the slab ran out.
    while (this.waiting) await this.waiting;
    if (this.failure) throw this.failure.error;
    this.parts.push(sealed);
    this.entries.push({ id, offset: this.size, length: sealed.length });
    this.size += sealed.length;
    if (this.size >= this.ctx.options.packSize || this.entries.length >= MAX_PACK_ENTRIES) await this.cut();
  }

  /** Uploads the partial pack and waits for every upload. */
  async flush(): Promise<void> {
    await this.cut();
    while (this.running.size > 0) await Promise.all([...this.running]);
    if (this.failure) throw this.failure.error;
  }

  /** Drops the partial pack; waits for uploads already started (their packs stay, unreferenced, for gc). */
  async abandon(): Promise<void> {
    this.parts = [];
    this.entries = [];
    this.size = 0;
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private async cut(): Promise<void> {
    if (this.entries.length === 0) return;
    const entries = this.entries;
    const bytes = [...this.parts, encodeTrailer(entries)];
    this.parts = [];
    this.entries = [];
    this.size = 0;
    const slot = this.slots.acquire();
    this.waiting = slot;
    try {
      await slot;
    } finally {
      if (this.waiting === slot) this.waiting = null;
    }
    const task: Promise<void> = this.upload(bytes, entries).finally(() => {
      this.slots.release();
      this.running.delete(task);
    });
    this.running.add(task);
  }

  private async upload(bytes: readonly Uint8Array[], entries: readonly PackEntry[]): Promise<void> {
    const packId = newPackId();
    try {
      await this.ctx.storeSlots.run(() => this.ctx.store.put(packKey(packId), bytes));
      this.packsStored++;
      for (const b of bytes) this.ctx.codec.release(b); // stored: the chunks' slots are free again
      this.onStored(
        packId,
        entries.map((e) => [e.id, { pack: packId, offset: e.offset, length: e.length }] as const),
      );
    } catch (error) {
      this.failure ??= { error };
    }
  }
}
