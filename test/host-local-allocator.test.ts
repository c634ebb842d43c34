import assert from 'node:assert/strict';
import { test } from 'node:test';
import { candidates, nextFree } from '../src/cni/ipam/host-local/allocator.ts';
import { parseHostLocalConfig, parseRange } from '../src/cni/ipam/host-local/config.ts';
import { CniError } from '../src/cni/spec/errors.ts';
import { formatIP, parseIP } from '../src/netaddr/ip.ts';

const set = [parseRange({ subnet: '10.100.0.0/29' }, 'r')]; // .1 gateway, .2-.6 usable

test('defaults: gateway .1 is skipped, the first pod gets .2, broadcast excluded', () => {
  assert.deepEqual([...candidates(set)].map(formatIP), ['10.100.0.2', '10.100.0.3', '10.100.0.4', '10.100.0.5', '10.100.0.6']);
});

test('round-robin: allocation continues after the last reserved IP and wraps', () => {
  const order = [...candidates(set, parseIP('10.100.0.4'))].map(formatIP);
  assert.deepEqual(order, ['10.100.0.5', '10.100.0.6', '10.100.0.2', '10.100.0.3', '10.100.0.4']);
  const taken = new Set(['10.100.0.5', '10.100.0.6']);
  assert.equal(formatIP(nextFree(set, (ip) => taken.has(formatIP(ip)), parseIP('10.100.0.4'))!), '10.100.0.2');
});

test('several ranges in one set are walked in order; exhaustion yields nothing', () => {
  const two = [parseRange({ subnet: '10.100.1.0/24', rangeStart: '10.100.1.10', rangeEnd: '10.100.1.11' }, 'a'), parseRange({ subnet: '10.100.2.0/24', rangeStart: '10.100.2.20', rangeEnd: '10.100.2.20' }, 'b')];
  assert.deepEqual([...candidates(two)].map(formatIP), ['10.100.1.10', '10.100.1.11', '10.100.2.20']);
  assert.equal(nextFree(two, () => true), undefined);
});

test('config errors name the field', () => {
  const conf = (ipam: object) => ({ cniVersion: '1.0.0', name: 'n', type: 'host-local', ipam: { type: 'host-local', ...ipam } });
  const cases: Array<[object, RegExp]> = [
    [{}, /no IP ranges/],
    [{ ranges: [[{ subnet: '10.0.0.0/33' }]] }, /ipam\.ranges\[0\]\[0\]\.subnet/],
    [{ ranges: [[{ subnet: '10.0.0.0/31' }]] }, /too small/],
    [{ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }, /rangeStart 10\.0\.1\.5 is not in subnet/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.0/25' }]] }, /overlap/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'nope' }] }, /ipam\.routes\[0\]\.dst/],
    [{ ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir: 'relative' }, /dataDir/],
  ];
  for (const [ipam, re] of cases) {
    assert.throws(() => parseHostLocalConfig(conf(ipam) as any, new Map()), (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message), JSON.stringify(ipam));
  }
});

test('requested IPs come from CNI_ARGS, args.cni.ips and runtimeConfig.ips', () => {
  const cfg = parseHostLocalConfig({ cniVersion: '1.0.0', name: 'n', type: 'x', ipam: { type: 'host-local', subnet: '10.0.0.0/24' }, args: { cni: { ips: ['10.0.0.9'] } }, runtimeConfig: { ips: ['10.0.0.10/24'] } } as any, new Map([['IP', '10.0.0.8']]));
  assert.deepEqual(cfg.requested.map(formatIP), ['10.0.0.8', '10.0.0.9', '10.0.0.10']);
});
