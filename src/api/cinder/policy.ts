// Cinder's default policy, reduced to the three personas it distinguishes:
// admin (everything, every project), member (read and write its project),
// reader (read its project).
import { forbidden } from '../errors.js';
import type { CinderScope } from './scope.js';

export function requireAdmin(s: CinderScope): void {
  if (!s.isAdmin) throw forbidden();
}

export function requireWriter(s: CinderScope): void {
  if (s.isReader) throw forbidden();
}
