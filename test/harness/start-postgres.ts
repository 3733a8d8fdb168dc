// Starts one PostgreSQL for the whole test run and writes its base URL to the
// file named by argv[2]; stops it on SIGTERM. Used by scripts/test-all.sh so
// every store suite shares one server (each still gets its own database).
import { writeFileSync } from 'node:fs';
import { startPostgres } from './postgres.js';

const out = process.argv[2];
if (!out) throw new Error('usage: start-postgres OUT_FILE');
const server = await startPostgres();
writeFileSync(out, server.baseUrl);
const stop = () => {
  server.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => undefined, 1 << 30);
