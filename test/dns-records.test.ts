// The cluster DNS without a cluster (no root): the Kubernetes DNS specification's records
// answered from a fixed set of Services and EndpointSlices, and the wire protocol around them
// (EDNS0, truncation, FORMERR/NOTIMP/REFUSED, a cache emptied by a change, random bytes).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import type { EndpointSlice, Service } from '../src/api/types.ts';
import { answer, type ClusterView } from '../src/dns/records.ts';
import { cacheKey, DnsServer } from '../src/dns/server.ts';

const svc = (namespace: string, name: string, spec: Service['spec']): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace, name }, spec });
const slice = (namespace: string, service: string, endpoints: Array<{ ip: string; ready?: boolean; hostname?: string }>, ports = [{ name: 'http', port: 8080, protocol: 'TCP' as const }]): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { namespace, name: `${service}-x`, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  ports,
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.hostname ? { hostname: e.hostname } : {}) })),
});

const SERVICES = [
  svc('default', 'web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
  svc('prod', 'db', { clusterIP: '10.96.0.30', ports: [{ port: 5432 }] }),
  svc('default', 'peers', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }),
  svc('default', 'early', { clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ name: 'http', port: 80 }] }),
  svc('default', 'ext', { type: 'ExternalName', externalName: 'example.org' }),
];
const SLICES = [
  slice('default', 'web', [{ ip: '10.244.0.2' }]),
  slice('default', 'peers', [{ ip: '10.244.0.5', hostname: 'p0' }, { ip: '10.244.1.6' }, { ip: '10.244.1.7', ready: false }]),
  slice('default', 'early', [{ ip: '10.244.1.9', ready: false }]),
];

function fixedView(services: Service[] = SERVICES, slices: EndpointSlice[] = SLICES): ClusterView & { generation: number } {
  return {
    zone: 'cluster.local',
    generation: 0,
    service: (ns, name) => services.find((s) => s.metadata.namespace === ns && s.metadata.name === name),
    slices: (ns, name) => slices.filter((s) => s.metadata.namespace === ns && s.metadata.labels?.['kubernetes.io/service-name'] === name),
    hasNamespace: (ns) => services.some((s) => s.metadata.namespace === ns),
    byClusterIP: (ip) => services.find((s) => s.spec.clusterIP === ip),
    byEndpointIP: (ip) => (ip === '10.244.0.5' ? [{ service: services[2]!, hostname: 'p0' }] : []),
    ownsAddress: (ip) => ip.startsWith('10.96.') || ip.startsWith('10.244.'),
  };
}
const view = fixedView();
const data = (name: string, type: string) => answer(view, name, type).answers.map((r) => (typeof r.data === 'string' ? r.data : JSON.stringify(r.data)));

test('A records: a ClusterIP Service, another namespace, any case, a final dot; AAAA of an IPv4 Service is NODATA', () => {
  assert.deepEqual(data('web.default.svc.cluster.local', 'A'), ['10.96.0.20']);
  assert.deepEqual(data('DB.Prod.svc.cluster.local.', 'A'), ['10.96.0.30']);
  const aaaa = answer(view, 'web.default.svc.cluster.local', 'AAAA');
  assert.equal(aaaa.rcode, 'NOERROR');
  assert.deepEqual(aaaa.answers, []);
  assert.equal(aaaa.authorities[0]?.type, 'SOA', 'a negative answer carries the SOA (its TTL caches it)');
  assert.equal(answer(view, 'web.default.svc.cluster.local', 'A').answers[0]?.ttl, 5);
});

test('NXDOMAIN vs NODATA: missing names do not exist; the zone, svc, a namespace with Services exist with nothing of their own', () => {
  assert.equal(answer(view, 'nope.default.svc.cluster.local', 'A').rcode, 'NXDOMAIN');
  assert.equal(answer(view, 'default.svc.cluster.local', 'A').rcode, 'NOERROR');
  assert.equal(answer(view, 'nowhere.svc.cluster.local', 'A').rcode, 'NXDOMAIN');
  assert.equal(answer(view, 'svc.cluster.local', 'A').rcode, 'NOERROR');
  assert.equal(answer(view, 'cluster.local', 'SOA').answers[0]?.type, 'SOA');
  assert.equal(answer(view, 'x.web.default.svc.cluster.local', 'A').rcode, 'NXDOMAIN');
  assert.deepEqual(data('dns-version.cluster.local', 'TXT'), ['1.1.0'], "the schema version the specification asks for");
  assert.equal(answer(view, 'example.org', 'A').forward, true, 'not ours: forwarded');
});

