import { startSwift } from '../harness/swift.js';
const t0 = Date.now();
const s = await startSwift();
console.log('started in', Date.now() - t0, 'ms', s.endpoint, s.dir);
if (process.argv[2] === 'hold') await new Promise((r) => setTimeout(r, Number(process.argv[3] ?? 60000)));
await s.stop();
console.log('stopped');
