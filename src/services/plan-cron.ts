// Protection-plan schedules: classic 5-field cron expressions evaluated in UTC.
// cron-parser also reads 6-field (seconds) expressions, @aliases and Jenkins'
// "H"; a plan takes none of them, so a schedule means the same to every
// operator and no scheduler fires more often than once a minute.
import { CronExpressionParser } from 'cron-parser';

/** Why `expr` is not a usable schedule, or null when it is. */
export function cronProblem(expr: string): string | null {
  const fields = expr.trim().split(/\s+/);
  if (expr.trim() === '' || fields.length !== 5) return `must have exactly 5 fields (minute hour day-of-month month day-of-week), got ${expr.trim() === '' ? 0 : fields.length}`;
  if (fields.some((f) => /(^|[^a-z])h($|[^a-z])/i.test(f))) return 'the "H" (hashed) form is not supported';
  try {
    // An expression that parses but never matches (Feb 30) fails on next().
    CronExpressionParser.parse(fields.join(' '), { tz: 'UTC', currentDate: new Date(0) }).next();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return null;
}

/** The first time the schedule fires strictly after `afterMs` (epoch ms, UTC). */
export function nextCronTime(expr: string, afterMs: number): number {
  const problem = cronProblem(expr);
  if (problem) throw new Error(`invalid schedule ${JSON.stringify(expr)}: ${problem}`);
  const it = CronExpressionParser.parse(expr.trim().split(/\s+/).join(' '), { tz: 'UTC', currentDate: new Date(afterMs) });
  const next = it.next().getTime();
  // cron-parser starts from the next whole second; keep the contract "strictly after".
  return next > afterMs ? next : it.next().getTime();
}
