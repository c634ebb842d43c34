// The trace's parsers and decisions, without root: nft monitor's trace lines, x_tables'
// TRACE records as tcpdump writes them (pcap, DLT_NFLOG), iptables-save chains, nft
// priorities, and which way a packet goes for a probe.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chainPolicies, chainRules, nftBaseChains, nftPriority, parseIPv4, parseNflogPcap, parseNftTrace } from '../src/trace/events.ts';
import { conntrackHop, direction, ingressHop, natAliases, parseConntrack, passages } from '../src/trace/explain.ts';
import { parseTraceRequest, TraceError, type RawTraceRequest } from '../src/trace/input.ts';
import { freeRange } from '../src/trace/sessions.ts';
import { tracePort } from '../src/ingress/decide.ts';
import { parseConntrackList } from '../src/dataplane/observations.ts';
import { isTraceChain, ownTraceEvent, session, traceTableScript, type Probe } from '../src/trace/observe.ts';

const NFT = `add table ip kubewire-trace
trace id 62a77eea ip kubewire-trace trace-prerouting packet: iif "cni0" ether saddr 4e:0a:78:f6:48:55 ether daddr 7e:06:b7:22:31:9a ip saddr 10.244.0.5 ip daddr 10.96.0.20 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 37774 ip length 60 tcp sport 61007 tcp dport 80 tcp flags == syn tcp window 64240
trace id 62a77eea ip kubewire-trace trace-prerouting unknown rule handle 6 (verdict continue)
trace id 62a77eea ip kubewire-trace trace-prerouting policy accept
trace id 62a77eea ip kubewire nat-prerouting rule jump services (verdict jump services)
trace id 62a77eea ip kubewire services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-web)
trace id 9a0b0c0d ip kubewire filter-forward packet: iif "cni0" oif "eth0" ip saddr 10.244.0.5 ip daddr 10.244.1.7 tcp sport 61007 tcp dport 8080 tcp flags == syn
trace id 9a0b0c0d ip kubewire filter-forward policy drop
trace id 2f6a575b ip kubewire-trace trace-output packet: oif "eth0" ip saddr 10.244.1.7 ip daddr 10.244.0.5 tcp sport 8080 tcp dport 61007 tcp flags == 0x14 tcp window 0
`;

const probe: Probe = { from: { kind: 'pod', name: 'default/a', netns: '/var/run/netns/a' }, protocol: 'tcp', dst: '10.96.0.20', dport: 80, sport: 61007 };

test('nft monitor trace lines: packets with their headers, rules with verdicts, policies', () => {
  const events = parseNftTrace(NFT);
  assert.equal(events.length, 8, 'ruleset changes are skipped');
  assert.deepEqual(events[0]!.packet, { iif: 'cni0', etherSaddr: '4e:0a:78:f6:48:55', etherDaddr: '7e:06:b7:22:31:9a', saddr: '10.244.0.5', daddr: '10.96.0.20', protocol: 'tcp', sport: 61007, dport: 80, flags: ['syn'] });
  assert.deepEqual([events[1]!.rule, events[1]!.verdict], ['handle 6', 'continue']);
  assert.deepEqual([events[4]!.chain, events[4]!.rule, events[4]!.verdict], ['services', 'ip daddr . meta l4proto . th dport vmap @service-ips', 'goto service-web']);
  assert.deepEqual([events[6]!.type, events[6]!.verdict], ['policy', 'drop']);
  assert.deepEqual(events[7]!.packet!.flags, ['rst', 'ack'], '0x14 as names');
});

