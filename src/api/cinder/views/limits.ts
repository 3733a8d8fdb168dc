// GET /limits, per tempest's limits.py: absolute limits only (no rate limits
// are enforced), with the os-used-limits extension's usage counters.
import type { QuotaMap } from '../../../services/quotas.js';

const LIMIT_NAMES: Record<string, string> = {
  gigabytes: 'maxTotalVolumeGigabytes',
  backup_gigabytes: 'maxTotalBackupGigabytes',
  volumes: 'maxTotalVolumes',
  snapshots: 'maxTotalSnapshots',
  backups: 'maxTotalBackups',
};

const USED_NAMES: Record<string, string> = {
  volumes: 'totalVolumesUsed',
  gigabytes: 'totalGigabytesUsed',
  snapshots: 'totalSnapshotsUsed',
  backups: 'totalBackupsUsed',
  backup_gigabytes: 'totalBackupGigabytesUsed',
};

export function limitsView(limits: QuotaMap, usage: QuotaMap): Record<string, unknown> {
  const absolute: Record<string, number> = {};
  for (const [res, name] of Object.entries(LIMIT_NAMES)) absolute[name] = limits[res] ?? -1;
  for (const [res, name] of Object.entries(USED_NAMES)) absolute[name] = usage[res] ?? 0;
  return { limits: { rate: [], absolute } };
}
