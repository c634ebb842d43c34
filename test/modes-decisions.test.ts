// The pure decisions behind the vpc, host-gw and vxlan modes: the warm pool's size, which
// address goes to which pod and which go back, the VPC's next free addresses, the peers a
// node routes to from the Node objects and the kernel changes that follow them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Node } from '../src/api/types.ts';
import { assign, addressOf, freeSecondaries, poolChange, toRelease, withAddresses, withoutAddresses, type Pool } from '../src/vpc/pool.ts';
import { flannelAnnotations, peerChanges, peersOf } from '../src/node/peers.ts';
import { DEFAULT_SPEC, fabricBase, fabricOps, planCluster, vpcSnatLines } from '../src/cluster/plan.ts';
import { ptpHostOps, ptpPodOps } from '../src/cni/plugins/ptp/plugin.ts';

test('poolChange: WARM_IP_TARGET free beyond those in use, at least MINIMUM_IP_TARGET, never past the node\'s capacity', () => {
  const t = { warmIPTarget: 5, minimumIPTarget: 0, maxIPs: 110 };
  assert.equal(poolChange(0, 0, t), 5, 'an empty node fills to 5 warm');
  assert.equal(poolChange(5, 3, t), 3, '3 in use: 8 wanted');
  assert.equal(poolChange(12, 1, t), -6, 'too many free: 6 go back');
  assert.equal(poolChange(6, 1, t), 0);
  assert.equal(poolChange(0, 0, { ...t, warmIPTarget: 0, minimumIPTarget: 6 }), 6, 'MINIMUM_IP_TARGET before any pod');
  assert.equal(poolChange(6, 6, { ...t, warmIPTarget: 0, minimumIPTarget: 6 }), 0, 'no warm target: a full pool stays full until a pod comes');
  assert.equal(poolChange(108, 107, { ...t, maxIPs: 110 }), 2, 'capped at the node\'s capacity');
  assert.equal(poolChange(110, 110, { ...t, maxIPs: 110 }), 0);
});

test('assign: an attachment keeps its address on a retried ADD; the lowest free goes otherwise; DEL finds it; release takes the highest free', () => {
  let pool: Pool = withAddresses({}, ['172.18.1.9', '172.18.1.10', '172.18.1.2']);
  assert.deepEqual(Object.keys(pool), ['172.18.1.2', '172.18.1.9', '172.18.1.10'], 'kept in address order, not text order');
  const a = { containerID: 'a', ifName: 'eth0' };
  assert.equal(assign(pool, a), '172.18.1.2');
  pool['172.18.1.2'] = a;
  assert.equal(assign(pool, a), '172.18.1.2', 'the same attachment again: the same address');
  assert.equal(assign(pool, { containerID: 'b', ifName: 'eth0' }), '172.18.1.9');
  assert.equal(addressOf(pool, a), '172.18.1.2');
  assert.equal(addressOf(pool, { containerID: 'a', ifName: 'net1' }), undefined);
  assert.deepEqual(toRelease(pool, 1), ['172.18.1.10']);
  assert.deepEqual(toRelease(pool, 5), ['172.18.1.10', '172.18.1.9'], 'only free addresses go back');
  pool = withoutAddresses(pool, ['172.18.1.9']);
  assert.deepEqual(Object.keys(pool), ['172.18.1.2', '172.18.1.10']);
  assert.equal(assign({ '172.18.1.2': a }, { containerID: 'c', ifName: 'eth0' }), undefined, 'a full pool has nothing to give');
  const cooling = new Set(['172.18.1.2']);
  const freed: Pool = { '172.18.1.2': null, '172.18.1.3': null, '172.18.1.4': null };
  assert.equal(assign(freed, { containerID: 'd', ifName: 'eth0' }, cooling), '172.18.1.3', 'an address freed a moment ago cools down');
  assert.equal(assign({ '172.18.1.2': null }, { containerID: 'd', ifName: 'eth0' }, cooling), undefined, 'only cooling ones: none (ipamd asks the VPC first)');
  assert.deepEqual(toRelease(freed, 2, new Set(['172.18.1.4'])), ['172.18.1.3', '172.18.1.2'], 'cooling addresses go back last');
});

