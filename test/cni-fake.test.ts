// The CNI plugins' decisions, without root: the bridge plugin's address, gateway and route
// decisions as tables, then whole ADD / CHECK / DEL / GC calls of bridge + host-local +
// portmap (in-process, through kubewire's runtime, as the node agent calls them) against the
// fake dataplane, which refuses what the kernel would. The same calls against the kernel are
// in bridge.test.ts, runtime.test.ts and differential.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gatewayOps, podOps, podRoutes, withGateways } from '../src/cni/plugins/bridge/plugin.ts';
import { parseBridgeConf } from '../src/cni/plugins/bridge/config.ts';
import { parseConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime } from '../src/cni/runtime/runtime.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { pluginDir } from './helpers.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kwt-cnifake-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('bridge decisions: gateways, default routes, pod changes, the bridge\'s gateway address', () => {
  const ips = withGateways([{ address: '10.244.1.5/24' }, { address: 'fd00:1::5/64', gateway: 'fd00:1::fe' }]);
  assert.deepEqual(ips.map((ip) => ip.gateway), ['10.244.1.1', 'fd00:1::fe'], 'the first address of the subnet, unless IPAM said');
  const routes = podRoutes(ips, [{ dst: '10.96.0.0/12' }], true);
  assert.deepEqual(routes, [{ dst: '10.96.0.0/12' }, { dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0', gw: 'fd00:1::fe' }]);
  assert.deepEqual(podRoutes(ips, [{ dst: '0.0.0.0/0', gw: '10.244.1.254' }], true).filter((r) => r.dst === '0.0.0.0/0'), [{ dst: '0.0.0.0/0', gw: '10.244.1.254' }], "IPAM's default route wins");
  assert.deepEqual(podOps('eth0', ips.slice(0, 1), [{ dst: '10.96.0.0/12' }]), [
    { op: 'addr-add', dev: 'eth0', address: '10.244.1.5/24' },
    { op: 'link-set', name: 'eth0', up: true },
    { op: 'route-add', dst: '10.96.0.0/12', via: '10.244.1.1', dev: 'eth0' },
  ]);
  const conf = parseBridgeConf({ cniVersion: '1.1.0', name: 'n', type: 'bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'host-local' } }, new Map());
  const bridge = (addrs: string[]) => ({ ifindex: 3, ifname: 'cni0', flags: [], mtu: 1500, operstate: 'UP', address: '', addr_info: addrs.map((a) => ({ family: 'inet', local: a.split('/')[0]!, prefixlen: Number(a.split('/')[1]), scope: 'global' })) });
  assert.deepEqual(gatewayOps(conf, bridge([]), ips.slice(0, 1)), [{ op: 'addr-add', dev: 'cni0', address: '10.244.1.1/24', replace: true }], 'the first pod gives the bridge its gateway');
  assert.deepEqual(gatewayOps(conf, bridge(['10.244.1.1/24']), ips.slice(0, 1)), [], 'later pods find it there');
  assert.throws(() => gatewayOps(conf, bridge(['10.9.9.1/24']), ips.slice(0, 1)), /already has an IP address different from 10\.244\.1\.1\/24 \(10\.9\.9\.1\/24\); set forceAddress/);
  const forced = parseBridgeConf({ cniVersion: '1.1.0', name: 'n', type: 'bridge', bridge: 'cni0', isGateway: true, forceAddress: true, ipam: { type: 'host-local' } }, new Map());
  assert.deepEqual(gatewayOps(forced, bridge(['10.9.9.1/24']), ips.slice(0, 1)), [
    { op: 'addr-del', dev: 'cni0', address: '10.9.9.1/24' },
    { op: 'addr-add', dev: 'cni0', address: '10.244.1.1/24', replace: true },
  ]);
});

/** A node namespace and a runtime that calls the plugins in-process against the fake. */
async function fakeNode(tag: string) {
  const dp = new FakeDataplane();
  const node = await dp.createNetns(`${tag}-node`);
  await node.apply([{ op: 'link-set', name: 'lo', up: true }]);
  const list = parseConfList(
    Buffer.from(
      JSON.stringify({
        cniVersion: '1.1.0',
        name: 'kubewire',
        plugins: [
          { type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], dataDir: join(scratch, tag, 'ipam') } },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      }),
    ),
    'test network',
  );
  const rt = new CniRuntime({ dataplane: dp, path: [pluginDir()], cacheDir: join(scratch, tag, 'cache'), hostNetns: node.path, inProcess: true, log: () => {} });
  const pod = async (name: string) => (await dp.createNetns(`${tag}-${name}`)).path!;
  return { dp, node, list, rt, pod };
}

test('ADD, CHECK, DEL of bridge + host-local + portmap against the fake dataplane, as the node agent calls them', async () => {
  const { dp, node, list, rt, pod } = await fakeNode('add');
  const a = await pod('a');
  const result = await rt.addNetworkList(list, { containerID: 'ca', netns: a, ifName: 'eth0', capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } });
  assert.deepEqual(result.ips?.map((ip) => `${ip.address} via ${ip.gateway}`), ['10.244.1.2/24 via 10.244.1.1']);
  const bridge = await node.link('cni0');
  assert.equal(bridge?.linkinfo?.info_kind, 'bridge');
  assert.deepEqual(bridge?.addr_info?.map((x) => `${x.local}/${x.prefixlen}`), ['10.244.1.1/24'], 'the bridge is the gateway');
  const ports = await node.links('cni0');
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!.linkinfo?.info_slave_data?.hairpin, true);
  const eth0 = await dp.at(a).link('eth0');
  assert.equal(eth0?.link_index, ports[0]!.ifindex, "the pod's eth0 is the host veth's peer");
  assert.deepEqual((await dp.at(a).routes('eth0')).find((r) => r.dst === 'default')?.gateway, '10.244.1.1');
  assert.equal(await node.sysctl('net/ipv4/ip_forward'), '1');
  const nat = await node.iptablesSave('nat');
  assert.match(nat, /-A CNI-HOSTPORT-DNAT .*-j CNI-DN-/, 'portmap wrote its DNAT chains');
  assert.match(nat, /-A POSTROUTING -s 10\.244\.1\.2 -j CNI-/, 'ipMasq wrote the masquerade jump');
  await rt.checkNetworkList(list, { containerID: 'ca', netns: a, ifName: 'eth0' });

  // A second pod shares the bridge and takes the next address.
  const b = await pod('b');
  const second = await rt.addNetworkList(list, { containerID: 'cb', netns: b, ifName: 'eth0' });
  assert.deepEqual(second.ips?.map((ip) => ip.address), ['10.244.1.3/24']);
  assert.equal((await node.links('cni0')).length, 2);

  // CHECK notices what the kernel lost.
  await dp.at(a).apply([{ op: 'route-del', dst: 'default' }]);
  await assert.rejects(rt.checkNetworkList(list, { containerID: 'ca', netns: a, ifName: 'eth0' }), /route to 0\.0\.0\.0\/0 via 10\.244\.1\.1 is missing/);

  await rt.delNetworkList(list, { containerID: 'ca', netns: a, ifName: 'eth0' });
  assert.equal(await dp.at(a).link('eth0'), undefined);
  assert.equal((await node.links('cni0')).length, 1, "the host end went with the pod's");
  assert.doesNotMatch(await node.iptablesSave('nat'), /10\.244\.1\.2/, 'no rule of the pod is left');
  assert.deepEqual(readdirSync(join(scratch, 'add', 'ipam', 'kubewire')).filter((f) => /^\d/.test(f)), ['10.244.1.3'], 'its IP is free again');
});

test('a failed ADD leaves nothing: the name cni0 is taken by something that is not a bridge', async () => {
  const { dp, node, list, rt, pod } = await fakeNode('fail');
  await node.apply([{ op: 'veth-add', name: 'cni0', peer: 'cni0peer' }]);
  const a = await pod('a');
  await assert.rejects(rt.addNetworkList(list, { containerID: 'ca', netns: a, ifName: 'eth0' }), /"cni0" already exists but is not a bridge/);
  assert.deepEqual((await node.links()).map((l) => l.ifname).sort(), ['cni0', 'cni0peer', 'lo'], 'no veth left on the node');
  assert.equal(await dp.at(a).link('eth0'), undefined, 'nor in the pod');
  assert.deepEqual(readdirSync(join(scratch, 'fail', 'ipam', 'kubewire')).filter((f) => /^\d/.test(f)), [], 'the IP went back');
});

test('GC removes what attachments that are no longer valid left behind: IPs, veths, masquerade', async () => {
  const { dp, node, list, rt, pod } = await fakeNode('gc');
  for (const id of ['c1', 'c2', 'c3']) await rt.addNetworkList(list, { containerID: id, netns: await pod(id), ifName: 'eth0' });
  // A crash: c2's namespace is gone without a DEL (its veth went with it); c3's is still
  // there, but c3 is no longer a valid attachment: its host veth is GC's to remove.
  await dp.deleteNetns('gc-c2');
  assert.equal((await node.links('cni0')).length, 2);
  await rt.gcNetworkList(list, [{ containerID: 'c1', ifname: 'eth0' }]);
  assert.deepEqual(readdirSync(join(scratch, 'gc', 'ipam', 'kubewire')).filter((f) => /^\d/.test(f)), ['10.244.1.2']);
  const nat = await node.iptablesSave('nat');
  assert.equal((nat.match(/^-A POSTROUTING -s /gm) ?? []).length, 1, "only c1's masquerade is left");
  assert.deepEqual((await node.links('cni0')).map((l) => l.ifalias?.split(' ')[2]), ['c1'], "c3's veth removed by GC");
});
