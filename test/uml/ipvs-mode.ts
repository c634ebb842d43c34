// Run inside a user-mode Linux kernel (test/uml.test.ts boots it): kube-proxy's IPVS mode on
// a kernel that has IP_VS. A node namespace with two pods behind veth pairs, each running an
// echo server; the IPVS backend syncs a Service: virtual and real servers, the VIP on
// kube-ipvs0, traffic from the node to the ClusterIP and the NodePort reaching both pods in
// turn, and an endpoint removed; then a removed endpoint drained while a connection to it is
// open (graceful termination), the source-hash scheduler, strict ARP.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linux } from '../../src/dataplane/linux/host.ts';
import { startChild } from '../../src/supervisor/supervisor.ts';
import { Lab } from '../../src/lab/lab.ts';
import { IpvsBackend } from '../../src/proxy/ipvs/backend.ts';
import type { ServicePortInfo } from '../../src/proxy/model.ts';

/** A request's limit in here, in seconds (a program starts slowly in UML, more so with another kernel beside it). */
const GET_S = 15;

/**
 * Which pods answer `n` GETs of `url` from inside `netns`, one connection each: curl in one
 * shell, not a Node start per request (each 2-5 s in UML; the file took 154 s with them).
 */
async function answering(netns: string, url: string, n: number): Promise<string[]> {
  const out = await linux.at(netns).exec(['sh', '-c', `for i in $(seq ${n}); do curl -s -m ${GET_S} ${url}; echo; done`]);
  const pods = [...out.matchAll(/hello from (\S+),/g)].map((m) => m[1]!);
  assert.equal(pods.length, n, `every GET of ${url} answered:\n${out}`);
  return pods;
}

const ep = (ip: string) => ({ ip, port: 8080, ready: true, serving: true, terminating: false, local: true });
const svc = (endpoints: string[], over: Partial<ServicePortInfo> = {}): ServicePortInfo => ({ namespace: 'default', name: 'web', portName: 'http', protocol: 'tcp', clusterIP: '10.96.0.10', port: 80, externalIPs: [], externalLocal: false, internalLocal: false, endpoints: endpoints.map(ep), ...over });

/** A node namespace with pods p1 (10.255.1.2) and p2 (10.255.2.2) behind veth pairs, each serving HTTP on 8080. */
async function nodeWithTwoPods(lab: Lab) {
  const node = await lab.netns('node');
  const pods = [await lab.netns('p1'), await lab.netns('p2')];
  for (const [i, pod] of pods.entries()) {
    await lab.link({ netns: node, ifName: `v${i + 1}`, address: `10.255.${i + 1}.1/24` }, { netns: pod, ifName: 'eth0', address: `10.255.${i + 1}.2/24` });
    await lab.exec(pod, ['ip', 'route', 'add', 'default', 'via', `10.255.${i + 1}.1`]);
    await lab.echoServer(pod, 8080, `p${i + 1}`);
  }
  const host = linux.at(node);
  await host.setSysctls({ 'net/ipv4/ip_forward': '1' });
  return { node, host };
}

test('IPVS mode on a kernel with IP_VS: virtual and real servers, kube-ipvs0, traffic, NodePort, an endpoint removed', async () => {
  const lab = new Lab('kwu');
  try {
    const { node, host } = await nodeWithTwoPods(lab);
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
      for (const pod of await answering(node, url, n)) seen.add(pod);
      return [...seen].sort();
    };
    assert.deepEqual(await from('http://10.96.0.10/', 4), ['p1', 'p2'], 'round robin over both pods');
    assert.deepEqual(await from('http://10.255.1.1:30080/', 4), ['p1', 'p2'], 'the NodePort too');

    await backend.apply([svc(['10.255.1.2'], { nodePort: 30080 })]);
    // The requests above left connections to 10.255.2.2 in TIME_WAIT: it is drained (weight 0), not yet deleted.
    const after = (await host.ipvsSave()).split('\n');
    assert.ok(!after.some((l) => l.includes('10.255.2.2:8080') && !l.endsWith('-w 0')), `the removed endpoint takes no new connections:\n${after.join('\n')}`);
    assert.deepEqual(await from('http://10.96.0.10/', 3), ['p1']);

    await backend.apply([svc([])]);
    assert.deepEqual((await host.ipvsSave()).split('\n').filter((l) => l.startsWith('-a ') && !l.endsWith('-w 0')), [], 'no real server takes connections');
    assert.equal(await backend.intact(), true);
  } finally {
    await lab.cleanup();
  }
});