test('freeSecondaries: the lowest addresses nobody holds; fewer when the range runs out', () => {
  assert.deepEqual(freeSecondaries({ '172.18.1.1': 'n1', '172.18.1.3': 'n2' }, '172.18.1.1', '172.18.255.254', 3), ['172.18.1.2', '172.18.1.4', '172.18.1.5']);
  assert.deepEqual(freeSecondaries({ '10.0.0.1': 'n1' }, '10.0.0.1', '10.0.0.2', 5), ['10.0.0.2']);
});

test('vpc plan: nodes have no podCIDR; the VPC knows every node and the client; SNAT out of the VPC unless --external-snat', () => {
  const plan = planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 2, mode: 'vpc' });
  assert.equal(plan.nodes[0]!.podCIDR, undefined);
  assert.deepEqual(fabricBase(plan), [
    { ip: '172.18.0.11', mac: '0a:6b:77:00:00:01', port: 'node1' },
    { ip: '172.18.0.12', mac: '0a:6b:77:00:00:02', port: 'node2' },
    { ip: '172.18.0.200', mac: '0a:6b:77:00:00:c8', port: 'external' },
  ]);
  const ops = fabricOps([...fabricBase(plan), { ip: '172.18.1.1', mac: '0a:6b:77:00:00:01', port: 'node1' }]);
  assert.equal(ops.filter((o) => o.op === 'fdb-replace').length, 3, 'one FDB entry per MAC');
  assert.deepEqual(ops.at(-1), { op: 'neigh-replace', dev: 'underlay', ip: '172.18.1.1', mac: '0a:6b:77:00:00:01' });
  assert.deepEqual(vpcSnatLines(plan, plan.nodes[1]!).slice(2), ['-A KUBEWIRE-POSTROUTING -d 172.18.0.0/16 -j RETURN', '-A KUBEWIRE-POSTROUTING -m addrtype ! --dst-type LOCAL -j SNAT --to-source 172.18.0.12']);
  assert.deepEqual(vpcSnatLines(planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 1, mode: 'vpc', externalSNAT: true }), plan.nodes[0]!), []);
  assert.throws(() => planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 1, externalSNAT: true }), /need --mode vpc/);
  assert.throws(() => planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 1, mode: 'vpc', ipCooldownSeconds: 1.5 }), /--ip-cooldown-period 1\.5: must be a whole number/);
});

test('ptp ops: the pod reaches everything via the gateway alone on its link; the host holds the gateway and a host route', () => {
  const ips = [{ address: '172.18.1.5/16', gateway: '169.254.1.1' }];
  assert.deepEqual(ptpPodOps('eth0', ips, [{ dst: '0.0.0.0/0' }]), [
    { op: 'addr-add', dev: 'eth0', address: '172.18.1.5/16' },
    { op: 'link-set', name: 'eth0', up: true },
    { op: 'route-del', dst: '172.18.0.0/16', dev: 'eth0' },
    { op: 'route-add', dst: '169.254.1.1/32', dev: 'eth0', scope: 'link', src: '172.18.1.5' },
    { op: 'route-add', dst: '172.18.0.0/16', via: '169.254.1.1', dev: 'eth0', src: '172.18.1.5' },
    { op: 'route-add', dst: '0.0.0.0/0', via: '169.254.1.1', dev: 'eth0' },
  ]);
  assert.deepEqual(ptpHostOps('veth1', ips), [
    { op: 'addr-add', dev: 'veth1', address: '169.254.1.1/32', replace: true },
    { op: 'route-add', dst: '172.18.1.5/32', dev: 'veth1', scope: 'host', replace: true },
  ]);
});

