// The extension descriptors Cinder's API loads (all of cinder/api/contrib, in
// its order). Cinder always loads every standard extension, so clients and
// tempest's test_extensions ("api_extensions = all" looks for "Hosts") see
// the same list from Bulwark.
export interface ExtensionDescriptor {
  readonly name: string;
  readonly alias: string;
  readonly updated: string;
  readonly description: string;
}

export const CINDER_EXTENSIONS: readonly ExtensionDescriptor[] = [
  { name: 'AdminActions', alias: 'os-admin-actions', updated: '2012-08-25T00:00:00+00:00', description: 'Enable admin actions.' },
  { name: 'AvailabilityZones', alias: 'os-availability-zone', updated: '2013-06-27T00:00:00+00:00', description: 'Describe Availability Zones.' },
  { name: 'Backups', alias: 'backups', updated: '2012-12-12T00:00:00+00:00', description: 'Backups support.' },
  { name: 'Capabilities', alias: 'capabilities', updated: '2015-08-31T00:00:00+00:00', description: 'Capabilities support.' },
  { name: 'Cgsnapshots', alias: 'cgsnapshots', updated: '2014-08-18T00:00:00+00:00', description: 'cgsnapshots support.' },
  { name: 'Consistencygroups', alias: 'consistencygroups', updated: '2014-08-18T00:00:00+00:00', description: 'consistency groups support.' },
  { name: 'ExtendedServices', alias: 'os-extended-services', updated: '2014-01-10T00:00:00-00:00', description: 'Extended services support.' },
  { name: 'ExtendedSnapshotAttributes', alias: 'os-extended-snapshot-attributes', updated: '2012-06-19T00:00:00+00:00', description: 'Extended SnapshotAttributes support.' },
  { name: 'Hosts', alias: 'os-hosts', updated: '2011-06-29T00:00:00+00:00', description: 'Admin-only host administration.' },
  { name: 'Qos_specs_manage', alias: 'qos-specs', updated: '2013-08-02T00:00:00+00:00', description: 'QoS specs support.' },
  { name: 'QuotaClasses', alias: 'os-quota-class-sets', updated: '2012-03-12T00:00:00+00:00', description: 'Quota classes management support.' },
  { name: 'Quotas', alias: 'os-quota-sets', updated: '2011-08-08T00:00:00+00:00', description: 'Quota management support.' },
  { name: 'SchedulerHints', alias: 'OS-SCH-HNT', updated: '2013-04-18T00:00:00+00:00', description: 'Pass arbitrary key/value pairs to the scheduler.' },
  { name: 'Scheduler_stats', alias: 'scheduler-stats', updated: '2014-09-07T00:00:00+00:00', description: 'Scheduler stats support.' },
  { name: 'Services', alias: 'os-services', updated: '2012-10-28T00:00:00-00:00', description: 'Services support.' },
  { name: 'SnapshotActions', alias: 'os-snapshot-actions', updated: '2013-07-16T00:00:00+00:00', description: 'Enable snapshot manager actions.' },
  { name: 'SnapshotManage', alias: 'os-snapshot-manage', updated: '2014-12-31T00:00:00+00:00', description: "Allows existing backend storage to be 'managed' by Cinder." },
  { name: 'SnapshotUnmanage', alias: 'os-snapshot-unmanage', updated: '2014-12-31T00:00:00+00:00', description: 'Enable volume unmanage operation.' },
  { name: 'TypesExtraSpecs', alias: 'os-types-extra-specs', updated: '2011-08-24T00:00:00+00:00', description: 'Type extra specs support.' },
  { name: 'TypesManage', alias: 'os-types-manage', updated: '2011-08-24T00:00:00+00:00', description: 'Types manage support.' },
  { name: 'UsedLimits', alias: 'os-used-limits', updated: '2013-10-03T00:00:00+00:00', description: 'Provide data on limited resources that are being used.' },
  { name: 'VolumeActions', alias: 'os-volume-actions', updated: '2012-05-31T00:00:00+00:00', description: 'Enable volume actions.' },
  { name: 'VolumeEncryptionMetadata', alias: 'os-volume-encryption-metadata', updated: '2013-07-10T00:00:00+00:00', description: 'Volume encryption metadata retrieval support.' },
  { name: 'VolumeHostAttribute', alias: 'os-vol-host-attr', updated: '2011-11-03T00:00:00+00:00', description: 'Expose host as an attribute of a volume.' },
  { name: 'VolumeImageMetadata', alias: 'os-vol-image-meta', updated: '2012-12-07T00:00:00+00:00', description: 'Show image metadata associated with the volume.' },
  { name: 'VolumeManage', alias: 'os-volume-manage', updated: '2014-02-10T00:00:00+00:00', description: "Allows existing backend storage to be 'managed' by Cinder." },
  { name: 'VolumeMigStatusAttribute', alias: 'os-vol-mig-status-attr', updated: '2013-08-08T00:00:00+00:00', description: 'Expose migration_status as an attribute of a volume.' },
  { name: 'VolumeTenantAttribute', alias: 'os-vol-tenant-attr', updated: '2011-11-03T00:00:00+00:00', description: 'Expose the internal project_id as an attribute of a volume.' },
  { name: 'VolumeTransfer', alias: 'os-volume-transfer', updated: '2013-05-29T00:00:00+00:00', description: 'Volume transfer management support.' },
  { name: 'VolumeTypeAccess', alias: 'os-volume-type-access', updated: '2014-06-26T00:00:00Z', description: 'Volume type access support.' },
  { name: 'VolumeTypeEncryption', alias: 'encryption', updated: '2013-07-01T00:00:00+00:00', description: 'Encryption support for volume types.' },
  { name: 'VolumeUnmanage', alias: 'os-volume-unmanage', updated: '2012-05-31T00:00:00+00:00', description: 'Enable volume unmanage operation.' },
];
