// The minimal image service's business logic (Glance v2 semantics): records,
// visibility, JSON-patch updates, uploads streamed to disk and inspected before
// an image may become active, and the hooks Cinder's image operations use.
// Every status change is a compare-and-swap on the images row.
import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ApiError, badRequest, conflict, forbidden, notFound } from '../api/errors.js';
import { isUuid } from '../api/validate.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { ImageTable } from '../store/schema.js';
import type { Selectable, Updateable } from 'kysely';
import { CONTAINER_FORMATS, DISK_FORMATS, inspectImageHeader } from '../images/inspect.js';
import { qemuImgInfo } from '../images/qemu-img.js';
import { finalPath, readHeader, receiveToFile, TooLargeError } from '../images/receive.js';
import type { Caller, ServiceDeps } from './deps.js';
import { newId } from './ids.js';

export type ImageRow = Selectable<ImageTable>;

export const VISIBILITIES = ['public', 'private', 'shared', 'community'] as const;
export const IMAGE_STATUSES = ['queued', 'saving', 'active', 'killed', 'deleted', 'pending_delete', 'deactivated', 'uploading', 'importing'] as const;

/** Attributes Glance computes itself: a request may not set them. */
const READ_ONLY = new Set(['id', 'status', 'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'created_at', 'updated_at', 'self', 'file', 'schema', 'direct_url', 'locations', 'location', 'os_hidden_at']);
/** Base attributes (not extra properties); they can be replaced but never removed. */
const CORE = new Set(['name', 'disk_format', 'container_format', 'visibility', 'protected', 'min_disk', 'min_ram', 'tags', 'owner', 'os_hidden']);
const MAX_PROPERTIES = 128;

export const imageProperties = (row: ImageRow): Record<string, string> => JSON.parse(row.properties) as Record<string, string>;
export const imageTags = (row: ImageRow): string[] => JSON.parse(row.tags) as string[];

export function canSee(row: ImageRow, caller: Caller): boolean {
  return caller.isAdmin || row.owner === caller.projectId || row.visibility === 'public' || row.visibility === 'community';
}

export async function getImage(ex: Executor, caller: Caller, id: string): Promise<ImageRow> {
  const row = isUuid(id) ? await ex.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst() : undefined;
  if (!row || row.status === 'deleted' || !canSee(row, caller)) throw notFound(`No image found with ID ${id}`);
  return row;
}

function requireOwner(row: ImageRow, caller: Caller): void {
  if (!caller.isAdmin && row.owner !== caller.projectId) throw forbidden(`You are not permitted to modify image ${row.id}.`);
}

/** Compare-and-swap on an image's status (the images table has no casStatus of its own). */
export async function casImage(ex: Executor, id: string, expected: readonly string[], values: Updateable<ImageTable>): Promise<boolean> {
  const res = await ex.updateTable('images').set({ ...values, updated_at: nowIso() }).where('id', '=', id).where('status', 'in', [...expected]).executeTakeFirst();
  return res.numUpdatedRows === 1n;
}

// ---- validation of the writable attributes -----------------------------------

const nonNegInt = (v: unknown, field: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31) throw badRequest(`Invalid value for ${field}: must be a non-negative integer.`);
  return v;
};

function checkFormats(disk: string | null, container: string | null): void {
  if (disk !== null && !(DISK_FORMATS as readonly string[]).includes(disk)) throw badRequest(`Invalid disk format '${disk}' for image: supported formats are ${DISK_FORMATS.join(', ')}.`);
  if (container !== null && !(CONTAINER_FORMATS as readonly string[]).includes(container)) throw badRequest(`Invalid container format '${container}' for image: supported formats are ${CONTAINER_FORMATS.join(', ')}.`);
  // As Glance: a kernel or ramdisk container holds exactly that kind of disk.
  if ((container === 'aki' || container === 'ari') && disk !== null && disk !== container) throw badRequest(`Invalid mix of disk and container formats: container ${container} needs disk format ${container}.`);
}

/** Applies one attribute to a pending row; the caller has checked it is not read-only. */
function setAttribute(row: ImageRow, key: string, value: unknown, caller: Caller): void {
  switch (key) {
    case 'name':
      if (value !== null && (typeof value !== 'string' || value.length > 255)) throw badRequest('Invalid value for name: must be a string of at most 255 characters.');
      row.name = value as string | null;
      return;
    case 'disk_format':
    case 'container_format':
      if (value !== null && typeof value !== 'string') throw badRequest(`Invalid value for ${key}.`);
      if (row.status !== 'queued' && row[key] !== value) throw forbidden(`Attribute ${key} can be only replaced for a queued image.`);
      row[key] = value as string | null;
      return;
    case 'visibility':
      if (typeof value !== 'string' || !(VISIBILITIES as readonly string[]).includes(value)) throw badRequest(`Invalid visibility value: ${String(value)}`);
      if (value === 'public' && !caller.isAdmin) throw forbidden('You are not authorized to publicize images.');
      row.visibility = value;
      return;
    case 'protected':
      if (typeof value !== 'boolean') throw badRequest('Invalid value for protected: must be a boolean.');
      row.protected = value ? 1 : 0;
      return;
    case 'min_disk':
    case 'min_ram':
      row[key] = nonNegInt(value, key);
      return;
    case 'tags':
      if (!Array.isArray(value) || value.some((t) => typeof t !== 'string' || t.length > 255) || value.length > 128) throw badRequest('Invalid value for tags: must be a list of strings.');
      row.tags = JSON.stringify([...new Set(value as string[])]);
      return;
    case 'owner':
      if (!caller.isAdmin) throw forbidden("Attribute 'owner' is reserved.");
      if (typeof value !== 'string' || value === '') throw badRequest('Invalid value for owner.');
      row.owner = value;
      return;
    case 'os_hidden':
      if (typeof value !== 'boolean') throw badRequest('Invalid value for os_hidden: must be a boolean.');
      return;
    default: {
      if (key.length === 0 || key.length > 255) throw badRequest('Property names must be 1 to 255 characters.');
      if (typeof value !== 'string') throw badRequest(`Invalid value for property ${key}: extra properties must be strings.`);
      if (value.length > 65535) throw badRequest(`Property ${key} is too long.`);
      const props = imageProperties(row);
      props[key] = value;
      if (Object.keys(props).length > MAX_PROPERTIES) throw new ApiError(413, `The number of image properties exceeds ${MAX_PROPERTIES}.`);
      row.properties = JSON.stringify(props);
    }
  }
}

function readOnlyError(key: string): ApiError {
  return forbidden(`Attribute '${key}' is read-only.`);
}

// ---- create / list / update / delete ----------------------------------------

export async function createImage(deps: ServiceDeps, caller: Caller, body: Record<string, unknown>): Promise<ImageRow> {
  const now = nowIso();
  const id = body['id'];
  if (id !== undefined && (typeof id !== 'string' || !isUuid(id))) throw badRequest('Invalid value for id: must be a UUID.');
  const row: ImageRow = {
    id: typeof id === 'string' ? id.toLowerCase() : newId(),
    owner: caller.projectId,
    name: null,
    status: 'queued',
    disk_format: null,
    container_format: null,
    visibility: 'shared',
    protected: 0,
    min_disk: 0,
    min_ram: 0,
    size: null,
    virtual_size: null,
    checksum: null,
    os_hash_algo: null,
    os_hash_value: null,
    properties: '{}',
    tags: '[]',
    location: null,
    created_at: now,
    updated_at: now,
  };
  for (const [key, value] of Object.entries(body)) {
    if (key === 'id') continue;
    if (READ_ONLY.has(key)) throw readOnlyError(key);
    setAttribute(row, key, value, caller);
  }
  checkFormats(row.disk_format, row.container_format);
  return deps.store.transaction(async (trx) => {
    const clash = await trx.selectFrom('images').select('id').where('id', '=', row.id).executeTakeFirst();
    if (clash) throw conflict(`Image with identifier ${row.id} already exists!`);
    await trx.insertInto('images').values(row).execute();
    return row;
  });
}

export interface ImageListQuery {
  readonly limit: number;
  readonly marker: string | null;
  readonly sortKey: string;
  readonly sortDir: 'asc' | 'desc';
  readonly filters: Record<string, string>;
}

const SORT_KEYS = ['created_at', 'updated_at', 'name', 'id', 'status', 'size', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'visibility', 'owner'] as const;
const KNOWN_FILTERS = new Set(['name', 'status', 'visibility', 'owner', 'disk_format', 'container_format', 'protected', 'tag', 'id', 'size_min', 'size_max', 'os_hidden', 'member_status']);

export function parseImageListQuery(query: Record<string, string | string[] | undefined>): ImageListQuery {
  const one = (k: string): string | undefined => {
    const v = query[k];
    return Array.isArray(v) ? v[v.length - 1] : v;
  };
  const limitRaw = one('limit');
  let limit = 25;
  if (limitRaw !== undefined) {
    if (!/^\d+$/.test(limitRaw)) throw badRequest('limit param must be an integer');
    limit = Math.min(Number(limitRaw), 1000);
  }
  const sortKey = one('sort_key') ?? 'created_at';
  if (!(SORT_KEYS as readonly string[]).includes(sortKey)) throw badRequest(`Invalid sort key: ${sortKey}.`);
  const sortDir = one('sort_dir') ?? 'desc';
  if (sortDir !== 'asc' && sortDir !== 'desc') throw badRequest(`Invalid sort direction: ${sortDir}`);
  const filters: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) {
    if (['limit', 'marker', 'sort_key', 'sort_dir', 'sort'].includes(k) || v === undefined) continue;
    filters[k] = Array.isArray(v) ? v[v.length - 1]! : v;
  }
  if (filters['visibility'] !== undefined && !['public', 'private', 'shared', 'community', 'all'].includes(filters['visibility'])) throw badRequest(`Invalid visibility value: ${filters['visibility']}`);
  return { limit, marker: one('marker') ?? null, sortKey, sortDir, filters };
}