test('headless: an A record per ready endpoint, hostnames and dashed IPs as names; publishNotReadyAddresses; SRV per endpoint', () => {
  assert.deepEqual(data('peers.default.svc.cluster.local', 'A').sort(), ['10.244.0.5', '10.244.1.6']);
  assert.deepEqual(data('p0.peers.default.svc.cluster.local', 'A'), ['10.244.0.5'], 'hostname + subdomain');
  assert.deepEqual(data('10-244-1-6.peers.default.svc.cluster.local', 'A'), ['10.244.1.6']);
  assert.equal(answer(view, '10-244-1-7.peers.default.svc.cluster.local', 'A').rcode, 'NXDOMAIN', 'not ready: not published');
  assert.deepEqual(data('early.default.svc.cluster.local', 'A'), ['10.244.1.9'], 'publishNotReadyAddresses');
  const srv = answer(view, '_http._tcp.peers.default.svc.cluster.local', 'SRV').answers.map((r) => (r.data as { target: string; port: number }));
  assert.deepEqual(srv.map((d) => `${d.target}:${d.port}`).sort(), ['10-244-1-6.peers.default.svc.cluster.local:8080', 'p0.peers.default.svc.cluster.local:8080']);
});

test('SRV for named ports of a ClusterIP Service; ExternalName is a CNAME; PTR for ClusterIPs and headless endpoints; pod records', () => {
  const srv = answer(view, '_http._tcp.web.default.svc.cluster.local', 'SRV').answers[0]!;
  assert.deepEqual(srv.data, { priority: 0, weight: 100, port: 80, target: 'web.default.svc.cluster.local' });
  assert.deepEqual(data('_dns._udp.web.default.svc.cluster.local', 'SRV').map((d) => JSON.parse(d).port), [53]);
  assert.equal(answer(view, '_http._udp.web.default.svc.cluster.local', 'SRV').rcode, 'NXDOMAIN', 'no such protocol for that port');
  assert.deepEqual(answer(view, 'ext.default.svc.cluster.local', 'A').answers, [{ type: 'CNAME', name: 'ext.default.svc.cluster.local', ttl: 5, data: 'example.org' }]);
  assert.deepEqual(data('20.0.96.10.in-addr.arpa', 'PTR'), ['web.default.svc.cluster.local']);
  assert.deepEqual(data('5.0.244.10.in-addr.arpa', 'PTR'), ['p0.peers.default.svc.cluster.local']);
  assert.equal(answer(view, '99.0.96.10.in-addr.arpa', 'PTR').rcode, 'NXDOMAIN');
  assert.equal(answer(view, '1.1.168.192.in-addr.arpa', 'PTR').forward, true, 'not one of ours');
  assert.deepEqual(data('10-244-1-3.default.pod.cluster.local', 'A'), ['10.244.1.3']);
  assert.equal(answer(view, '10-244-1.default.pod.cluster.local', 'A').rcode, 'NXDOMAIN');
});

const query = (name: string, type: packet.RecordType, o: { edns?: number; id?: number } = {}) =>
  packet.encode({ type: 'query', id: o.id ?? 7, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...(o.edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: o.edns }] } : {}) } as packet.Packet);

