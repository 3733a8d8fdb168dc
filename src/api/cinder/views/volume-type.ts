// Volume type bodies. Cinder builds them with three different view builders,
// and tempest's schemas (additionalProperties: false) pin each one down:
// show/list (v3 view + the type-access extension), create (the legacy view +
// the extension) and update (the legacy view alone).
import type { VolumeTypeRow } from '../../../store/schema.js';
import { extraSpecsOf, visibleExtraSpecs } from '../../../services/type-admin.js';
import type { CinderScope } from '../scope.js';

/** GET /types and GET /types/{id}. */
export function volumeTypeView(s: CinderScope, row: VolumeTypeRow): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: row.id,
    name: row.name,
    is_public: row.is_public === 1,
    description: row.description,
    // access_types_extra_specs is granted to every reader; the sensitive keys
    // only to admins (types_extra_specs:read_sensitive).
    extra_specs: visibleExtraSpecs(extraSpecsOf(row), s.isAdmin),
  };
  // access_types_qos_specs_id is admin-only.
  if (s.isAdmin) body['qos_specs_id'] = row.qos_specs_id;
  // volume_type_access is "system admin or project member": readers do not get it.
  if (!s.isReader) body['os-volume-type-access:is_public'] = row.is_public === 1;
  return body;
}

/** POST /types (admin only, so every spec is shown): the update view plus the
 *  type-access extension's flag. */
export function createdVolumeTypeView(row: VolumeTypeRow): Record<string, unknown> {
  return { ...updatedVolumeTypeView(row), 'os-volume-type-access:is_public': row.is_public === 1 };
}

/** PUT /types/{id}: the type-access extension does not extend update. */
export function updatedVolumeTypeView(row: VolumeTypeRow): Record<string, unknown> {
  return {
    id: row.id,
    name: row.name,
    is_public: row.is_public === 1,
    extra_specs: extraSpecsOf(row),
    description: row.description,
  };
}
