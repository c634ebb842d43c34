// Differential tests against the reference plugins (Debian's containernetworking-plugins):
// the same configuration through theirs and ours must leave the same namespace state, modulo
// random names, MACs and ifindexes; and each must release what the other allocated.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withLab, type Lab } from '../src/lab/lab.ts';
import { parseConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime } from '../src/cni/runtime/runtime.ts';
import { callPlugin, mustCall, NOT_ROOT, pluginDir, REFERENCE_DIR, sh } from './helpers.ts';
import { linux } from '../src/dataplane/linux/host.ts';

const skip = NOT_ROOT || (existsSync(`${REFERENCE_DIR}/bridge`) ? false : `reference plugins missing in ${REFERENCE_DIR} (apt-get install containernetworking-plugins)`);

/** What a user would inspect, with names, MACs and indexes that legitimately differ removed. */
async function snapshot(node: string, pod: string, bridge: string): Promise<object> {
  const hostLinks: any[] = JSON.parse(await sh(node, ['ip', '-json', '-details', 'addr', 'show']));
  const podLinks: any[] = JSON.parse(await sh(pod, ['ip', '-json', '-details', 'addr', 'show']));
  const br = hostLinks.find((l) => l.ifname === bridge);
  const ports = hostLinks.filter((l) => l.master === bridge);
  const eth0 = podLinks.find((l) => l.ifname === 'eth0');
  const addrs = (l: any) => (l?.addr_info ?? []).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`).sort();
  const routes = (text: string) => (JSON.parse(text) as any[]).map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, scope: r.scope, protocol: r.protocol })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const sysctl = async (ns: string, key: string) => (await sh(ns, ['sysctl', '-n', key]).catch(() => 'absent')).trim();
  const rules = (text: string) => text.split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':CNI')).map((l) => l.replace(/\[\d+:\d+\]/, '')).sort();
  const nat = rules(await sh(node, ['iptables-save', '-t', 'nat']));
  const nat6 = rules(await sh(node, ['ip6tables-save', '-t', 'nat']));
  return {
    bridge: { kind: br?.linkinfo?.info_kind, up: br?.flags.includes('UP'), mtu: br?.mtu, addresses: addrs(br), promisc: br?.flags.includes('PROMISC') },
    ports: ports.map((p) => ({ kind: p.linkinfo?.info_kind, up: p.operstate, mtu: p.mtu, hairpin: p.linkinfo?.info_slave_data?.hairpin, peerIsEth0: p.ifindex === eth0?.link_index })),
    eth0: { kind: eth0?.linkinfo?.info_kind, up: eth0?.operstate, mtu: eth0?.mtu, addresses: addrs(eth0) },
    podRoutes: routes(await sh(pod, ['ip', '-json', 'route', 'show'])),
    podRoutes6: routes(await sh(pod, ['ip', '-json', '-6', 'route', 'show'])).filter((r: any) => !r.dst.startsWith('fe80')),
    hostRoutes: routes(await sh(node, ['ip', '-json', 'route', 'show'])),
    hostRoutes6: routes(await sh(node, ['ip', '-json', '-6', 'route', 'show'])).filter((r: any) => !r.dst.startsWith('fe80')),
    sysctls: {
      ipForward: await sysctl(node, 'net.ipv4.ip_forward'),
      arpNotify: await sysctl(pod, 'net.ipv4.conf.eth0.arp_notify'),
    },
    nat,
    nat6,
  };
}

/** A ptp attachment as a user would inspect it: both ends of the pair, routes and masquerade. */
async function ptpSnapshot(node: string, pod: string): Promise<object> {
  const hostLinks: any[] = JSON.parse(await sh(node, ['ip', '-json', '-details', 'addr', 'show']));
  const podLinks: any[] = JSON.parse(await sh(pod, ['ip', '-json', '-details', 'addr', 'show']));
  const eth0 = podLinks.find((l) => l.ifname === 'eth0');
  const addrs = (l: any) => (l?.addr_info ?? []).filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`).sort();
  const routes = (text: string) => (JSON.parse(text) as any[]).filter((r) => !r.dst.startsWith('fe80')).map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev?.startsWith('veth') ? 'veth' : r.dev, scope: r.scope, protocol: r.protocol, prefsrc: r.prefsrc })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const rules = (text: string) => text.split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':CNI')).map((l) => l.replace(/\[\d+:\d+\]/, '')).sort();
  return {
    hostVeths: hostLinks.filter((l) => l.linkinfo?.info_kind === 'veth').map((l) => ({ up: l.flags.includes('UP'), mtu: l.mtu, addresses: addrs(l), peerIsEth0: l.ifindex === eth0?.link_index })),
    // Admin state: the operational state follows the peer's carrier a moment later (linkwatch).
    eth0: eth0 ? { kind: eth0.linkinfo?.info_kind, up: eth0.flags.includes('UP'), mtu: eth0.mtu, addresses: addrs(eth0) } : undefined,
    podRoutes: routes(await sh(pod, ['ip', '-json', 'route', 'show'])),
    podRoutes6: routes(await sh(pod, ['ip', '-json', '-6', 'route', 'show'])),
    hostRoutes: routes(await sh(node, ['ip', '-json', 'route', 'show'])),
    hostRoutes6: routes(await sh(node, ['ip', '-json', '-6', 'route', 'show'])),
    ipForward: (await sh(node, ['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(),
    nat: rules(await sh(node, ['iptables-save', '-t', 'nat'])),
  };
}

async function runBoth(lab: Lab, conf: Record<string, unknown>): Promise<{ ours: object; theirs: object; results: any[] }> {
  const out: object[] = [];
  const results: any[] = [];
  for (const [tag, dir] of [['o', pluginDir()], ['r', REFERENCE_DIR]] as const) {
    const node = await lab.netns(`${tag}node`);
    const pod = await lab.netns(`${tag}pod`);
    const c = { ...conf, ipam: { ...(conf.ipam as object), dataDir: lab.dir(`${tag}ipam`) } };
    const result = await mustCall({ command: 'ADD', conf: c, containerID: 'diff', netns: pod, ifName: 'eth0', hostNetns: node, dir });
    results.push(result);
    out.push(await snapshot(node, pod, conf.bridge as string));
  }
  return { ours: out[0]!, theirs: out[1]!, results };
}

const CONFIGS: Array<[string, Record<string, unknown>]> = [
  ['gateway + ipMasq + hairpin', { isGateway: true, ipMasq: true, hairpinMode: true }],
  ['default gateway + mtu', { isDefaultGateway: true, mtu: 1400 }],
  ['no gateway, promiscuous bridge', { promiscMode: true }],
  ['dual-stack default gateway + ipMasq', { isDefaultGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.10.0/24' }], [{ subnet: 'fd00:100:10::/64' }]] } }],
];

describe('differential: kubewire vs reference plugins', { skip }, () => {
  for (const [label, extra] of CONFIGS) {
    test(`same namespace state: ${label}`, async () => {
      await withLab('kwt-diff', async (lab) => {
        const conf = { cniVersion: '1.0.0', name: 'diffnet', type: 'bridge', bridge: 'kwbr6', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.10.0/24' }]], routes: [{ dst: '10.200.0.0/16' }] }, ...extra };
        const { ours, theirs, results } = await runBoth(lab, conf);
        assert.deepEqual(ours, theirs);
        const shape = (r: any) => ({ ...r, interfaces: r.interfaces.map((i: any) => ({ ...i, name: i.name.startsWith('veth') ? 'veth' : i.name, mac: 'mac', sandbox: i.sandbox ? 'pod' : undefined })) });
        assert.deepEqual(shape(results[0]), shape(results[1]));
      });
    });
  }

  // ptp: a point-to-point pair, no bridge. Same pod and host state, same result, and each
  // implementation's DEL removes what the other's ADD made.
  const PTP_CONFIGS: Array<[string, Record<string, unknown>]> = [
    ['plain, default route from IPAM', {}],
    ['ipMasq + mtu', { ipMasq: true, mtu: 1400 }],
    ['dual-stack', { ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.20.0/24' }], [{ subnet: 'fd00:100:20::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] } }],
  ];
  for (const [label, extra] of PTP_CONFIGS) {
    test(`ptp: same namespace state and result: ${label}`, async () => {
      await withLab('kwt-diffptp', async (lab) => {
        const conf = { cniVersion: '1.0.0', name: 'ptpnet', type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.20.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] }, ...extra };
        const states: object[] = [];
        const results: any[] = [];
        for (const [tag, dir, deleter] of [['o', pluginDir(), REFERENCE_DIR], ['r', REFERENCE_DIR, pluginDir()]] as const) {
          const node = await lab.netns(`${tag}node`);
          const pod = await lab.netns(`${tag}pod`);
          const c = { ...conf, ipam: { ...(conf.ipam as object), dataDir: lab.dir(`${tag}ipam`) } };
          const result = await mustCall({ command: 'ADD', conf: c, containerID: 'ptp', netns: pod, ifName: 'eth0', hostNetns: node, dir });
          results.push(result);
          states.push(await ptpSnapshot(node, pod));
          // The pod answers through its pair: the host reaches it by its /32 host route.
          const podIP = result.ips[0].address.split('/')[0];
          await sh(node, ['ping', '-c', '1', '-W', '2', podIP]);
          // Our CHECK accepts either implementation's attachment, and finds a route gone.
          const check = { command: 'CHECK' as const, conf: { ...c, prevResult: result }, containerID: 'ptp', netns: pod, ifName: 'eth0', hostNetns: node, dir: pluginDir() };
          await mustCall(check);
          await sh(pod, ['ip', 'route', 'del', 'default']);
          const broken = await callPlugin(check);
          assert.ok(!broken.ok && /route to 0\.0\.0\.0\/0 is missing/.test(broken.error.msg), JSON.stringify(broken));
          await mustCall({ command: 'DEL', conf: { ...c, prevResult: result }, containerID: 'ptp', netns: pod, ifName: 'eth0', hostNetns: node, dir: deleter });
          const after = await ptpSnapshot(node, pod);
          assert.deepEqual((after as any).hostVeths, [], `${tag}: the other implementation's DEL left a host veth`);
          assert.deepEqual((after as any).hostRoutes, [], `${tag}: the other implementation's DEL left a host route`);
          assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-/);
        }
        assert.deepEqual(states[0], states[1]);
        const shape = (r: any) => ({ ...r, interfaces: r.interfaces.map((i: any) => ({ ...i, name: i.name.startsWith('veth') ? 'veth' : i.name, mac: 'mac', sandbox: i.sandbox ? 'pod' : undefined })) });
        assert.deepEqual(shape(results[0]), shape(results[1]));
      });
    });
  }

  test('allocations cross-release in both directions (shared host-local directory)', async () => {
    await withLab('kwt-diffx', async (lab) => {
      const dataDir = lab.dir('ipam');
      const conf = { cniVersion: '1.0.0', name: 'xnet', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.11.0/24' }]], dataDir } };
      const ips = () => readdirSync(join(dataDir, 'xnet')).filter((f) => /^\d/.test(f)).sort();
      const call = (command: 'ADD' | 'DEL', dir: string, id: string) => mustCall({ command, conf, containerID: id, netns: '/proc/self/ns/net', ifName: 'eth0', dir });
      const a = await call('ADD', REFERENCE_DIR, 'by-reference');
      const b = await call('ADD', pluginDir(), 'by-kubewire');
      // Round-robin continues from the other implementation's last_reserved_ip.
      assert.deepEqual([a.ips[0].address, b.ips[0].address], ['10.100.11.2/24', '10.100.11.3/24']);
      const c = await call('ADD', REFERENCE_DIR, 'by-reference-2');
      assert.equal(c.ips[0].address, '10.100.11.4/24');
      await call('DEL', pluginDir(), 'by-reference');
      await call('DEL', REFERENCE_DIR, 'by-kubewire');
      assert.deepEqual(ips(), ['10.100.11.4']);
      await mustCall({ command: 'GC', conf: { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] } });
      assert.deepEqual(ips(), []);
    });
  });

  test('portmap: the same nat rules as the reference for the same mappings; either DEL removes the other\'s', async () => {
    await withLab('kwt-diffp', async (lab) => {
      const dumps: string[][] = [];
      const conflist = (dataDir: string) => Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'pnet', plugins: [
        { type: 'bridge', bridge: 'kwbr9', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.14.0/24' }]], dataDir } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ] }));
      const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 5353, containerPort: 53, protocol: 'udp' }, { hostPort: 9090, containerPort: 90, protocol: 'tcp', hostIP: '192.168.200.10' }];
      for (const [tag, dir, deleter] of [['o', pluginDir(), REFERENCE_DIR], ['r', REFERENCE_DIR, pluginDir()]] as const) {
        const node = await lab.netns(`${tag}node`);
        const pod = await lab.netns(`${tag}pod`);
        const list = parseConfList(conflist(lab.dir(`${tag}ipam`)), 'pnet');
        const add = new CniRuntime({ dataplane: linux, path: [dir], cacheDir: lab.dir(`${tag}cache`), hostNetns: node });
        await add.addNetworkList(list, { containerID: 'pm', netns: pod, ifName: 'eth0', capabilityArgs: { portMappings } });
        const nat = await sh(node, ['iptables-save', '-t', 'nat']);
        // Rules as sets: the order of entries within a chain's table listing may differ.
        dumps.push(nat.split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':CNI')).map((l) => l.replace(/\[\d+:\d+\]/, '')).sort());
        // DEL by the other implementation: the mapping's own chain goes.
        const del = new CniRuntime({ dataplane: linux, path: [deleter], cacheDir: lab.dir(`${tag}cache2`), hostNetns: node });
        await del.delNetworkList(list, { containerID: 'pm', netns: pod, ifName: 'eth0', capabilityArgs: { portMappings } });
        assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-DN-/);
      }
      assert.deepEqual(dumps[0], dumps[1]);
    });
  });

  test('ipMasq chains: same name and rules, removed by either DEL', async () => {
    await withLab('kwt-diffm', async (lab) => {
      const node = await lab.netns('node');
      const dataDir = lab.dir('ipam');
      const conf = { cniVersion: '1.0.0', name: 'mnet', type: 'bridge', bridge: 'kwbr7', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.12.0/24' }]], dataDir } };
      for (const [adder, deleter] of [[REFERENCE_DIR, pluginDir()], [pluginDir(), REFERENCE_DIR]] as const) {
        const pod = await lab.netns(`p${adder === REFERENCE_DIR ? 'r' : 'o'}`);
        await mustCall({ command: 'ADD', conf, containerID: 'm1', netns: pod, ifName: 'eth0', hostNetns: node, dir: adder });
        assert.match(await sh(node, ['iptables-save', '-t', 'nat']), /-A POSTROUTING -s 10\.100\.12\.\d+\/32 -m comment --comment "name: \\"mnet\\" id: \\"m1\\"" -j CNI-/);
        await mustCall({ command: 'DEL', conf, containerID: 'm1', netns: pod, ifName: 'eth0', hostNetns: node, dir: deleter });
        assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-/);
        assert.deepEqual(readdirSync(join(dataDir, 'mnet')).filter((f) => /^\d/.test(f)), []);
      }
    });
  });
});
