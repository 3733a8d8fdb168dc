// Key/value metadata shared by volumes and snapshots: one transaction reads the
// owner (with its project check), applies the change and writes it back.
import { notFound } from '../api/errors.js';
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { ServiceDeps } from './deps.js';

export type MetadataChange = 'merge' | 'replace' | { delete: string };

export interface MetadataOwner {
  readonly table: 'volumes' | 'snapshots';
  /** "Volume" / "Snapshot", for messages. */
  readonly label: string;
  /** Loads the row the caller may see, or throws its 404. */
  readonly load: (ex: Executor, id: string) => Promise<{ id: string; metadata: string }>;
}

export function applyMetadataChange(current: Readonly<Record<string, string>>, meta: Readonly<Record<string, string>>, change: MetadataChange, ownerLabel: string, ownerId: string): Record<string, string> {
  if (change === 'replace') return { ...meta };
  if (change === 'merge') return { ...current, ...meta };
  if (!(change.delete in current)) throw notFound(`${ownerLabel} ${ownerId} has no metadata with key ${change.delete}.`);
  const next = { ...current };
  delete next[change.delete];
  return next;
}

export async function changeMetadata(deps: ServiceDeps, owner: MetadataOwner, id: string, meta: Record<string, string>, change: MetadataChange): Promise<Record<string, string>> {
  return deps.store.transaction(async (trx) => {
    const row = await owner.load(trx, id);
    const next = applyMetadataChange(JSON.parse(row.metadata) as Record<string, string>, meta, change, owner.label, id);
    await trx.updateTable(owner.table).set({ metadata: JSON.stringify(next), updated_at: nowIso() }).where('id', '=', id).execute();
    return next;
  });
}