test('passages: a packet\'s trace ids joined in hook order; the kernel\'s policy drop ends it; the reply apart', () => {
  const events = parseNftTrace(NFT);
  const snap = { links: [], neighbours: [], fdb: new Map(), conntrack: [], ipvs: [], iptables: new Map(), nftChains: nftBaseChains('table ip kubewire {\n\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n\tchain filter-forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n') };
  const [request] = passages(events, snap, probe, 'request');
  assert.equal(request!.arrived!.daddr, '10.96.0.20');
  assert.equal(request!.forwarded, undefined, 'dropped before the trace chain at forward');
  assert.equal(request!.events.at(-2)!.packet!.daddr, '10.244.1.7', 'after DNAT');
  assert.deepEqual(request!.events.map((e) => `${e.hook}/${e.chain}/${e.type}`), [
    'prerouting/trace-prerouting/packet', 'prerouting/trace-prerouting/rule', 'prerouting/trace-prerouting/policy', 'prerouting/nat-prerouting/rule', 'prerouting/services/rule', 'forward/filter-forward/packet', 'forward/filter-forward/policy',
  ]);
  const [reply] = passages(events, snap, probe, 'reply');
  assert.equal(reply!.sent!.saddr, '10.244.1.7');
});

test('which way a packet goes for a probe', () => {
  assert.equal(direction({ protocol: 'tcp', sport: 61007, dport: 80 }, probe), 'request');
  assert.equal(direction({ protocol: 'tcp', sport: 80, dport: 61007 }, probe), 'reply');
  assert.equal(direction({ protocol: 'udp', sport: 61007, dport: 80 }, probe), undefined, 'another protocol');
  assert.equal(direction({ protocol: 'icmp', icmpType: 'destination-unreachable', daddr: '10.244.0.5', inner: { saddr: '10.244.0.5', daddr: '10.96.0.20', protocol: 'tcp', sport: 61007, dport: 80 } }, probe), 'reply');
  assert.equal(direction({ protocol: 'icmp', icmpType: 'destination-unreachable', daddr: '10.244.0.5' }, probe), undefined, 'an ICMP error without its quote is nobody\'s...');
  assert.equal(direction({ protocol: 'icmp', icmpType: 'destination-unreachable', daddr: '10.244.0.5' }, probe, '10.244.0.5'), 'reply', '...unless the sender is known to have had one refusal');
  const ping: Probe = { ...probe, protocol: 'icmp', sport: 61010 };
  assert.equal(direction({ protocol: 'icmp', icmpType: 'echo-request', icmpId: 61010 }, ping), 'request');
  assert.equal(direction({ protocol: 'icmp', icmpType: 'echo-reply', icmpId: 61010 }, ping), 'reply');
});

/** A pcap stream of NFLOG records as libpcap writes them: a TRACE prefix and the packet. */
function nflogPcap(records: Array<{ prefix: string; packet: Buffer; usec: number }>): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(239, 20);
  const tlv = (type: number, value: Buffer) => {
    const len = 4 + value.length;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(type, 2);
    value.copy(b, 4);
    return b;
  };
  const parts = [header];
  for (const r of records) {
    const body = Buffer.concat([Buffer.from([2, 0, 0, 0]), tlv(10, Buffer.from(`${r.prefix}\0`)), tlv(9, r.packet)]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000, 0);
    rec.writeUInt32LE(r.usec, 4);
    rec.writeUInt32LE(body.length, 8);
    rec.writeUInt32LE(body.length, 12);
    parts.push(rec, body);
  }
  return Buffer.concat(parts);
}

function tcpPacket(src: string, dst: string, sport: number, dport: number, flags: number): Buffer {
  const b = Buffer.alloc(40);
  b[0] = 0x45;
  b[9] = 6;
  src.split('.').forEach((o, i) => (b[12 + i] = Number(o)));
  dst.split('.').forEach((o, i) => (b[16 + i] = Number(o)));
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b[33] = flags;
  return b;
}

