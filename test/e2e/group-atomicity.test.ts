// A writer alternates numbered writes across two volumes of a group while group
// snapshots are taken; every group snapshot must show one single cut of the
// sequence: the two volumes' last numbers differ by at most one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NbdClient } from '../../src/drivers/nbd/client.js';
import { deploy, type Deployment } from '../harness/aio.js';
import { attachLocal, createVolume } from './helpers.js';

const SECTOR = 4096;

function seqBlock(n: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeBigUInt64LE(BigInt(n), 0);
  b.writeBigUInt64LE(BigInt(n) ^ 0xfeedfacecafebeefn, 8);
  return b;
}

function readSeq(b: Buffer): number {
  const n = b.readBigUInt64LE(0);
  if (n === 0n) return 0;
  assert.equal(b.readBigUInt64LE(8), n ^ 0xfeedfacecafebeefn, 'record is torn');
  return Number(n);
}

describe('group snapshot atomicity', () => {
  let d: Deployment;
  before(async () => {
    d = await deploy();
  });
  after(async () => d?.stop());

  it('every group snapshot is one cut of an alternating writer', async () => {
    const admin = d.admin;
    const s = d.member;
    const gt = await admin.call<{ group_type: { id: string } }>('POST', '/group_types', { group_type: { name: 'atomic', is_public: true } });
    assert.equal(gt.status, 202, JSON.stringify(gt.body));
    const types = await s.call<{ volume_types: { id: string; name: string }[] }>('GET', '/types');
    const vt = types.body.volume_types.find((t) => t.name === '__DEFAULT__')!;
    const g = await s.call<{ group: { id: string } }>('POST', '/groups', { group: { group_type: gt.body.group_type.id, volume_types: [vt.id], name: 'app' } });
    assert.equal(g.status, 202, JSON.stringify(g.body));
    const groupId = g.body.group.id;
    await s.waitFor(`/groups/${groupId}`, 'group', ['available']);
    const vols = [await createVolume(s, { size: 1, group_id: groupId, volume_type: vt.id }), await createVolume(s, { size: 1, group_id: groupId, volume_type: vt.id })];
    const targets = await Promise.all(vols.map((v) => attachLocal(s, v)));
    const clients = await Promise.all(targets.map((t) => NbdClient.connectUnix(t.socketPath, t.exportName)));

    let stop = false;
    let seq = 0;
    const writer = (async () => {
      while (!stop) {
        seq++;
        await clients[seq % 2]!.write(0, seqBlock(seq));
      }
    })();

    const groupSnapshots: string[] = [];
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 30));
      const res = await s.call<{ group_snapshot: { id: string } }>('POST', '/group_snapshots', { group_snapshot: { group_id: groupId, name: `cut-${i}` } });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      await s.waitFor(`/group_snapshots/${res.body.group_snapshot.id}`, 'group_snapshot', ['available']);
      groupSnapshots.push(res.body.group_snapshot.id);
    }
    stop = true;
    await writer;
    assert.ok(seq > 50, `the writer made progress (${seq} writes)`);

    const snaps = await s.call<{ snapshots: { id: string; volume_id: string; group_snapshot_id: string }[] }>('GET', '/snapshots/detail');
    let cutsWithWrites = 0;
    for (const gs of groupSnapshots) {
      const members = snaps.body.snapshots.filter((x) => x.group_snapshot_id === gs);
      assert.equal(members.length, 2);
      const seqs: number[] = [];
      for (const m of members) {
        const v = await createVolume(s, { snapshot_id: m.id });
        const t = await attachLocal(s, v);
        const c = await NbdClient.connectUnix(t.socketPath, t.exportName);
        seqs.push(readSeq(await c.read(0, SECTOR)));
        await c.close();
      }
      if (seqs[0]! > 0 || seqs[1]! > 0) cutsWithWrites++;
      assert.ok(Math.abs(seqs[0]! - seqs[1]!) <= 1, `group snapshot ${gs} shows ${seqs.join(' and ')}: not one cut`);
    }
    assert.ok(cutsWithWrites >= 6, 'the cuts were taken while the writer ran');
    await Promise.all(clients.map((c) => c.close()));
  });
});
