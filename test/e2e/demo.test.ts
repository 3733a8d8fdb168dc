// README command 1 runs `bulwark demo`: it must go through both chapters
// (volumes and points in time; VMs protected by a plan) with every check passing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { guestUnsupportedReason } from '../harness/guest.js';

const run = promisify(execFile);
const BIN = resolve(new URL('../../../bin/bulwark.js', import.meta.url).pathname);

describe('bulwark demo', { skip: guestUnsupportedReason() ?? false, timeout: 600_000 }, () => {
  it('walks through volumes, snapshots, clones and a protected two-VM application', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-'));
    try {
      const { stdout } = await run(process.execPath, [BIN, 'demo', '--data-dir', dir], { timeout: 540_000, maxBuffer: 16 * 1024 * 1024 });
      assert.doesNotMatch(stdout, /✗/);
      assert.match(stdout, /== version 1 ✓/);
      assert.match(stdout, /== version 3 ✓/);
      assert.match(stdout, /freeze order app → db, thaw order db → app/);
      assert.equal((stdout.match(/e2fsck clean, no journal recovery ✓; \d+ records, complete ✓/g) ?? []).length, 2);
      assert.match(stdout, /Done/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