const nodeObj = (name: string, ip: string, podCIDR?: string, annotations?: Record<string, string>, deleting = false): Node => ({
  apiVersion: 'v1', kind: 'Node', metadata: { name, ...(annotations ? { annotations } : {}), ...(deleting ? { deletionTimestamp: 'x' } : {}) },
  spec: podCIDR ? { podCIDR } : {}, status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

test('peersOf: every other node with a podCIDR (and in vxlan its VTEP MAC from flannel\'s annotation)', () => {
  const nodes = [
    nodeObj('n1', '172.18.0.11', '10.244.0.0/24', flannelAnnotations('172.18.0.11', '0e:6b:77:00:00:01')),
    nodeObj('n2', '172.18.0.12', '10.244.1.0/24', flannelAnnotations('172.18.0.12', '0E:6B:77:00:00:02')),
    nodeObj('n3', '172.18.0.13'),
    nodeObj('n4', '172.18.0.14', '10.244.3.0/24'),
    nodeObj('n5', '172.18.0.15', '10.244.4.0/24', undefined, true),
  ];
  assert.deepEqual(peersOf(nodes, 'n1', 'host-gw'), [{ ip: '172.18.0.12', podCIDR: '10.244.1.0/24' }, { ip: '172.18.0.14', podCIDR: '10.244.3.0/24' }]);
  assert.deepEqual(peersOf(nodes, 'n1', 'vxlan'), [{ ip: '172.18.0.12', podCIDR: '10.244.1.0/24', vtepMAC: '0e:6b:77:00:00:02' }], 'a node without a VTEP is no vxlan peer yet');
});

test('peerChanges: entries of a node gone are removed, missing ones added, the rest of the kernel left alone', () => {
  const peer = { ip: '172.18.0.12', podCIDR: '10.244.1.0/24', vtepMAC: '0e:6b:77:00:00:02' };
  const vxState = {
    routes: [
      { dst: '10.244.1.0/24', gateway: '10.244.1.0', dev: 'flannel.1' },
      { dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 'flannel.1' },
    ],
    neighbours: [{ dst: '10.244.1.0', dev: 'flannel.1', lladdr: '0e:6b:77:00:00:02' }, { dst: '10.244.2.0', dev: 'flannel.1', lladdr: '0e:6b:77:00:00:03' }],
    fdb: [{ mac: '0e:6b:77:00:00:02', ifname: 'flannel.1', dst: '172.18.0.12' }, { mac: '0e:6b:77:00:00:03', ifname: 'flannel.1', dst: '172.18.0.13' }],
  };
  assert.deepEqual(peerChanges('vxlan', '10.244.0.0/16', vxState, [peer]), [
    { op: 'route-del', dst: '10.244.2.0/24', dev: 'flannel.1' },
    { op: 'neigh-del', dev: 'flannel.1', ip: '10.244.2.0' },
    { op: 'fdb-del', dev: 'flannel.1', mac: '0e:6b:77:00:00:03', dst: '172.18.0.13' },
  ]);
  assert.equal(peerChanges('vxlan', '10.244.0.0/16', { routes: [], neighbours: [], fdb: [] }, [peer]).length, 3, 'a new peer: neighbour, FDB entry and route');
  const gwState = { routes: [{ dst: 'default', gateway: '172.18.0.1' }, { dst: '10.244.1.0/24', gateway: '172.18.0.12' }, { dst: '10.244.2.0/24', gateway: '172.18.0.13' }, { dst: '10.244.0.0/24', dev: 'cni0' }, { dst: '192.168.5.0/24', gateway: '172.18.0.9' }], neighbours: [], fdb: [] };
  assert.deepEqual(peerChanges('host-gw', '10.244.0.0/16', gwState, [{ ip: '172.18.0.12', podCIDR: '10.244.1.0/24' }, { ip: '172.18.0.14', podCIDR: '10.244.3.0/24' }]), [
    { op: 'route-del', dst: '10.244.2.0/24' },
    { op: 'route-add', dst: '10.244.3.0/24', via: '172.18.0.14', replace: true },
  ], 'the default route, the bridge\'s own and a route outside the pod range stay');
});
