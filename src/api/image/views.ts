// Glance v2's image document: base attributes, then extra properties flattened
// into the top level, as glance's ImageSchema renders them.
import type { ImageRow } from '../../services/images.js';
import { imageProperties, imageTags } from '../../services/images.js';

/** Glance's timestamps: ISO 8601 in UTC, seconds precision, "Z". */
export const glanceTime = (iso: string | null): string | null => (iso ? `${iso.slice(0, 19)}Z` : null);

export function imageView(row: ImageRow): Record<string, unknown> {
  return {
    ...imageProperties(row),
    id: row.id,
    name: row.name,
    status: row.status,
    visibility: row.visibility,
    protected: row.protected === 1,
    os_hidden: false,
    owner: row.owner,
    checksum: row.checksum,
    os_hash_algo: row.os_hash_algo,
    os_hash_value: row.os_hash_value,
    size: row.size,
    virtual_size: row.virtual_size,
    min_disk: row.min_disk,
    min_ram: row.min_ram,
    disk_format: row.disk_format,
    container_format: row.container_format,
    tags: imageTags(row),
    created_at: glanceTime(row.created_at),
    updated_at: glanceTime(row.updated_at ?? row.created_at),
    self: `/v2/images/${row.id}`,
    file: `/v2/images/${row.id}/file`,
    schema: '/v2/schemas/image',
  };
}

const str = { type: 'string' } as const;
const nullableStr = { type: ['null', 'string'] } as const;

/** Enough of Glance's image schema for clients that fetch it (glanceclient builds its models from it). */
export function imageSchema(): Record<string, unknown> {
  return {
    name: 'image',
    additionalProperties: { type: 'string' },
    properties: {
      id: { ...str, pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$' },
      name: { ...nullableStr, maxLength: 255 },
      status: { ...str, readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] },
      visibility: { ...str, enum: ['community', 'public', 'private', 'shared'] },
      protected: { type: 'boolean' },
      os_hidden: { type: 'boolean' },
      checksum: { ...nullableStr, readOnly: true, maxLength: 32 },
      os_hash_algo: { ...nullableStr, readOnly: true, maxLength: 64 },
      os_hash_value: { ...nullableStr, readOnly: true, maxLength: 128 },
      owner: { ...nullableStr, maxLength: 255 },
      size: { type: ['null', 'integer'], readOnly: true },
      virtual_size: { type: ['null', 'integer'], readOnly: true },
      container_format: { type: ['null', 'string'], enum: [null, 'bare', 'aki', 'ari'] },
      disk_format: { type: ['null', 'string'], enum: [null, 'raw', 'qcow2', 'aki', 'ari'] },
      created_at: { ...str, readOnly: true },
      updated_at: { ...str, readOnly: true },
      tags: { type: 'array', items: { ...str, maxLength: 255 } },
      min_ram: { type: 'integer' },
      min_disk: { type: 'integer' },
      self: { ...str, readOnly: true },
      file: { ...str, readOnly: true },
      schema: { ...str, readOnly: true },
      kernel_id: { ...nullableStr, is_base: false },
      ramdisk_id: { ...nullableStr, is_base: false },
      os_command_line: { ...str, is_base: false },
    },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

export function imagesSchema(): Record<string, unknown> {
  return {
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema() },
      schema: { type: 'string' },
      first: { type: 'string' },
      next: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}