/** Glance's "in:a,b" operator, or an exact match. */
function matches(actual: string | null, wanted: string): boolean {
  if (wanted.startsWith('in:')) return wanted.slice(3).split(',').some((w) => w === actual);
  return actual === wanted;
}

function listedFor(row: ImageRow, caller: Caller, visibility: string | undefined): boolean {
  if (row.status === 'deleted') return false;
  if (visibility === undefined) {
    // Glance's default listing: public images and one's own; community images only on request.
    if (row.visibility === 'community') return row.owner === caller.projectId;
    return caller.isAdmin || row.visibility === 'public' || row.owner === caller.projectId;
  }
  if (!canSee(row, caller)) return false;
  return visibility === 'all' || row.visibility === visibility;
}

export async function listImages(ex: Executor, caller: Caller, q: ImageListQuery): Promise<{ rows: ImageRow[]; next: string | null }> {
  const all = (await ex.selectFrom('images').selectAll().execute()).filter((r) => listedFor(r, caller, q.filters['visibility']));
  const f = q.filters;
  const rows = all.filter((r) => {
    for (const [k, v] of Object.entries(f)) {
      switch (k) {
        case 'visibility':
        case 'member_status':
        case 'os_hidden':
          break;
        case 'name':
        case 'status':
        case 'owner':
        case 'disk_format':
        case 'container_format':
        case 'id':
          if (!matches(r[k], v)) return false;
          break;
        case 'protected':
          if ((r.protected === 1 ? 'true' : 'false') !== v.toLowerCase()) return false;
          break;
        case 'tag':
          if (!imageTags(r).includes(v)) return false;
          break;
        case 'size_min':
          if (r.size === null || r.size < Number(v)) return false;
          break;
        case 'size_max':
          if (r.size === null || r.size > Number(v)) return false;
          break;
        default:
          if (!KNOWN_FILTERS.has(k) && !matches(imageProperties(r)[k] ?? null, v)) return false;
      }
    }
    return true;
  });
  const key = q.sortKey as keyof ImageRow;
  const dir = q.sortDir === 'asc' ? 1 : -1;
  const cmp = (a: ImageRow, b: ImageRow): number => {
    const x = a[key];
    const y = b[key];
    if (x !== y) {
      if (x === null) return -dir;
      if (y === null) return dir;
      return (x < y ? -1 : 1) * dir;
    }
    return (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) * dir;
  };
  rows.sort(cmp);
  let start = 0;
  if (q.marker !== null) {
    const idx = rows.findIndex((r) => r.id === q.marker);
    if (idx < 0) throw badRequest(`Invalid marker. Image ${q.marker} could not be found.`);
    start = idx + 1;
  }
  const page = rows.slice(start, start + q.limit);
  const more = start + q.limit < rows.length && page.length > 0;
  return { rows: page, next: more ? page[page.length - 1]!.id : null };
}

