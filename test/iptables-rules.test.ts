// kube-proxy's iptables mode as data: chain names and rule shapes against upstream's
// goldens (k/k pkg/proxy/iptables/proxier_test.go), compared chain by chain as upstream's
// own tests do, and the cases the goldens do not show (NodePort, no endpoints, affinity,
// Local policies).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointSlice, Service } from '../src/api/types.ts';
import { buildServicePorts, type ServicePortInfo } from '../src/proxy/model.ts';
import { endpointChain, serviceChain } from '../src/proxy/iptables/names.ts';
import { buildRules, natChains, natTable, partialRestoreText, restoreText } from '../src/proxy/iptables/rules.ts';
import { isRoot } from './helpers.ts';
import { linux } from '../src/dataplane/linux/host.ts';

function byChain(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of lines) {
    const m = l.match(/^:(\S+)/) ?? l.match(/^-A (\S+)/);
    if (!m) continue;
    if (!out.has(m[1]!)) out.set(m[1]!, []);
    if (l.startsWith('-A')) out.get(m[1]!)!.push(l);
  }
  return out;
}

const sp = (over: Partial<ServicePortInfo>): ServicePortInfo => ({ namespace: 'ns1', name: 'svc1', portName: 'p80', protocol: 'tcp', port: 80, externalIPs: [], externalLocal: false, internalLocal: false, endpoints: [], ...over });
const ep = (ip: string, port: number, local = false) => ({ ip, port, ready: true, serving: true, terminating: false, local });

