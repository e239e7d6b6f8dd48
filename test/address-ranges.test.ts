// Allow lists: addresses and CIDR ranges, IPv4-mapped IPv6 as sockets report it, and bad entries named.
import test from 'node:test';
import assert from 'node:assert/strict';
import { AddressRanges } from '../runtime/system/address-ranges.js';

test('an allow list matches the addresses in its ranges and nothing else, however the socket spells them', () => {
  const r = new AddressRanges(['10.20.0.0/16', '192.168.1.7', 'fd00::/8']);
  for (const a of ['10.20.0.1', '10.20.255.254', '::ffff:10.20.3.4', '192.168.1.7', 'fd12::1']) assert.equal(r.has(a), true, a);
  for (const a of ['10.21.0.1', '192.168.1.8', '127.0.0.1', '::1', 'fe80::1', '', undefined, 'not-an-ip']) assert.equal(r.has(a), false, String(a));
  assert.equal(new AddressRanges([]).has('10.0.0.1'), false, 'an empty list allows nobody');
});

test('an entry that is not an address or range is refused with its text', () => {
  for (const bad of ['10.0.0.0/33', 'ten.0.0.0/8', '10.0.0.0/8/1', '::1/129', '10.0.0.0/x']) {
    assert.throws(() => new AddressRanges([bad]), new RegExp(`"${bad.replace(/[./]/g, '\\$&')}" is not an IP address or CIDR range`), bad);
  }
});