export interface PatchOp {
  readonly op: 'add' | 'replace' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

export function parsePatch(body: unknown): PatchOp[] {
  if (!Array.isArray(body)) throw badRequest('Request body must be a JSON array of operation objects.');
  return body.map((raw: unknown) => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('Operations must be JSON objects.');
    const o = raw as Record<string, unknown>;
    const op = o['op'];
    if (op !== 'add' && op !== 'replace' && op !== 'remove') throw badRequest(`Invalid operation: ${String(op)}; use add, replace or remove.`);
    if (typeof o['path'] !== 'string' || !/^\/[^/]+$/.test(o['path'])) throw badRequest(`Invalid JSON pointer for this resource: '${String(o['path'])}'`);
    if (op !== 'remove' && !('value' in o)) throw badRequest(`Operation "${op}" requires a member named "value".`);
    return { op, path: o['path'], value: o['value'] };
  });
}

const pointerKey = (path: string): string => path.slice(1).replace(/~1/g, '/').replace(/~0/g, '~');

export async function updateImage(deps: ServiceDeps, caller: Caller, id: string, ops: readonly PatchOp[]): Promise<ImageRow> {
  return deps.store.transaction(async (trx) => {
    const current = await getImage(trx, caller, id);
    requireOwner(current, caller);
    const row: ImageRow = { ...current };
    for (const op of ops) {
      const key = pointerKey(op.path);
      if (READ_ONLY.has(key)) throw readOnlyError(key);
      const isCore = CORE.has(key);
      if (op.op === 'remove') {
        if (isCore) throw forbidden(`Attribute '${key}' cannot be removed.`);
        const props = imageProperties(row);
        if (!(key in props)) throw conflict(`Property ${key} does not exist.`);
        delete props[key];
        row.properties = JSON.stringify(props);
        continue;
      }
      if (op.op === 'replace' && !isCore && !(key in imageProperties(row))) throw conflict(`Property ${key} does not exist.`);
      setAttribute(row, key, op.value, caller);
    }
    checkFormats(row.disk_format, row.container_format);
    const { id: _id, status, ...values } = row;
    void _id;
    // CAS on the status read: an upload finishing meanwhile must not be overwritten with a stale row.
    if (!(await casImage(trx, id, [status], { ...values, updated_at: nowIso() }))) throw conflict(`Image ${id} changed concurrently; try again.`);
    return getImage(trx, caller, id);
  });
}

