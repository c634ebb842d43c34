import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addToIP, contains, formatIP, formatPrefix, networkOf, parseHostPort, parseIP, parsePrefix, tryParseIP, tryParsePrefix } from '../src/netaddr/ip.ts';

test('IPv4 and IPv6 round-trip in canonical form', () => {
  for (const [input, canonical] of [
    ['10.244.1.2', '10.244.1.2'],
    ['0.0.0.0', '0.0.0.0'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['fd00:10:244::', 'fd00:10:244::'],
    ['::', '::'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
  ]) {
    assert.equal(formatIP(parseIP(input!)), canonical);
  }
});

test('invalid addresses and prefixes are rejected', () => {
  for (const bad of ['10.1.1', '10.1.1.256', '01.1.1.1', '1::2::3', 'abc', '', '10.0.0.1 ']) assert.equal(tryParseIP(bad), undefined, bad);
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/x', '::/129']) assert.equal(tryParsePrefix(bad), undefined, bad);
});

test('network, containment and arithmetic', () => {
  const p = parsePrefix('10.244.1.77/24');
  assert.equal(formatPrefix(networkOf(p)), '10.244.1.0/24');
  assert.ok(contains(p, parseIP('10.244.1.255')));
  assert.ok(!contains(p, parseIP('10.244.2.1')));
  assert.ok(!contains(p, parseIP('::1')));
  assert.equal(formatIP(addToIP(parseIP('10.0.0.255'), 1n)), '10.0.1.0');
  assert.throws(() => addToIP(parseIP('255.255.255.255'), 1n));
});

test('bind addresses: IP:PORT, [IPv6]:PORT, a bare IP', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:10249', 1), { host: '127.0.0.1', port: 10249 });
  assert.deepEqual(parseHostPort('0.0.0.0', 10249), { host: '0.0.0.0', port: 10249 });
  assert.deepEqual(parseHostPort('[::1]:9', 1), { host: '::1', port: 9 });
  for (const bad of ['localhost:1', '::1:9', '1.2.3.4:0', '1.2.3.4:70000', '[1.2.3.4]:9', '300.1.1.1:9', '1.2.3.4:']) assert.equal(parseHostPort(bad, 1), undefined, bad);
});
