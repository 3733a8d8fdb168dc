// Shared steps of the end-to-end suites: create/attach/snapshot through the API.
import assert from 'node:assert/strict';
import type { ApiSession } from '../harness/aio.js';
import type { NbdTarget } from '../harness/nbd.js';

export async function createVolume(s: ApiSession, body: Record<string, unknown>): Promise<string> {
  const res = await s.call<{ volume: { id: string } }>('POST', '/volumes', { volume: body });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  const id = res.body.volume.id;
  await s.waitFor(`/volumes/${id}`, 'volume', ['available']);
  return id;
}

export async function createSnapshot(s: ApiSession, volumeId: string, force = false): Promise<string> {
  const res = await s.call<{ snapshot: { id: string } }>('POST', '/snapshots', { snapshot: { volume_id: volumeId, force } });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  const id = res.body.snapshot.id;
  await s.waitFor(`/snapshots/${id}`, 'snapshot', ['available']);
  return id;
}

/** Attaches through os-initialize_connection from this host and returns the NBD target. */
export async function attachLocal(s: ApiSession, volumeId: string, host = 'testhost'): Promise<NbdTarget> {
  const res = await s.call<{ connection_info: { driver_volume_type: string; data: { socket_path: string; export_name: string } } }>(
    'POST',
    `/volumes/${volumeId}/action`,
    { 'os-initialize_connection': { connector: { host } } },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.connection_info.driver_volume_type, 'nbd');
  return { socketPath: res.body.connection_info.data.socket_path, exportName: res.body.connection_info.data.export_name };
}

export async function detachLocal(s: ApiSession, volumeId: string, host = 'testhost'): Promise<void> {
  const res = await s.call('POST', `/volumes/${volumeId}/action`, { 'os-terminate_connection': { connector: { host } } });
  assert.equal(res.status, 202, JSON.stringify(res.body));
}

export async function deleteAndWait(s: ApiSession, path: string, key: string): Promise<void> {
  const res = await s.call('DELETE', path);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  await s.waitFor(path, key, ['deleted']);
}
