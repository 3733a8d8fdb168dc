// Entry of the freeze watchdog process: `node freeze-watchdog-main.js DIR`
// (spawned detached by ensureWatchdog; see freeze-watchdog.ts).
import { runWatchdog } from './freeze-watchdog.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: freeze-watchdog-main.js INSTANCE_DIR\n');
  process.exit(2);
}
runWatchdog(dir).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`freeze watchdog failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
