// Request-body validation with zod, turned into Cinder-style 400s that name the
// offending field, so every bad body is refused before anything is written.
import { z } from 'zod';
import { badRequest } from './errors.js';

export function parseBody<T extends z.ZodType>(schema: T, body: unknown, what = 'request body'): z.infer<T> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest(`Invalid input received: ${what} must be a JSON object.`);
  }
  const res = schema.safeParse(body);
  if (!res.success) {
    const issue = res.error.issues[0];
    const path = issue?.path.length ? issue.path.join('.') : what;
    throw badRequest(`Invalid input for field/attribute ${path}. ${issue?.message ?? 'invalid'}`);
  }
  return res.data;
}

/** Cinder accepts sizes as integers or integer strings ("1"). */
export const sizeGiB = z.union([
  z.number().int().min(1).max(2 ** 31),
  z.string().regex(/^\d+$/, 'must be an integer').transform(Number).pipe(z.number().int().min(1).max(2 ** 31)),
]);

export const nameField = z.string().max(255).nullable();
export const descriptionField = z.string().max(255).nullable();
export const metadataField = z
  .record(z.string().min(1).max(255), z.string().max(255))
  .refine((m) => Object.keys(m).length <= 128, 'too many metadata items');

export const uuidField = z.string().regex(/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i, 'must be a UUID');

export function isUuid(s: string): boolean {
  return uuidField.safeParse(s).success;
}

/** Cinder's boolean query/body parsing: true/false, yes/no, 1/0, on/off. */
export function parseBool(value: unknown, field: string): boolean {
  if (typeof value === 'boolean') return value;
  const s = String(value).trim().toLowerCase();
  if (['true', '1', 'yes', 'y', 'on', 't'].includes(s)) return true;
  if (['false', '0', 'no', 'n', 'off', 'f'].includes(s)) return false;
  throw badRequest(`Invalid input received: ${field} must be a boolean, got '${String(value)}'.`);
}
