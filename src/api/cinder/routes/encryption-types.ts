// /types/{id}/encryption (Cinder's volume_type_encryption extension): admin
// only, as Cinder's default policy. Stored and shown only: Bulwark refuses to
// create volumes of an encrypted type.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createEncryption, deleteEncryption, getEncryption, updateEncryption } from '../../../services/encryption-types.js';
import { notFound } from '../../errors.js';
import { parseBody } from '../../validate.js';
import { requireAdmin } from '../policy.js';
import type { CinderPluginOptions } from '../plugin.js';
import { scopeOf } from '../scope.js';
import { encryptionView } from '../views/admin-extras.js';

const DB_MAX_INT = 0x7fffffff;

/** parameter_types.key_size: an integer or an integer string, or null. */
const keySize = z
  .union([
    z.number().int(),
    z.string().regex(/^-?\d+$/, 'key_size must be an integer.').transform(Number),
  ])
  .pipe(z.number().int().min(0).max(DB_MAX_INT))
  .nullable();

// Cinder lets unknown keys through to its model; here they are refused, so a
// typo never reads as accepted.
const specFields = {
  key_size: keySize.optional(),
  provider: z.string().max(255),
  control_location: z.enum(['front-end', 'back-end']),
  cipher: z.string().max(255).nullable().optional(),
};

const createSchema = z.object({ encryption: z.object(specFields).strict() }).strict();
const updateSchema = z
  .object({
    encryption: z
      .object({ ...specFields, provider: specFields.provider.optional(), control_location: specFields.control_location.optional() })
      .strict(),
  })
  .strict();

const params = (req: FastifyRequest) => req.params as { id: string; key?: string };

export function registerEncryptionTypeRoutes(app: FastifyInstance, opts: CinderPluginOptions): void {
  const { store } = opts.deps;
  const db = store.db;

  app.get('/types/:id/encryption', async (req) => {
    requireAdmin(scopeOf(req));
    const row = await getEncryption(db, params(req).id);
    // No specs: an empty object, which tempest reads as "not encrypted".
    return row ? encryptionView(row) : {};
  });

  app.post('/types/:id/encryption', async (req) => {
    requireAdmin(scopeOf(req));
    const spec = parseBody(createSchema, req.body).encryption;
    const row = await createEncryption(store, params(req).id, spec);
    // Cinder echoes the request, plus the ids its database call added to it.
    return { encryption: { ...spec, volume_type_id: row.volume_type_id, encryption_id: row.encryption_id } };
  });

  app.get('/types/:id/encryption/:key', async (req) => {
    requireAdmin(scopeOf(req));
    const { id, key = '' } = params(req);
    const row = await getEncryption(db, id);
    const view: Record<string, unknown> = row ? encryptionView(row) : {};
    if (!(key in view)) throw notFound(`Volume type encryption for type ${id} does not exist.`);
    return { [key]: view[key] };
  });

  // The key in the URL is ignored, as in Cinder (clients send "provider").
  app.put('/types/:id/encryption/:key', async (req) => {
    requireAdmin(scopeOf(req));
    const spec = parseBody(updateSchema, req.body).encryption;
    await updateEncryption(store, params(req).id, spec);
    return { encryption: spec };
  });

  app.delete('/types/:id/encryption/:key', async (req, reply) => {
    requireAdmin(scopeOf(req));
    await deleteEncryption(store, params(req).id);
    return reply.code(202).send();
  });
}
