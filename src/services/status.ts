// Compare-and-swap status changes: an update names the statuses it expects to
// find and changes nothing (returns false) when the row has moved on.
import type { Executor } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { Database } from '../store/schema.js';
import type { Updateable } from 'kysely';

type StatusTable = 'volumes' | 'snapshots' | 'groups' | 'group_snapshots' | 'attachments' | 'backups';

export async function casStatus<T extends StatusTable>(
  ex: Executor,
  table: T,
  id: string,
  expected: readonly string[],
  values: Updateable<Database[T]> & { status?: string },
): Promise<boolean> {
  const res = await ex
    .updateTable(table as 'volumes')
    .set({ ...(values as Updateable<Database['volumes']>), updated_at: nowIso() })
    .where('id', '=', id)
    .where('status', 'in', [...expected])
    .executeTakeFirst();
  return res.numUpdatedRows === 1n;
}