test('x_tables TRACE records read from tcpdump\'s nflog pcap, with the packet each was about', () => {
  const pcap = nflogPcap([
    { prefix: 'TRACE: nat:PREROUTING:rule:1 ', packet: tcpPacket('10.244.0.5', '10.96.0.20', 61007, 80, 0x02), usec: 10 },
    { prefix: 'TRACE: nat:KUBE-SEP-ABC:rule:2 ', packet: tcpPacket('10.244.0.5', '10.96.0.20', 61007, 80, 0x02), usec: 11 },
    { prefix: 'TRACE: filter:FORWARD:policy:4 ', packet: tcpPacket('10.244.0.5', '10.244.1.7', 61007, 8080, 0x02), usec: 12 },
    { prefix: 'not a trace', packet: tcpPacket('1.1.1.1', '2.2.2.2', 1, 2, 0), usec: 13 },
  ]);
  const events = parseNflogPcap(pcap);
  assert.equal(events.length, 3);
  assert.deepEqual(events.map((e) => [e.table, e.chain, e.type, e.ruleNumber]), [['nat', 'PREROUTING', 'rule', 1], ['nat', 'KUBE-SEP-ABC', 'rule', 2], ['filter', 'FORWARD', 'policy', 4]]);
  assert.deepEqual(events[2]!.packet, { saddr: '10.244.0.5', daddr: '10.244.1.7', protocol: 'tcp', sport: 61007, dport: 8080, flags: ['syn'] });
  assert.equal(events[1]!.time, 1_700_000_000_000_011);
  assert.deepEqual(parseNflogPcap(Buffer.alloc(0)), []);
  assert.throws(() => parseNflogPcap(Buffer.alloc(24, 1)), /not a pcap/);
});

test('an ICMP error carries the packet it answers', () => {
  const inner = tcpPacket('10.244.0.5', '10.96.0.30', 61007, 80, 0x02);
  const icmp = Buffer.concat([Buffer.from([3, 3, 0, 0, 0, 0, 0, 0]), inner]);
  const outer = Buffer.concat([Buffer.from([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 244, 0, 1, 10, 244, 0, 5]), icmp]);
  assert.deepEqual(parseIPv4(outer), { saddr: '10.244.0.1', daddr: '10.244.0.5', protocol: 'icmp', icmpType: 'destination-unreachable', inner: { saddr: '10.244.0.5', daddr: '10.96.0.30', protocol: 'tcp', sport: 61007, dport: 80 } });
});

test('iptables-save chains and policies; nft priorities by name', () => {
  const save = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\n-A FORWARD -d 10.0.0.0/8 -j DROP\n-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT\nCOMMIT\n';
  assert.deepEqual(chainRules(save).get('FORWARD'), ['-A FORWARD -j KUBE-FORWARD', '-A FORWARD -d 10.0.0.0/8 -j DROP']);
  assert.equal(chainPolicies(save).get('FORWARD'), 'DROP');
  assert.equal(chainPolicies(save).get('KUBE-FORWARD'), undefined);
  assert.equal(nftPriority('dstnat'), -100);
  assert.equal(nftPriority('srcnat + 10'), 110);
  assert.equal(nftPriority('filter - 5'), -5);
  assert.equal(nftPriority('-350'), -350);
});

test('a conntrack entry as a hop: what NAT did, read from its reply tuple', () => {
  const snap = { links: [], neighbours: [], fdb: new Map(), ipvs: [], iptables: new Map(), nftChains: new Map(), conntrack: parseConntrackList('tcp      6 119 TIME_WAIT src=172.18.0.200 dst=172.18.0.11 sport=61007 dport=31388 src=10.244.0.3 dst=10.244.0.1 sport=8080 dport=61007 [ASSURED] mark=1802990706 use=1') };
  const hop = conntrackHop('node/n1', snap, probe)!;
  assert.equal(hop.translation, 'DNAT 172.18.0.11:31388 → 10.244.0.3:8080, SNAT 172.18.0.200:61007 → 10.244.0.1:61007');
  assert.match(hop.detail, /^tcp entry 172\.18\.0\.200:61007 → 172\.18\.0\.11:31388, reply expected from 10\.244\.0\.3:8080; now TIME_WAIT \[ASSURED\]$/);
  assert.equal(conntrackHop('node/n1', snap, { ...probe, sport: 61008 }), undefined);
});