test('the wire: an answer with the query ID, authoritative; EDNS0 echoed; too big for UDP: truncated, whole over TCP', async () => {
  const many = Array.from({ length: 100 }, (_, i) => ({ ip: `10.244.2.${i + 1}` }));
  const server = new DnsServer({ view: fixedView([...SERVICES, svc('default', 'big', { clusterIP: 'None' })], [...SLICES, slice('default', 'big', many)]) });
  const r = packet.decode((await server.respond(query('web.default.svc.cluster.local', 'A', { id: 4242 }), 'udp'))!) as unknown as packet.Packet & { rcode: string; flag_aa: boolean };
  assert.equal(r.id, 4242);
  assert.equal(r.rcode, 'NOERROR');
  assert.equal(r.flag_aa, true);
  const again = packet.decode((await server.respond(query('web.default.svc.cluster.local', 'A', { id: 99 }), 'udp'))!);
  assert.equal(again.id, 99, 'a cached answer carries the new ID');
  const nx = packet.decode((await server.respond(query('nope.default.svc.cluster.local', 'A'), 'udp'))!) as unknown as packet.Packet & { rcode: string };
  assert.equal(nx.rcode, 'NXDOMAIN');
  assert.equal(nx.authorities?.[0]?.type, 'SOA');
  const udp = packet.decode((await server.respond(query('big.default.svc.cluster.local', 'A', { edns: 1232 }), 'udp'))!) as packet.Packet & { flag_tc: boolean };
  assert.equal(udp.flag_tc, true, '100 A records do not fit 1232 bytes');
  assert.deepEqual(udp.answers, []);
  assert.ok(udp.additionals?.some((a) => a.type === 'OPT'), 'EDNS0 answered with EDNS0');
  const tcp = packet.decode((await server.respond(query('big.default.svc.cluster.local', 'A'), 'tcp'))!);
  assert.equal(tcp.answers?.length, 100);
  // An ExternalName to a name of the cluster: the CNAME and its target's record, in one answer.
  const alias = new DnsServer({ view: fixedView([...SERVICES, svc('default', 'alias', { type: 'ExternalName', externalName: 'web.default.svc.cluster.local' })]) });
  const chased = packet.decode((await alias.respond(query('alias.default.svc.cluster.local', 'A'), 'udp'))!);
  assert.deepEqual(chased.answers?.map((r) => `${r.type} ${(r as { data: string }).data}`), ['CNAME web.default.svc.cluster.local', 'A 10.96.0.20']);
  // The cache's key, read from the bytes: what the answer depends on, and nothing of an unusual query.
  assert.match(cacheKey(query('web.default.svc.cluster.local', 'A', { edns: 4096 }), 'udp')!.key, /\|1232\|1\|1\|0$/, 'EDNS: our 1232-byte limit, RD set');
  assert.equal(cacheKey(query('web.default.svc.cluster.local', 'SRV'), 'tcp')!.qtype, 33);
  assert.notEqual(cacheKey(query('Web.default.svc.cluster.local', 'A'), 'udp')!.key, cacheKey(query('web.default.svc.cluster.local', 'A'), 'udp')!.key, 'the question is echoed as asked: case counts');
  const pointer = Buffer.from(query('web.default.svc.cluster.local', 'A'));
  pointer[12] = 0xc0;
  assert.equal(cacheKey(pointer, 'udp'), undefined);
});

test('bad queries: FORMERR, NOTIMP, REFUSED (another class; outside the cluster with no upstream); responses and runts are not answered; random bytes never throw', async () => {
  const server = new DnsServer({ view });
  const rcode = async (b: Buffer) => {
    const out = await server.respond(b, 'udp');
    return out ? out[3]! & 0x0f : undefined;
  };
  const q = query('web.default.svc.cluster.local', 'A');
  assert.equal(await rcode(Buffer.concat([q.subarray(0, 12), Buffer.from([0xff, 0xff])])), 1, 'FORMERR: the question does not parse');
  const twoQuestions = packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.cluster.local' }, { type: 'A', name: 'b.cluster.local' }] });
  assert.equal(await rcode(twoQuestions), 1, 'FORMERR: two questions');
  const status = Buffer.from(q);
  status[2] = (status[2]! & 0x87) | (2 << 3); // opcode STATUS
  assert.equal(await rcode(status), 4, 'NOTIMP');
  assert.equal(await rcode(packet.encode({ type: 'query', id: 2, questions: [{ type: 'TXT', name: 'version.bind', class: 'CH' }] } as packet.Packet)), 5, 'REFUSED: class CH');
  assert.equal(await rcode(query('example.org', 'A')), 5, 'REFUSED: no upstream resolver');
  assert.equal(await server.respond(Buffer.from([1, 2, 3]), 'udp'), undefined, 'a runt');
  const response = Buffer.from(q);
  response[2] = response[2]! | 0x80;
  assert.equal(await server.respond(response, 'udp'), undefined, 'a response is never answered (no reflection loops)');
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 10_000; i++) {
    const len = 1 + (rand() % 64);
    const b = Buffer.from(Array.from({ length: len }, rand));
    if (i % 2) q.copy(b, 0, 0, Math.min(12, len)); // half of them with a plausible header
    await server.respond(b, 'udp');
  }
  assert.equal(await rcode(q), 0, 'still answering');
});