export async function deleteImage(deps: ServiceDeps, caller: Caller, id: string): Promise<void> {
  const row = await deps.store.transaction(async (trx) => {
    const r = await getImage(trx, caller, id);
    requireOwner(r, caller);
    if (r.protected === 1) throw forbidden(`Image ${id} is protected and cannot be deleted.`);
    await trx.deleteFrom('images').where('id', '=', id).where('protected', '=', 0).execute();
    return r;
  });
  // The row is gone first: an upload still streaming loses its CAS and removes its own file.
  if (row.location) await unlink(row.location).catch(() => undefined);
}

/** Where image data lives (loadConfig makes it absolute; DATA_DIR/images by default). */
export const imageDirectory = (deps: ServiceDeps): string => deps.config.images.directory ?? join(deps.config.dataDir, 'images');

// ---- data -------------------------------------------------------------------

export async function uploadImageData(deps: ServiceDeps, caller: Caller, id: string, data: Readable, contentLength: number | null): Promise<ImageRow> {
  const { maxSizeBytes } = deps.config.images;
  const directory = imageDirectory(deps);
  const row = await getImage(deps.store.db, caller, id);
  requireOwner(row, caller);
  if (row.status !== 'queued') throw conflict(`Image status transition from ${row.status} to saving is not allowed`);
  if (!row.disk_format || !row.container_format) throw badRequest('Properties disk_format, container_format must be set prior to saving data.');
  if (contentLength !== null && contentLength > maxSizeBytes) throw new ApiError(413, `Image exceeds the storage quota: the upload is larger than ${maxSizeBytes} bytes.`);
  if (!(await casImage(deps.store.db, id, ['queued'], { status: 'saving' }))) throw conflict(`Image ${id} is no longer queued.`);
  const diskFormat = row.disk_format;
  let placed: string | null = null;
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const got = await receiveToFile(data, directory, id, maxSizeBytes).catch((err: unknown): never => {
      if (err instanceof TooLargeError) throw new ApiError(413, `Image exceeds the storage quota: ${err.message}.`);
      throw badRequest(`The image data could not be received: ${err instanceof Error ? err.message : String(err)}`);
    });
    try {
      const inspected = inspectImageHeader(await readHeader(got.path), diskFormat);
      if (inspected.problem) throw badRequest(`Image data does not match disk_format ${diskFormat}: ${inspected.problem}.`);
      let virtualSize = got.size;
      if (diskFormat === 'raw' || diskFormat === 'qcow2') {
        // Confirm with QEMU itself, told the format: never let it probe.
        const info = await qemuImgInfo(got.path, diskFormat).catch((err: unknown): never => {
          throw badRequest(`Image data is not valid ${diskFormat}: ${err instanceof Error ? err.message.split('\n').slice(-2).join(' ') : String(err)}`);
        });
        if (info.backingFile) throw badRequest('qcow2 images with a backing file are refused.');
        if (info.dataFile) throw badRequest('qcow2 images with an external data file are refused.');
        // qemu-img rounds a raw file up to whole sectors; the byte count is the truth for raw.
        virtualSize = diskFormat === 'raw' ? got.size : info.virtualSizeBytes;
      }
      placed = finalPath(directory, id);
      await rename(got.path, placed);
      const ok = await casImage(deps.store.db, id, ['saving'], {
        status: 'active', size: got.size, virtual_size: virtualSize, checksum: got.md5, os_hash_algo: 'sha512', os_hash_value: got.sha512, location: placed,
      });
      if (!ok) throw conflict(`Image ${id} was deleted or changed during the upload.`);
      placed = null;
    } finally {
      await unlink(got.path).catch(() => undefined);
    }
  } catch (err) {
    if (placed) await unlink(placed).catch(() => undefined);
    // Back to queued so the owner can upload again; nothing of the data is kept.
    await casImage(deps.store.db, id, ['saving'], { status: 'queued' });
    throw err;
  }
  return getImage(deps.store.db, caller, id);
}