test('the trace table marks only the session\'s ports, and conntrack only where asked', () => {
  const withCt = traceTableScript(session(61000, 61009), true);
  assert.match(withCt, /^table ip kubewire-trace-61000 \{/);
  assert.match(withCt, /tcp sport 61000-61009 tcp flags & \(syn \| ack\) == syn meta nftrace set 1/);
  assert.match(withCt, /type filter hook prerouting priority -350;/);
  assert.match(withCt, /ct original proto-src 61000-61009 ct mark set 0x6b770000/);
  assert.match(traceTableScript(session(61234, 61240), true), /ct mark set 0x6b7700ea/, 'each session its own mark');
  assert.doesNotMatch(traceTableScript(session(61000, 61000), false), /ct mark/);
  assert.match(traceTableScript(session(61000, 61000), false), /udp sport 61000 meta nftrace set 1/);
  const masq = traceTableScript(session(61000, 61000), false, ['172.18.0.11', '10.244.0.1']);
  assert.match(masq, /ip saddr \{ 172\.18\.0\.11, 10\.244\.0\.1 \} tcp flags & \(syn \| ack\) == syn meta nftrace set 1/, 'a masqueraded SYN, whatever its new port');
});

test('the ingress takes a trace port only inside the trace range; its answer names the rule and endpoint', () => {
  assert.equal(tracePort('61234'), 61234);
  for (const bad of [undefined, '', '80', '60999', '65000', '6123x', '61234 61235', '-61234']) assert.equal(tracePort(bad), undefined, String(bad));
  const http: Probe = { ...probe, http: { host: 'shop.example', path: '/cart' }, upstreamPort: 61008 };
  const ok = ingressHop('node/n2', http, 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nX-Kubewire-Trace-Route: ingress default/shop rule shop.example/ (Prefix) -> service default/web:80 -> endpoint 10.244.1.4:8080\r\n\r\n');
  assert.deepEqual(ok.endpoint, { ip: '10.244.1.4', port: 8080 });
  assert.equal(ok.hop.rule, 'ingress default/shop rule shop.example/ (Prefix) -> service default/web:80');
  assert.equal(ok.hop.translation, 'a new connection to 10.244.1.4:8080 from port 61008');
  const none = ingressHop('node/n2', http, 'HTTP/1.1 404 Not Found\r\n\r\n');
  assert.equal(none.endpoint, undefined);
  assert.match(none.reason, /answered 404 itself: no Ingress rule matches shop\.example\/cart/);
});

test('x_tables alone (a kernel without nf_tables): passages start at the trace chain; IPVS sending on through OUTPUT stays one passage; mangle is where the packet was seen', () => {
  const pkt = (daddr: string, dport: number) => ({ saddr: '10.244.0.5', daddr, protocol: 'tcp' as const, sport: 61007, dport, flags: ['syn'] });
  const ev = (table: string, chain: string, type: 'rule' | 'return' | 'policy', n: number, packet: ReturnType<typeof pkt>, dev: { indev?: number; outdev?: number } = {}) => ({ source: 'iptables' as const, packetKey: '0', table, chain, type, ruleNumber: n, packet, ...dev });
  const vip = pkt('10.96.0.20', 80);
  const real = pkt('10.244.1.3', 8080);
  const events = [
    ev('raw', 'KUBEWIRE-TRACE', 'return', 10, vip, { indev: 4 }),
    ev('raw', 'PREROUTING', 'policy', 2, vip, { indev: 4 }),
    ev('mangle', 'PREROUTING', 'policy', 1, vip, { indev: 4 }),
    ev('nat', 'PREROUTING', 'rule', 1, vip, { indev: 4 }),
    ev('mangle', 'INPUT', 'policy', 2, vip, { indev: 4 }),
    ev('raw', 'OUTPUT', 'rule', 1, real, { outdev: 2 }),
    ev('raw', 'KUBEWIRE-TRACE', 'rule', 1, real, { outdev: 2 }),
    ev('raw', 'KUBEWIRE-TRACE', 'return', 10, real, { outdev: 2 }),
    ev('mangle', 'OUTPUT', 'policy', 1, real, { outdev: 2 }),
    ev('mangle', 'POSTROUTING', 'policy', 2, real, { indev: 4, outdev: 2 }),
    // A retransmission: a new packet.
    ev('raw', 'KUBEWIRE-TRACE', 'return', 10, vip, { indev: 4 }),
    ev('mangle', 'PREROUTING', 'policy', 1, vip, { indev: 4 }),
  ];
  const snap = { links: [{ ifindex: 4, ifname: 'cni0' }, { ifindex: 2, ifname: 'eth0' }] as never, neighbours: [], fdb: new Map(), conntrack: [], iptables: new Map(), nftChains: new Map(), ipvs: [] };
  const [first, second, ...more] = passages(events, snap, probe, 'request');
  assert.equal(more.length, 0);
  assert.equal(first!.arrived!.iif, 'cni0');
  assert.equal(first!.local!.daddr, '10.96.0.20', 'taken at INPUT for the virtual server');
  assert.equal(first!.left!.daddr, '10.244.1.3', 'and sent on to the real server');
  assert.equal(first!.left!.oif, 'eth0');
  assert.equal(second!.arrived!.daddr, '10.96.0.20');
  assert.equal(second!.left, undefined);
});

test('a masqueraded probe: its new source port read from the NAT\'s conntrack entry, and its packets recognised by it', () => {
  const snap = (conntrack: string[]) => ({ links: [], neighbours: [], fdb: new Map(), ipvs: [], iptables: new Map(), nftChains: new Map(), conntrack: parseConntrackList(conntrack.join('\n')) });
  const snapshots = new Map([
    ['n1', snap(['tcp      6 119 TIME_WAIT src=172.18.0.200 dst=172.18.0.11 sport=61007 dport=31388 src=10.244.1.3 dst=172.18.0.11 sport=8080 dport=48211 [ASSURED] mark=1802960896 use=1'])],
    ['n2', snap(['tcp      6 119 TIME_WAIT src=10.244.0.5 dst=10.96.0.20 sport=61008 dport=80 src=10.244.1.4 dst=10.244.0.5 sport=8080 dport=61008 [ASSURED] mark=1802960896 use=1'])],
  ]);
  const aliases = natAliases({ snapshots }, probe);
  assert.deepEqual(aliases, [{ addr: '172.18.0.11', port: 48211 }]);
  assert.deepEqual(natAliases({ snapshots }, { ...probe, sport: 61008 }), [], 'DNAT alone keeps the source');
  const followed = { ...probe, aliases };
  assert.equal(direction({ protocol: 'tcp', saddr: '172.18.0.11', daddr: '10.244.1.3', sport: 48211, dport: 8080 }, followed), 'request');
  assert.equal(direction({ protocol: 'tcp', saddr: '10.244.1.3', daddr: '172.18.0.11', sport: 8080, dport: 48211 }, followed), 'reply');
  assert.equal(direction({ protocol: 'tcp', saddr: '172.18.0.12', daddr: '10.244.1.3', sport: 48211, dport: 8080 }, followed), undefined, 'the same port from another address is another connection');
  assert.deepEqual(parseConntrack('icmp     1 29 src=172.18.0.11 dst=10.244.1.3 type=8 code=0 id=61010 src=10.244.1.3 dst=10.244.0.1 type=0 code=0 id=3321 mark=0 use=1')?.reply, { src: '10.244.1.3', dst: '10.244.0.1', sport: 3321, dport: 3321 });
});

test('the request checked in one place: each bad part named in one line', () => {
  const ok = (raw: RawTraceRequest) => parseTraceRequest(raw);
  assert.deepEqual(ok({ from: 'pod/client', to: '10.96.0.10:53' }), { from: 'pod/client', to: '10.96.0.10', namespace: 'default', port: 53 });
  assert.deepEqual(ok({ from: 'po/client', to: 'web.shop.svc.cluster.local:80', namespace: 'default' }), { from: 'pod/client', to: 'service/web', namespace: 'default', toNamespace: 'shop', port: 80 });
  assert.deepEqual(ok({ from: 'external', to: 'https://secure.example/a', node: 'n2' }), { from: 'external', to: 'https://secure.example/a', namespace: 'default', node: 'n2' });
  assert.deepEqual(ok({ from: 'node/n1', to: 'svc/web', port: '8080', protocol: 'udp' }), { from: 'node/n1', to: 'service/web', namespace: 'default', port: 8080, protocol: 'udp' });
  for (const [raw, message] of [
    [{ from: 'external', to: '10.96.0.10:99999' }, /^TO "10\.96\.0\.10:99999": port "99999": a port is a number from 1 to 65535$/],
    [{ from: 'external', to: '999.1.1.1' }, /^TO "999\.1\.1\.1": "999\.1\.1\.1" is not an IPv4 address/],
    [{ from: 'external', to: '10.1.1' }, /is not an IPv4 address/],
    [{ from: 'pod/client', to: '127.0.0.1:22' }, /^TO "127\.0\.0\.1:22": 127\.0\.0\.1 is a loopback address/],
    [{ from: 'pod/client', to: '224.0.0.1' }, /multicast/],
    [{ from: 'pod/client', to: 'http://127.0.0.1/' }, /loopback/],
    [{ from: 'pod/client', to: 'service/web', port: 0 }, /^--port 0: a port is a number from 1 to 65535$/],
    [{ from: 'pod/client', to: 'service/web', port: '8o' }, /^--port "8o"/],
    [{ from: 'pod/client', to: 'service/web', protocol: 'sctp' }, /^--protocol "sctp": must be tcp, udp or icmp$/],
    [{ from: 'pod/client', to: 'deploy/web' }, /expected KIND\/NAME/],
    [{ from: 'pod/client', to: 'node/n1' }, /a node is not a destination/],
    [{ from: 'service/web', to: 'pod/x' }, /^FROM "service\/web": expected pod\/NAME, node\/NAME or external$/],
    [{ from: 'pod/client' }, /^TO is missing/],
    [{ from: 'pod/client', to: 'ftp://x/' }, /only http:\/\/ and https:\/\//],
    [{ from: 'pod/client', to: 'web.shop.example.com' }, /not a name of the cluster/],
    [{ from: 'pod/client', to: '10.96.0.10:53', port: 80 }, /name different ports/],
    [{ from: 'pod/client', to: 'service/web', node: 'n1' }, /only a URL .* takes --node/],
    [{ from: 'pod/client', to: 'service/web', namespace: 'Bad_NS' }, /^namespace "Bad_NS"/],
  ] as Array<[RawTraceRequest, RegExp]>) {
    assert.throws(() => parseTraceRequest(raw), (e: Error) => e instanceof TraceError && message.test(e.message) && !e.message.includes('\n'), JSON.stringify(raw));
  }
});

test('the ingress answering itself: below 400 answered, else rejected, with its own reason', () => {
  const http: Probe = { ...probe, http: { host: 'secure.example', path: '/a', tls: true }, upstreamPort: 61008 };
  const redirect = ingressHop('node/n1', { ...http, http: { ...http.http!, tls: false } }, 'HTTP/1.1 308 Permanent Redirect\r\nX-Kubewire-Trace-Route: ingress default/secure rule secure.example/ (Prefix) -> service default/web:80 -> answered 308: the host has TLS: plain HTTP is redirected to https://secure.example/a (ssl-redirect)\r\n\r\n');
  assert.equal(redirect.verdict, 'answered');
  assert.equal(redirect.hop.rule, 'ingress default/secure rule secure.example/ (Prefix) -> service default/web:80');
  const locked = ingressHop('node/n1', http, 'HTTP/1.1 503 Service Temporarily Unavailable\r\nX-Kubewire-Trace-Route: ingress default/locked rule locked.example/ (Prefix) -> service default/web:80 -> answered 503: annotation nginx.ingress.kubernetes.io/auth-secret: Secret default/nosuch not found: every request is answered 503\r\n\r\nkubewire-tls-verify: 20\n');
  assert.equal(locked.verdict, 'rejected');
  assert.match(locked.reason, /answered 503 itself: annotation .*auth-secret: Secret default\/nosuch not found/);
  assert.match(locked.hop.detail, /^TLS with SNI secure\.example, certificate not trusted \(X509 verify result 20\), not checked; HTTPS GET/);
  const none = ingressHop('node/n1', http, 'HTTP/1.1 404 Not Found\r\nX-Kubewire-Trace-Route: answered 404: no Ingress rule matches host x path /\r\n\r\n');
  assert.equal(none.hop.rule, undefined);
  assert.match(none.reason, /answered 404 itself: no Ingress rule matches host x path \/$/);
});

test('sessions at once: each claims a range no other holds', () => {
  const taken = [{ lo: 61000, hi: 61999 }, { lo: 63000, hi: 63010 }];
  for (let i = 0; i < 50; i++) {
    const r = freeRange(100, taken)!;
    assert.ok(r.hi - r.lo === 99 && r.lo >= 61000 && r.hi <= 64999 && !taken.some((t) => r.lo <= t.hi && t.lo <= r.hi), JSON.stringify(r));
  }
  assert.deepEqual(freeRange(10, [{ lo: 61000, hi: 64989 }], () => 0), { lo: 64990, hi: 64999 }, 'crowded: the gap that is left');
  assert.equal(freeRange(11, [{ lo: 61000, hi: 64989 }]), undefined);
  assert.notEqual(session(61000, 61001).table, session(61002, 61003).table);
});

test('the ingress retried: the endpoints tried first are walked from the next trace ports', () => {
  const http: Probe = { ...probe, http: { host: 'shop.example', path: '/' }, upstreamPort: 61008 };
  const r = ingressHop('node/n2', http, 'HTTP/1.1 200 OK\r\nX-Kubewire-Trace-Route: ingress default/shop rule shop.example/ (Prefix) -> service default/web:80 -> tried 10.244.2.2:8080, 10.244.2.3:8080 -> endpoint 10.244.0.5:8080\r\n\r\n');
  assert.deepEqual(r.tried, [{ ip: '10.244.2.2', port: 8080 }, { ip: '10.244.2.3', port: 8080 }]);
  assert.deepEqual(r.endpoint, { ip: '10.244.0.5', port: 8080 });
  assert.equal(r.hop.rule, 'ingress default/shop rule shop.example/ (Prefix) -> service default/web:80');
  assert.equal(r.hop.translation, 'a new connection to 10.244.0.5:8080 from port 61010');
});

test('x_tables alone: the conntrack-marking chain in mangle does not start a passage (only raw\'s trace chain does)', () => {
  assert.equal(isTraceChain('KUBEWIRE-TRACE-61000'), true);
  assert.equal(isTraceChain('KUBEWIRE-TRACE-CT-61000'), false);
  assert.equal(isTraceChain('KUBEWIRE-TRACE-CT-61000', true), true);
  assert.equal(ownTraceEvent({ source: 'iptables', packetKey: '0', table: 'mangle', chain: 'KUBEWIRE-TRACE-CT-61000', type: 'return' }), true);
});
