import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { choosePool, type Placement } from '../../src/roles/scheduler/role.js';
import { matchesExtraSpecs, matchesRequirement } from '../../src/roles/scheduler/filters.js';

const pool = (serviceHost: string, name: string, freeGiB: number, caps: Record<string, unknown> = {}): Placement => ({
  serviceHost,
  pool: name,
  freeGiB,
  capabilities: { pool_name: name, volume_backend_name: name, vendor_name: 'Bulwark', storage_protocol: 'nbd', thin_provisioning_support: true, ...caps },
});

describe('scheduler placement', () => {
  it('picks the pool with the most free space that fits', () => {
    const c = [pool('a@p', 'p', 10), pool('b@q', 'q', 50), pool('c@r', 'r', 5)];
    assert.equal(choosePool(c, 20, null)?.serviceHost, 'b@q');
    assert.equal(choosePool(c, 60, null), null);
  });

  it('keeps a group on its host', () => {
    const c = [pool('a@p', 'p', 10), pool('b@q', 'q', 50)];
    assert.equal(choosePool(c, 1, 'a@p#p')?.serviceHost, 'a@p');
    assert.equal(choosePool(c, 20, 'a@p#p'), null, 'no room on the group host means no placement');
  });
});

describe('capabilities filter', () => {
  it('matches plain values and ignores foreign scopes', () => {
    const caps = pool('a@p', 'p', 1).capabilities;
    assert.ok(matchesExtraSpecs({ vendor_name: 'Bulwark', storage_protocol: 'nbd', 'bulwark:tier': 'gold', 'qos:iops': '5' }, caps));
    assert.ok(!matchesExtraSpecs({ vendor_name: 'Other' }, caps));
    assert.ok(!matchesExtraSpecs({ volume_backend_name: 'missing-backend' }, caps));
    assert.ok(!matchesExtraSpecs({ 'capabilities:no_such_cap': 'x' }, caps), 'an absent capability never matches');
    assert.ok(matchesExtraSpecs({ 'capabilities:thin_provisioning_support': '<is> True' }, caps));
  });

  it('understands Cinder operators', () => {
    assert.ok(matchesRequirement(100, '>= 50'));
    assert.ok(!matchesRequirement(10, '>= 50'));
    assert.ok(matchesRequirement('nbd', '<or> iscsi <or> nbd'));
    assert.ok(matchesRequirement('abc', '<in> b'));
    assert.ok(matchesRequirement('x', 's== x'));
  });
});
