// Group type bodies as Cinder's group type view trims them: group_specs only
// for those allowed to see them (admins, by Cinder's default policy).
import type { GroupTypeRow } from '../../../store/schema.js';
import { parseJson, type ViewContext } from './common.js';

export function groupTypeView(v: ViewContext, row: GroupTypeRow): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    name: row.name,
    description: row.description,
    is_public: row.is_public === 1,
  };
  if (v.isAdmin) body['group_specs'] = parseJson<Record<string, string | null>>(row.group_specs, {});
  return body;
}
