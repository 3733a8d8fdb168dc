// A damaged backup repository: one stored chunk has flipped bytes. verify names
// that chunk and exactly the backups that need it (a full and the incremental
// inheriting it, not an unrelated backup); restoring an affected backup leaves
// the volume in error_restoring and the backup available; a backup role whose
// key file does not open the repository refuses to start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyFilePath, repositoryUrl } from '../../src/roles/backup/repository.js';
import { startRoles } from '../../src/roles/runtime.js';
import { deploy, testConfig, type Deployment } from '../harness/aio.js';
import { chunkFiles, createBackup, MiB, newChunks, restoreToNew, volumeHash, writeAt } from './backup-helpers.js';
import { createVolume } from './helpers.js';

interface VerifyBody {
  verify: { checked: number; backups: string[]; damaged: { chunk_id: string; problem: string; backups: string[] }[]; unreadable: unknown[] };
}

describe('backup repository integrity', () => {
  let d: Deployment | undefined;
  const scratch: string[] = [];
  before(async () => {
    d = await deploy();
  });
  after(async () => {
    await d?.stop();
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it('verify names a corrupt chunk and the backups that need it; restoring one fails cleanly', async () => {
    const s = d!.member;
    const admin = d!.admin;
    const repoRoot = repositoryUrl(d!.config).slice('file://'.length);

    const vol = await createVolume(s, { size: 1, name: 'damaged' });
    await writeAt(s, vol, [{ offset: 0, data: randomBytes(MiB) }]);
    const s0 = chunkFiles(repoRoot);
    const full = await createBackup(s, { volume_id: vol, name: 'full' });
    const s1 = chunkFiles(repoRoot);
    const fullChunks = newChunks(s0, s1);
    assert.equal(fullChunks.length, 1, 'the full backup stored one chunk (the only allocated MiB)');
    await writeAt(s, vol, [{ offset: 10 * MiB, data: randomBytes(MiB) }]);
    const incr = await createBackup(s, { volume_id: vol, name: 'incr', incremental: true });
    const s2 = chunkFiles(repoRoot);
    assert.equal(newChunks(s1, s2).length, 1, 'the incremental stored only the changed chunk and inherits the first');
    const other = await createVolume(s, { size: 1, name: 'bystander' });
    await writeAt(s, other, [{ offset: 0, data: randomBytes(MiB) }]);
    const third = await createBackup(s, { volume_id: other, name: 'third' });
    const s3 = chunkFiles(repoRoot);
    assert.equal(newChunks(s2, s3).length, 1);

    const clean = await admin.call<VerifyBody>('POST', '/bulwark-repository/verify');
    assert.equal(clean.status, 200, JSON.stringify(clean.body));
    assert.equal(clean.body.verify.checked, 3);
    assert.deepEqual(clean.body.verify.damaged, []);
    assert.deepEqual(clean.body.verify.backups, [full, incr, third].sort());

    // Flip bytes in the middle of the shared chunk's ciphertext.
    const victim = fullChunks[0]!;
    const path = s3.get(victim)!;
    const bytes = readFileSync(path);
    for (let i = 0; i < 8; i++) bytes[Math.floor(bytes.length / 2) + i]! ^= 0xff;
    writeFileSync(path, bytes);

    const all = await admin.call<VerifyBody>('POST', '/bulwark-repository/verify', {});
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.equal(all.body.verify.checked, 3);
    assert.deepEqual(all.body.verify.damaged.map((x) => x.chunk_id), [victim]);
    assert.equal(all.body.verify.damaged[0]!.problem, 'corrupt');
    assert.deepEqual(all.body.verify.damaged[0]!.backups, [full, incr].sort(), 'exactly the full and the incremental need it');

    const onlyThird = await admin.call<VerifyBody>('POST', '/bulwark-repository/verify', { verify: { backup_ids: [third] } });
    assert.equal(onlyThird.status, 200, JSON.stringify(onlyThird.body));
    assert.equal(onlyThird.body.verify.checked, 1);
    assert.deepEqual(onlyThird.body.verify.damaged, []);
    const onlyIncr = await admin.call<VerifyBody>('POST', '/bulwark-repository/verify', { verify: { backup_ids: [incr] } });
    assert.equal(onlyIncr.body.verify.checked, 2);
    assert.deepEqual(onlyIncr.body.verify.damaged.map((x) => [x.chunk_id, x.backups]), [[victim, [full, incr].sort()]]);

    const denied = await s.call<Record<string, { code: number }>>('POST', '/bulwark-repository/verify');
    assert.equal(denied.status, 403);
    assert.equal(denied.body['forbidden']?.code, 403, 'Cinder fault shape');
    const unknown = await admin.call<Record<string, { message: string }>>('POST', '/bulwark-repository/verify', { verify: { backup_ids: ['00000000-0000-4000-8000-000000000000'] } });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body['itemNotFound']?.message ?? '', /could not be found/);
    const bad = await admin.call('POST', '/bulwark-repository/verify', { verify: { backup_ids: 'x' } });
    assert.equal(bad.status, 400);

    // Restore the incremental over an existing volume: it must end in error_restoring.
    const target = await createVolume(s, { size: 1, name: 'target' });
    const r = await s.call('POST', `/backups/${incr}/restore`, { restore: { volume_id: target } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const seen = new Set<string>();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const v = await s.call<{ volume: { status: string } }>('GET', `/volumes/${target}`);
      seen.add(v.body.volume.status);
      if (v.body.volume.status === 'error_restoring') break;
      assert.ok(Date.now() < deadline, `volume still ${v.body.volume.status}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(!seen.has('available'), `the volume was never available during the failed restore (saw ${[...seen].join(', ')})`);
    await s.waitFor(`/backups/${incr}`, 'backup', ['available'], 30_000);
    const job = await d!.roles.store.db.selectFrom('jobs').select(['state', 'error']).where('kind', '=', 'restore_backup').where('resource_id', '=', incr).executeTakeFirstOrThrow();
    assert.equal(job.state, 'failed');
    assert.match(job.error ?? '', new RegExp(`${victim}.*failed authentication`), 'the restore failed on the damaged chunk');

    // The unaffected backup still restores, byte for byte.
    const good = await restoreToNew(s, third);
    assert.equal(await volumeHash(s, good), await volumeHash(s, other));
  });

  it('a backup role whose key file does not open the repository refuses to start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-wrongkey-'));
    scratch.push(dir);
    const wrongKey = join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(32).toString('hex'), { mode: 0o600 });
    const repository = repositoryUrl(d!.config);
    // Only the backup role: nothing else is started that a failed start could leave behind.
    const wrong = testConfig(join(dir, 'wrong'), { overrides: { backup: { repository, keyFile: wrongKey } } });
    await assert.rejects(startRoles(wrong, new Set(['backup'])), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'WrongKeyError');
      assert.match(err.message, /no key slot/);
      assert.ok(err.message.includes(wrongKey), `the message names the key file: ${err.message}`);
      return true;
    });
    const missing = testConfig(join(dir, 'missing'), { overrides: { backup: { repository, keyFile: join(dir, 'absent.key') } } });
    await assert.rejects(startRoles(missing, new Set(['backup'])), /exists but its key file .*absent\.key is missing/);
    // The same repository with its own key file opens: the refusal was the key's.
    const right = await startRoles(testConfig(join(dir, 'right'), { overrides: { backup: { repository, keyFile: keyFilePath(d!.config) } } }), new Set(['backup']));
    await right.stop();
  });
});