test('chain names are upstream\'s: sha256 + base32 of the ServicePortName and protocol (and endpoint)', () => {
  assert.equal(serviceChain('ns1/svc1:p80', 'tcp'), 'KUBE-SVC-XPGD46QRK7WJZT7O');
  assert.equal(endpointChain('ns1/svc1:p80', 'tcp', '10.180.0.1:80'), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
  assert.equal(serviceChain('ns2/svc2:p8080', 'tcp'), 'KUBE-SVC-2VJB64SDSIJUP5T6');
});

test("upstream's TestSyncProxyRulesRepeated golden, chain by chain", () => {
  const rules = buildRules([
    sp({ clusterIP: '172.30.0.41', endpoints: [ep('10.0.1.1', 80)] }),
    sp({ namespace: 'ns2', name: 'svc2', portName: 'p8080', port: 8080, clusterIP: '172.30.0.42', endpoints: [ep('10.0.2.1', 8080)] }),
  ], { clusterCIDR: '10.0.0.0/8' });
  const golden = `
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -s 10.0.1.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -s 10.0.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:8080
-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 -> 10.0.2.1:8080" -j KUBE-SEP-UHEGFW77JX3KXTOV
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.1.1:80" -j KUBE-SEP-SNQ3ZNILQDEJNDQO`.trim().split('\n');
  const want = byChain(golden);
  const got = new Map([...byChain(rules.filter), ...byChain(natTable(rules))]);
  for (const [chain, lines] of want) assert.deepEqual(got.get(chain), lines, chain);
  // Declared but empty in the golden: the filter chains and nat KUBE-NODEPORTS.
  for (const c of ['KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-PROXY-FIREWALL']) assert.ok(rules.filter.includes(`:${c} - [0:0]`), c);
  assert.deepEqual(byChain(natTable(rules)).get('KUBE-NODEPORTS'), []);
});

test('two endpoints: random probability 1/2 then the last unconditionally, in ip:port order (upstream svc4 golden)', () => {
  const rules = buildRules([sp({ namespace: 'ns4', name: 'svc4', clusterIP: '172.30.0.44', endpoints: [ep('10.180.0.4', 80), ep('10.180.0.5', 80)] })], { clusterCIDR: '10.0.0.0/8' });
  assert.deepEqual(byChain(natTable(rules)).get('KUBE-SVC-4SW47YFZTEDKD3PK'), [
    '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
    '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC',
    '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ',
  ]);
});

test('ClientIP affinity: recent --rcheck per endpoint before the random rules, --set in the endpoint chain (upstream svc5 golden)', () => {
  const rules = buildRules([sp({ namespace: 'ns5', name: 'svc5', clusterIP: '172.30.0.45', affinitySeconds: 10800, endpoints: [ep('10.180.0.3', 80)] })], { clusterCIDR: '10.0.0.0/8' });
  const svc = byChain(natTable(rules)).get('KUBE-SVC-NUKIZ6OKUXPJNT4C')!;
  assert.equal(svc[1], '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN');
  assert.deepEqual(byChain(natTable(rules)).get('KUBE-SEP-I77PXRDZVX7PMWMN')![1], '-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80');
});

test('no endpoints: REJECT in filter for the ClusterIP and the NodePort, no nat chains', () => {
  const rules = buildRules([sp({ clusterIP: '172.30.0.41', nodePort: 30080 })], { clusterCIDR: '10.0.0.0/8' });
  assert.deepEqual(byChain(rules.filter).get('KUBE-SERVICES'), ['-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT']);
  assert.deepEqual(byChain(rules.filter).get('KUBE-EXTERNAL-SERVICES'), ['-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT']);
  assert.ok(![...natChains(rules)].some((c) => /^KUBE-(SVC|SEP|EXT)/.test(c)));
});

test('NodePort, externalTrafficPolicy Local: the node\'s pods and the node itself use any endpoint, outside clients only local ones', () => {
  const rules = buildRules([sp({ clusterIP: '172.30.0.41', nodePort: 30080, externalLocal: true, endpoints: [ep('10.0.1.1', 80, true), ep('10.0.2.1', 80)] })], { clusterCIDR: '10.0.0.0/8', nodePodCIDR: '10.0.1.0/24' });
  const nat = byChain(natTable(rules));
  const ext = [...nat.keys()].find((c) => c.startsWith('KUBE-EXT-'))!;
  assert.deepEqual(nat.get('KUBE-NODEPORTS'), [`-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 -j ${ext}`]);
  assert.deepEqual(nat.get(ext)!.map((l) => l.replace(/KUBE-(SVC|SVL)-\w+/, 'KUBE-$1-X')), [
    `-A ${ext} -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.1.0/24 -j KUBE-SVC-X`,
    `-A ${ext} -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
    `-A ${ext} -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-X`,
    `-A ${ext} -j KUBE-SVL-X`,
  ]);
  const svl = [...nat.keys()].find((c) => c.startsWith('KUBE-SVL-'))!;
  assert.deepEqual(nat.get(svl)!.length, 1, 'only the local endpoint, and no masquerade: the client IP is kept');
  // No local endpoint: the NodePort drops instead.
  const none = buildRules([sp({ clusterIP: '172.30.0.41', nodePort: 30080, externalLocal: true, endpoints: [ep('10.0.2.1', 80)] })], { clusterCIDR: '10.0.0.0/8' });
  assert.deepEqual(byChain(none.filter).get('KUBE-EXTERNAL-SERVICES'), ['-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP']);
});

test('Services and EndpointSlices become service ports: named ports matched, headless skipped, endpoints sorted and marked local', () => {
  const svc = (name: string, spec: Service['spec']): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns1', uid: name }, spec });
  const slice: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-abc', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [
      { addresses: ['10.0.2.9'], conditions: { ready: true }, nodeName: 'n2' },
      { addresses: ['10.0.1.9'], conditions: { ready: true }, nodeName: 'n1' },
      { addresses: ['10.0.1.10'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'n1' },
    ],
  };
  const ports = buildServicePorts([svc('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }), svc('headless', { clusterIP: 'None', ports: [{ port: 80 }] })], [slice], 'n1');
  assert.equal(ports.length, 1);
  assert.deepEqual(ports[0]!.endpoints.map((e) => `${e.ip}:${e.port} ${e.ready} ${e.local}`), ['10.0.1.10:8080 false true', '10.0.1.9:8080 true true', '10.0.2.9:8080 true false']);
  const text = restoreText(buildRules(ports, { clusterCIDR: '10.0.0.0/8' }), ['KUBE-SVC-AAAAAAAAAAAAAAAA']);
  assert.match(text, /^\*filter\n/);
  assert.match(text, /\n:KUBE-SVC-AAAAAAAAAAAAAAAA - \[0:0\]\n/);
  assert.match(text, /\n-X KUBE-SVC-AAAAAAAAAAAAAAAA\nCOMMIT\n$/);
  assert.ok(!text.includes('10.0.1.10:8080 '), 'a terminating endpoint takes no new connections');
});

test('a partial build keeps names and top-level rules of unchanged ports and writes only the changed chains', () => {
  const cfg = { clusterCIDR: '10.0.0.0/8' };
  const a = sp({ name: 'a', clusterIP: '172.30.0.1', nodePort: 30001, endpoints: [ep('10.1.0.1', 80), ep('10.1.0.2', 80)] });
  const b = sp({ name: 'b', clusterIP: '172.30.0.2', endpoints: [ep('10.1.0.3', 80)] });
  const memo = new WeakMap();
  const first = buildRules([a, b], cfg, memo);
  assert.deepEqual(first, buildRules([a, b], cfg));
  // b changes (a new object, as the proxier hands over); a is the same object.
  const b2 = { ...b, endpoints: [ep('10.1.0.4', 80)] };
  const second = buildRules([a, b2], cfg, memo, new Set(['ns1/b:p80/tcp']));
  const whole = buildRules([a, b2], cfg);
  assert.deepEqual([...second.serviceChains.keys()], ['ns1/b:p80/tcp']);
  assert.deepEqual(second.serviceChains.get('ns1/b:p80/tcp'), whole.serviceChains.get('ns1/b:p80/tcp'));
  assert.deepEqual(second.natTop, whole.natTop);
  assert.deepEqual(second.chainNames, whole.chainNames);
  assert.equal(second.serviceRules, whole.serviceRules);
  // The restore input writes b's chains and deletes the endpoint chain b no longer has.
  const text = partialRestoreText(second, new Set(['ns1/b:p80/tcp']), first.chainNames);
  const oldSep = first.chainNames.get('ns1/b:p80/tcp')!.find((c) => c.startsWith('KUBE-SEP-'))!;
  assert.match(text, new RegExp(`\\n-X ${oldSep}\\n`));
  assert.ok(text.includes('--to-destination 10.1.0.4:80'));
  assert.ok(!text.includes('--to-destination 10.1.0.1:80'), "a's chains are left as the kernel holds them");
});

test('UDP conntrack cleanup: flows to endpoints that went away, and flows made while there was none', async () => {
  const { staleUdpDeletions, udpState } = await import('../src/proxy/conntrack.ts');
  const udp = (eps: string[]) => sp({ protocol: 'udp', portName: 'dns', port: 53, clusterIP: '10.96.0.10', nodePort: 30053, endpoints: eps.map((ip) => ep(ip, 8081)) });
  assert.deepEqual(staleUdpDeletions(udpState([udp(['10.0.1.1', '10.0.2.1'])]), udpState([udp(['10.0.2.1'])])), [
    { protocol: 'udp', origDst: '10.96.0.10', origDstPort: 53, replySrc: '10.0.1.1' },
    { protocol: 'udp', origDstPort: 30053, replySrc: '10.0.1.1' },
  ]);
  assert.deepEqual(staleUdpDeletions(udpState([udp([])]), udpState([udp(['10.0.2.1'])])), [
    { protocol: 'udp', origDst: '10.96.0.10', origDstPort: 53, replySrc: '10.96.0.10' },
  ]);
  assert.deepEqual(staleUdpDeletions(udpState([udp(['10.0.2.1'])]), udpState([udp(['10.0.2.1'])])), []);
  assert.deepEqual(staleUdpDeletions(udpState([sp({ endpoints: [ep('10.0.1.1', 80)] })]), udpState([])), [], 'TCP ends its own connections');
});

test('a partial sync (changed Services only) leaves iptables exactly as a full sync would', { skip: isRoot ? false : 'needs root to create network namespaces' }, async () => {
  const { IptablesBackend } = await import('../src/proxy/iptables/backend.ts');
  const { run } = await import('../src/dataplane/linux/exec.ts');
  const svc = (name: string, eps: string[], over: Partial<ServicePortInfo> = {}) => sp({ name, clusterIP: `172.30.0.${40 + Number(name.replace(/\D/g, '') || 0)}`, endpoints: eps.map((ip) => ep(ip, 80)), ...over });
  const a = [svc('s1', ['10.0.1.1', '10.0.2.1']), svc('s2', ['10.0.1.2']), svc('s3', ['10.0.1.3'], { nodePort: 30003 }), svc('s4', [])];
  const b = [svc('s1', ['10.0.1.1', '10.0.3.1']), a[1]!, svc('s4', ['10.0.1.4']), svc('s5', ['10.0.1.5'], { affinitySeconds: 60 })]; // s2 the same object; s3 gone
  const normalize = (save: string) => save.split('\n').filter((l) => !l.startsWith('#')).sort();
  const names = [`kwt-ipa-${process.pid}`, `kwt-ipb-${process.pid}`];
  for (const n of names) await run(['ip', 'netns', 'add', n]);
  try {
    const [x, y] = names.map((n) => new IptablesBackend(linux.at(`/var/run/netns/${n}`), { clusterCIDR: '10.0.0.0/8' }));
    assert.equal((await x!.apply(a)).partial, false);
    assert.equal((await x!.apply(b)).partial, true);
    await y!.apply(b);
    const [got, want] = await Promise.all(names.map((n) => run(['iptables-save'], { netns: `/var/run/netns/${n}` })));
    assert.deepEqual(normalize(got!), normalize(want!));
    assert.ok(!got!.includes('30003'), 'the removed Service left nothing');
  } finally {
    for (const n of names) await run(['ip', 'netns', 'del', n]);
  }
});

test('terminating endpoints serve only when no endpoint is ready (KEP-1669)', async () => {
  const { categorize } = await import('../src/proxy/model.ts');
  const term = (ip: string, local = false) => ({ ip, port: 80, ready: false, serving: true, terminating: true, local });
  assert.deepEqual(categorize(sp({ endpoints: [ep('10.0.1.1', 80), term('10.0.1.2')] })).cluster.map((e) => e.ip), ['10.0.1.1']);
  assert.deepEqual(categorize(sp({ endpoints: [term('10.0.1.2', true), { ...term('10.0.1.3'), serving: false }] })).cluster.map((e) => e.ip), ['10.0.1.2']);
  const rules = buildRules([sp({ clusterIP: '172.30.0.41', endpoints: [term('10.0.1.2')] })], { clusterCIDR: '10.0.0.0/8' });
  assert.ok(natTable(rules).some((l) => l.includes('--to-destination 10.0.1.2:80')), 'a terminating endpoint still serves when it is the last one');
});

test('a rejected ruleset leaves the previous one in place, is reported, and the next sync is a full one (both modes)', { skip: isRoot ? false : 'needs root to create network namespaces' }, async () => {
  const { IptablesBackend } = await import('../src/proxy/iptables/backend.ts');
  const { NftablesBackend } = await import('../src/proxy/nftables/backend.ts');
  const { run } = await import('../src/dataplane/linux/exec.ts');
  const good = [sp({ clusterIP: '172.30.0.41', endpoints: [ep('10.0.1.1', 80)] })];
  // An address the kernel refuses: the whole transaction fails.
  const bad = [good[0]!, sp({ name: 'svc9', clusterIP: '172.30.0.999', endpoints: [ep('10.0.1.9', 80)] })];
  for (const mode of ['iptables', 'nftables'] as const) {
    const ns = `kwt-rej-${mode.slice(0, 3)}-${process.pid}`;
    const path = `/var/run/netns/${ns}`;
    await run(['ip', 'netns', 'add', ns]);
    try {
      const backend = mode === 'iptables' ? new IptablesBackend(linux.at(path), { clusterCIDR: '10.0.0.0/8' }) : new NftablesBackend(linux.at(path), { clusterCIDR: '10.0.0.0/8' });
      await backend.apply(good);
      const before = mode === 'iptables' ? await run(['iptables-save', '-t', 'nat'], { netns: path }) : await run(['nft', 'list', 'table', 'ip', 'kubewire'], { netns: path });
      await assert.rejects(backend.apply(bad), mode);
      const after = mode === 'iptables' ? await run(['iptables-save', '-t', 'nat'], { netns: path }) : await run(['nft', 'list', 'table', 'ip', 'kubewire'], { netns: path });
      const strip = (t: string) => t.split('\n').filter((l) => !l.startsWith('#')).join('\n');
      assert.equal(strip(after), strip(before), `${mode}: the previous rules stay`);
      assert.equal((await backend.apply(good)).partial, false, `${mode}: the next sync is a full one`);
      assert.equal((await backend.apply(good)).partial, true, `${mode}: and then partial again`);
    } finally {
      await run(['ip', 'netns', 'del', ns]);
    }
  }
});
