// Run inside a user-mode Linux kernel (test/uml.test.ts boots it): kube-proxy's IPVS mode on
// a kernel that has IP_VS. A node namespace with two pods behind veth pairs, each running an
// echo server; the IPVS backend syncs a Service: virtual and real servers, the VIP on
// kube-ipvs0, traffic from the node to the ClusterIP and the NodePort reaching both pods in
// turn, and an endpoint removed. (A Service without endpoints is not refused yet: IPVS drops
// its SYNs; kube-proxy's REJECT for it is still to come.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linux } from '../../src/dataplane/linux/host.ts';
import { Lab } from '../../src/lab/lab.ts';
import { IpvsBackend } from '../../src/proxy/ipvs/backend.ts';
import type { ServicePortInfo } from '../../src/proxy/model.ts';

const ep = (ip: string) => ({ ip, port: 8080, ready: true, serving: true, terminating: false, local: true });
const svc = (endpoints: string[], over: Partial<ServicePortInfo> = {}): ServicePortInfo => ({ namespace: 'default', name: 'web', portName: 'http', protocol: 'tcp', clusterIP: '10.96.0.10', port: 80, externalIPs: [], externalLocal: false, internalLocal: false, endpoints: endpoints.map(ep), ...over });

test('IPVS mode on a kernel with IP_VS: virtual and real servers, kube-ipvs0, traffic, NodePort, an endpoint removed', async () => {
  const lab = new Lab('kwu');
  try {
    const node = await lab.netns('node');
    const pods = [await lab.netns('p1'), await lab.netns('p2')];
    for (const [i, pod] of pods.entries()) {
      await lab.link({ netns: node, ifName: `v${i + 1}`, address: `10.255.${i + 1}.1/24` }, { netns: pod, ifName: 'eth0', address: `10.255.${i + 1}.2/24` });
      await lab.exec(pod, ['ip', 'route', 'add', 'default', 'via', `10.255.${i + 1}.1`]);
      await lab.echoServer(pod, 8080, `p${i + 1}`);
    }
    const host = linux.at(node);
    await host.setSysctls({ 'net/ipv4/ip_forward': '1' });
    const backend = new IpvsBackend(host, { clusterCIDR: '10.255.0.0/16', nodeIPs: ['10.255.1.1'] }, 'legacy');
    await backend.apply([svc(['10.255.1.2', '10.255.2.2'], { nodePort: 30080 })]);

    const save = (await host.ipvsSave()).split('\n').filter(Boolean);
    assert.ok(save.includes('-A -t 10.96.0.10:80 -s rr'), save.join('\n'));
    assert.ok(save.some((l) => l.startsWith('-a -t 10.96.0.10:80 -r 10.255.1.2:8080 -m')), save.join('\n'));
    assert.ok(save.some((l) => l.startsWith('-a -t 10.96.0.10:80 -r 10.255.2.2:8080 -m')), save.join('\n'));
    assert.ok(save.includes('-A -t 10.255.1.1:30080 -s rr'), 'the NodePort is a virtual server on the node IP');
    const dummy = await host.link('kube-ipvs0');
    assert.equal(dummy?.linkinfo?.info_kind, 'dummy');
    assert.deepEqual(dummy?.addr_info?.map((a) => a.local), ['10.96.0.10']);

    const from = async (url: string, n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add(/hello from (\S+),/.exec(await lab.httpGet(node, url))?.[1] ?? '?');
      return [...seen].sort();
    };
    assert.deepEqual(await from('http://10.96.0.10/', 4), ['p1', 'p2'], 'round robin over both pods');
    assert.deepEqual(await from('http://10.255.1.1:30080/', 4), ['p1', 'p2'], 'the NodePort too');

    await backend.apply([svc(['10.255.1.2'], { nodePort: 30080 })]);
    const after = (await host.ipvsSave()).split('\n');
    assert.ok(!after.some((l) => l.includes('10.255.2.2:8080')), 'the removed endpoint left IPVS');
    assert.deepEqual(await from('http://10.96.0.10/', 3), ['p1']);

    await backend.apply([svc([])]);
    assert.deepEqual((await host.ipvsSave()).split('\n').filter((l) => l.startsWith('-a ')), [], 'no real server left');
    assert.equal(await backend.intact(), true);
  } finally {
    await lab.cleanup();
  }
});