export async function imageDataFor(ex: Executor, caller: Caller, id: string): Promise<ImageRow & { location: string } | null> {
  const row = await getImage(ex, caller, id);
  if (row.status === 'deactivated' && !caller.isAdmin) throw forbidden('The requested image has been deactivated. Image data download is forbidden.');
  if (row.status !== 'active' || !row.location) return null;
  return { ...row, location: row.location };
}

// ---- for Cinder -------------------------------------------------------------

/** Cinder's volume_image_metadata for a volume made from (or uploaded to) an image. */
export function volumeImageMetadata(row: ImageRow): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(imageProperties(row))) meta[k] = v;
  Object.assign(meta, {
    image_id: row.id,
    image_name: row.name ?? '',
    checksum: row.checksum ?? '',
    disk_format: row.disk_format ?? '',
    container_format: row.container_format ?? '',
    size: String(row.size ?? 0),
    min_disk: String(row.min_disk),
    min_ram: String(row.min_ram),
  });
  return meta;
}

/** The checks of Cinder's create-from-image: the image may be used to fill a volume of `sizeGiB`. */
export async function imageForVolume(ex: Executor, caller: Caller, ref: string, sizeGiB: number | undefined): Promise<{ image: ImageRow; sizeGiB: number }> {
  const image = await getImage(ex, caller, ref).catch((err: unknown): never => {
    if (err instanceof ApiError && err.status === 404) throw badRequest(`Invalid image identifier or unable to access requested image: ${ref}.`);
    throw err;
  });
  if (image.status !== 'active' || !image.location) throw badRequest(`Invalid image: image ${ref} is not active (status ${image.status}).`);
  if (image.disk_format !== 'raw' && image.disk_format !== 'qcow2') throw badRequest(`Invalid image: disk format ${image.disk_format ?? 'none'} cannot be written to a volume (raw or qcow2 only).`);
  const GiB = 1024 ** 3;
  const virtual = image.virtual_size ?? image.size ?? 0;
  const needed = Math.max(Math.ceil(virtual / GiB), image.min_disk, 1);
  const size = sizeGiB ?? needed;
  if (virtual > size * GiB) throw badRequest(`Invalid input received: Size of specified image ${Math.ceil(virtual / GiB)}GB is larger than volume size ${size}GB.`);
  if (image.min_disk > size) throw badRequest(`Invalid input received: Volume size ${size}GB cannot be smaller than the image minDisk size ${image.min_disk}GB.`);
  return { image, sizeGiB: size };
}