// A client that holds one TCP connection open to ADDR:PORT and resets it on SIGTERM (IPVS then
// keeps the entry only for the CLOSE state's 10 s, not TIME_WAIT's 2 minutes).
const HOLD = `const s = require('net').connect(+process.argv[2], process.argv[1]);
s.on('connect', () => console.log('connected'));
s.on('error', () => {});
process.on('SIGTERM', () => { s.resetAndDestroy(); setTimeout(() => process.exit(0), 200); });`;

test('graceful termination on the kernel: a removed endpoint with an open connection keeps it at weight 0, goes once it is idle; sh scheduler; strict ARP', async () => {
  const lab = new Lab('kwg');
  let client: ReturnType<typeof startChild> | undefined;
  try {
    const { node, host } = await nodeWithTwoPods(lab);
    const backend = new IpvsBackend(host, { clusterCIDR: '10.255.0.0/16', nodeIPs: ['10.255.1.1'], scheduler: 'sh', strictARP: true }, 'legacy');
    const first = await backend.apply([svc(['10.255.1.2', '10.255.2.2'])]);
    assert.equal(await host.sysctl('net/ipv4/conf/all/arp_ignore'), '1');
    assert.equal(await host.sysctl('net/ipv4/conf/all/arp_announce'), '2');
    assert.ok((await host.ipvsSave()).includes('-A -t 10.96.0.10:80 -s sh'));
    assert.equal(first.recheckMs, undefined, 'nothing to drain');
    // Source hashing: one client always reaches the same pod.
    const seen = new Set<string>();
    for (const pod of await answering(node, 'http://10.96.0.10/', 4)) seen.add(pod);
    assert.equal(seen.size, 1, `sh keeps a client on one pod: ${[...seen]}`);

    // Graceful termination, with rr (sh maps a client to its server even at weight 0, and refuses it then).
    const rr = new IpvsBackend(host, { clusterCIDR: '10.255.0.0/16', nodeIPs: ['10.255.1.1'] }, 'legacy');
    const web = (eps: string[]) => [svc(eps, { clusterIP: '10.96.0.11' })];
    await rr.apply(web(['10.255.1.2', '10.255.2.2']));
    client = startChild([process.execPath, '-e', HOLD, '10.96.0.11', '80'], node);
    await new Promise<void>((resolve, reject) => {
      client!.stdout!.once('data', () => resolve());
      client!.once('exit', (code) => reject(new Error(`client exited with ${code}`)));
    });
    const counts = await host.ipvsConnections();
    const busy = ['10.255.1.2', '10.255.2.2'].find((ip) => counts.get(`-t 10.96.0.11:80 -r ${ip}:8080`))!;
    assert.ok(busy, `IPVS counts the open connection: ${JSON.stringify([...counts])}`);
    const other = busy === '10.255.1.2' ? '10.255.2.2' : '10.255.1.2';
    const key = `-t 10.96.0.11:80 -r ${busy}:8080`;

    // Its endpoint goes: weight 0, still there, a recheck asked for.
    const drained = await rr.apply(web([other]));
    assert.ok((await host.ipvsSave()).includes(`-a ${key} -m -w 0`), await host.ipvsSave());
    assert.equal(drained.counts['real-servers-draining'], 1);
    assert.ok(drained.recheckMs! > 0);
    assert.deepEqual([...new Set(await answering(node, 'http://10.96.0.11/', 3))], [busy === '10.255.1.2' ? 'p2' : 'p1'], 'new connections go to the endpoint that stays');

    // The client resets its connection; once IPVS forgets it (CLOSE: 10 s) a sync deletes the real server.
    client.kill('SIGTERM');
    const deadline = Date.now() + 30_000;
    let save = '';
    while (Date.now() < deadline && (save = await host.ipvsSave()).includes(busy)) {
      await new Promise((r) => setTimeout(r, 1000));
      await rr.apply(web([other]));
    }
    assert.ok(!save.includes(busy), `deleted once idle:\n${save}`);
  } finally {
    client?.kill('SIGKILL');
    await lab.cleanup();
  }
});
