// The body of POST /v3/auth/tokens, as keystoneauth, keystoneclient and tempest
// send it. Unknown keys are ignored (not rejected), as keystone does, because
// clients add fields (e.g. "OS-TRUST:trust", "system") we simply do not honour.
import { z } from 'zod';

import { badRequest } from './errors.js';

const ref = z.object({
  id: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
});

const scopedRef = ref.extend({ domain: ref.optional() });

const authBodySchema = z.object({
  auth: z.object({
    identity: z.object({
      methods: z.array(z.string()).min(1),
      password: z.object({ user: scopedRef.extend({ password: z.string() }) }).optional(),
      token: z.object({ id: z.string().min(1) }).optional(),
    }),
    scope: z
      .union([
        z.literal('unscoped'),
        z.object({
          project: scopedRef.optional(),
          domain: ref.optional(),
          system: z.unknown().optional(),
          'OS-TRUST:trust': z.unknown().optional(),
        }),
      ])
      .optional(),
  }),
});

export type AuthBody = z.infer<typeof authBodySchema>;
export type ScopedRef = z.infer<typeof scopedRef>;

export function parseAuthBody(body: unknown): AuthBody {
  const parsed = authBodySchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.join('.') : 'auth';
    throw badRequest(`Invalid input for field '${field}': ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