/** The queued image a volume upload fills (os-volume_upload_image), inside the caller's transaction. */
export async function insertImageForVolume(trx: Executor, caller: Caller, input: { name: string; diskFormat: string; containerFormat: string; visibility: string; protected: boolean; properties: Record<string, string>; minDisk: number }): Promise<ImageRow> {
  if (input.diskFormat !== 'raw' && input.diskFormat !== 'qcow2') throw badRequest(`Invalid disk-format '${input.diskFormat}' specified. Allowed disk-formats are raw, qcow2.`);
  if (input.containerFormat !== 'bare') throw badRequest(`Invalid container-format '${input.containerFormat}' specified. Allowed container-formats are bare.`);
  if (!(VISIBILITIES as readonly string[]).includes(input.visibility)) throw badRequest(`Invalid visibility value: ${input.visibility}`);
  if (input.visibility === 'public' && !caller.isAdmin) throw forbidden('You are not authorized to publicize images.');
  const now = nowIso();
  const row: ImageRow = {
    id: newId(), owner: caller.projectId, name: input.name, status: 'queued', disk_format: input.diskFormat, container_format: input.containerFormat,
    visibility: input.visibility, protected: input.protected ? 1 : 0, min_disk: input.minDisk, min_ram: 0, size: null, virtual_size: null, checksum: null,
    os_hash_algo: null, os_hash_value: null, properties: JSON.stringify(input.properties), tags: '[]', location: null, created_at: now, updated_at: now,
  };
  await trx.insertInto('images').values(row).execute();
  return row;
}
