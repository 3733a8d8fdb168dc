// Taking backups back in another deployment: deployment A makes a full and an
// incremental backup and exports both records; deployment B, with its own data
// dir and state store but A's repository and key file, imports the records and
// restores each into a new volume, byte-identical to A's volume at that point.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyFilePath, repositoryUrl } from '../../src/roles/backup/repository.js';
import { deploy, type Deployment } from '../harness/aio.js';
import { createBackup, MiB, restoreToNew, volumeHash, writeAt } from './backup-helpers.js';
import { createVolume } from './helpers.js';

interface ExportedRecord {
  backup_service: string;
  backup_url: string;
}

describe('backup records imported into a second deployment', () => {
  let a: Deployment | undefined;
  let b: Deployment | undefined;
  before(async () => {
    a = await deploy();
  });
  after(async () => {
    // B reads A's repository, which lives in A's data dir: B goes first.
    await b?.stop();
    await a?.stop();
  });

  it('imports a full and an incremental record and restores both byte-identical', async () => {
    const sa = a!.member;
    const vol = await createVolume(sa, { size: 1, name: 'origin' });
    await writeAt(sa, vol, [
      { offset: 0, data: randomBytes(2 * MiB) },
      { offset: 300 * MiB, data: randomBytes(MiB) },
      { offset: 1023 * MiB, data: randomBytes(MiB) },
    ]);
    const full = await createBackup(sa, { volume_id: vol, name: 'full' });
    const fullHash = await volumeHash(sa, vol);
    await writeAt(sa, vol, [
      { offset: MiB, data: randomBytes(MiB) },
      { offset: 512 * MiB + 4096, data: randomBytes(64 * 1024) },
    ]);
    const incr = await createBackup(sa, { volume_id: vol, name: 'incr', incremental: true });
    const incrHash = await volumeHash(sa, vol);
    assert.notEqual(incrHash, fullHash);
    // A keeps changing after the backup: B must restore the backed-up point, not "now".
    await writeAt(sa, vol, [{ offset: 0, data: randomBytes(MiB) }]);

    const records: ExportedRecord[] = [];
    for (const id of [full, incr]) {
      const denied = await sa.call('GET', `/backups/${id}/export_record`);
      assert.equal(denied.status, 403, 'export_record is admin only');
      const r = await a!.admin.call<{ 'backup-record': ExportedRecord }>('GET', `/backups/${id}/export_record`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      records.push(r.body['backup-record']);
    }

    b = await deploy({ overrides: { backup: { repository: repositoryUrl(a!.config), keyFile: keyFilePath(a!.config) } } });
    assert.notEqual(b.config.dataDir, a!.config.dataDir);
    const sb = b.admin;
    const before = await sb.call<{ backups: unknown[] }>('GET', '/backups');
    assert.equal(before.body.backups.length, 0, 'B starts with no backup rows');
    for (const rec of records) {
      const r = await sb.call<{ backup: { id: string } }>('POST', '/backups/import_record', { 'backup-record': rec });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await sb.waitFor(`/backups/${r.body.backup.id}`, 'backup', ['available'], 60_000);
    }
    const shown = await sb.call<{ backup: Record<string, unknown> }>('GET', `/backups/${incr}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.backup['is_incremental'], true);
    assert.equal(shown.body.backup['name'], 'incr');
    const parent = await sb.call<{ backup: Record<string, unknown> }>('GET', `/backups/${full}`);
    assert.equal(parent.body.backup['has_dependent_backups'], true, 'the imported full knows its imported incremental');

    const fromIncr = await restoreToNew(sb, incr);
    assert.equal(await volumeHash(sb, fromIncr), incrHash, 'the incremental restored in B equals A at the incremental');
    const fromFull = await restoreToNew(sb, full);
    assert.equal(await volumeHash(sb, fromFull), fullHash, 'the full restored in B equals A at the full');

    // The records name A's manifests, so importing one twice is refused, as in Cinder.
    const again = await sb.call('POST', '/backups/import_record', { 'backup-record': records[0] });
    assert.equal(again.status, 400, JSON.stringify(again.body));
  });
});
