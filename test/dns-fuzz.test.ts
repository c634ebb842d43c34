// Fuzzing the cluster DNS (issue 27, no root): 12,000 generated and mutated queries over UDP
// and 12,000 over TCP at a real server on 127.0.0.1 of this process, forwarding to a fake
// upstream. Every answer must be to the query sent: its ID, its question byte for byte (or no
// question at all, for a query that does not parse), a known response code, a size within
// what the client takes; a response is never answered; the server never throws and still
// answers afterwards; what it keeps stays bounded. The generator is seeded: a failure replays.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, test } from 'node:test';
import * as packet from 'dns-packet';
import type { EndpointSlice, Service } from '../src/api/types.ts';
import type { ClusterView } from '../src/dns/records.ts';
import { DnsServer } from '../src/dns/server.ts';

const SEED = Number(process.env.FUZZ_SEED) || 27;
const N = 12_000;

const svc = (name: string, spec: Service['spec']): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name }, spec });
const SERVICES = [svc('web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }), svc('peers', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }), svc('ext', { type: 'ExternalName', externalName: 'example.org' })];
const PEERS: EndpointSlice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { namespace: 'default', name: 'peers-1', labels: { 'kubernetes.io/service-name': 'peers' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  endpoints: Array.from({ length: 80 }, (_, i) => ({ addresses: [`10.244.1.${i + 1}`], conditions: { ready: true } })),
};
const view: ClusterView & { generation: number } = {
  zone: 'cluster.local',
  generation: 0,
  service: (ns, name) => (ns === 'default' ? SERVICES.find((s) => s.metadata.name === name) : undefined),
  slices: (ns, name) => (ns === 'default' && name === 'peers' ? [PEERS] : []),
  hasNamespace: (ns) => ns === 'default',
  byClusterIP: (ip) => SERVICES.find((s) => s.spec.clusterIP === ip),
  byEndpointIP: () => [],
  ownsAddress: (ip) => ip.startsWith('10.96.') || ip.startsWith('10.244.'),
};

/** xorshift32: the same packets for the same seed. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { int: (n: number) => next() % n, pick: <T>(a: readonly T[]): T => a[next() % a.length]!, chance: (p: number) => next() / 0x100000000 < p };
}

const NAMES = ['web.default.svc.cluster.local', 'WEB.Default.SVC.cluster.local', 'peers.default.svc.cluster.local', '_http._tcp.peers.default.svc.cluster.local', 'ext.default.svc.cluster.local', '10-244-1-3.default.pod.cluster.local', 'nope.default.svc.cluster.local', 'cluster.local', 'dns-version.cluster.local', '20.0.96.10.in-addr.arpa', '1.2.0.192.in-addr.arpa', 'example.org', ''];
const TYPES = [1, 2, 5, 6, 12, 16, 28, 33, 41, 251, 252, 255];

/** A query as a client might write it: mostly well-formed, now and then odd in every field. */
function generate(r: ReturnType<typeof prng>, id: number): Buffer {
  const labels: Buffer[] = r
    .pick(NAMES)
    .split('.')
    .filter(Boolean)
    .map((l) => Buffer.from(l));
  if (r.chance(0.15)) labels.splice(r.int(labels.length + 1), 0, Buffer.from(r.pick(['a.b', 'web.default', '\\.', ' ', 'x\0y'])));
  if (r.chance(0.1)) labels.splice(r.int(labels.length + 1), 0, Buffer.from(Array.from({ length: 1 + r.int(63) }, () => r.int(256))));
  const name = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header[2] = r.chance(0.9) ? 0x01 : r.int(256) & 0x7f; // RD, or any opcode and flags (QR clear)
  header[3] = r.chance(0.9) ? 0 : r.int(256);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(r.chance(0.7) ? r.pick(TYPES) : r.int(65536), 0);
  tail.writeUInt16BE(r.chance(0.9) ? 1 : r.int(65536), 2);
  const opts: Buffer[] = [];
  const optCount = r.chance(0.6) ? 0 : r.chance(0.8) ? 1 : 2;
  for (let i = 0; i < optCount; i++) {
    const o = Buffer.alloc(11);
    o.writeUInt16BE(41, 1);
    o.writeUInt16BE(r.pick([0, 512, 1232, 4096, 65535]), 3);
    o[6] = r.chance(0.8) ? 0 : r.int(256); // version
    if (r.chance(0.1)) o.writeUInt16BE(0x8000, 7); // DO
    opts.push(o);
  }
  header.writeUInt16BE(opts.length, 10);
  return Buffer.concat([header, name, tail, ...opts]);
}

/** Damage past the ID (kept, so that each answer finds its query): flips, cuts, garbage, odd counts, pointers. */
function mutate(r: ReturnType<typeof prng>, q: Buffer): Buffer {
  let b = Buffer.from(q);
  for (let n = 1 + r.int(3); n > 0; n--) {
    const at = 2 + r.int(Math.max(1, b.length - 2));
    switch (r.int(6)) {
      case 0:
        if (at < b.length) b[at] = b[at]! ^ (1 << r.int(8));
        break;
      case 1:
        b = b.subarray(0, Math.max(2, at));
        break;
      case 2:
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + r.int(40) }, () => r.int(256)))]);
        break;
      case 3:
        if (b.length >= 12) b.writeUInt16BE(r.pick([0, 1, 2, 255, 65535]), 4 + 2 * r.int(4));
        break;
      case 4:
        if (at + 1 < b.length) b.writeUInt16BE(0xc000 | r.int(b.length + 4), at);
        break;
      default:
        if (b.length > 12) b = Buffer.concat([b, b.subarray(12)]);
    }
  }
  return b;
}

/** The question's bytes (12 to the end of QCLASS), read independently of the server's own parser. */
function questionOf(m: Buffer): Buffer | undefined {
  if (m.length < 12 || m.readUInt16BE(4) === 0) return undefined;
  let i = 12;
  while (i < m.length && m[i] !== 0) {
    if (m[i]! & 0xc0) return undefined;
    i += m[i]! + 1;
  }
  return i + 5 <= m.length ? m.subarray(12, i + 5) : undefined;
}
const hasEdns = (q: Buffer) => {
  try {
    return (packet.decode(q).additionals ?? []).some((a) => a.type === 'OPT');
  } catch {
    return false;
  }
};

/** What an answer to `q` must be; returns the reason it is not, or undefined. */
function violation(q: Buffer, a: Buffer | undefined, proto: 'udp' | 'tcp'): string | undefined {
  const isResponse = q.length >= 3 && (q[2]! & 0x80) !== 0;
  if (!a) return isResponse || q.length < 12 || proto === 'udp' ? undefined : 'no answer over TCP';
  if (isResponse) return 'a response was answered';
  if (a.length < 12) return 'answer shorter than a header';
  if (a.readUInt16BE(0) !== q.readUInt16BE(0)) return 'another ID';
  if (!(a[2]! & 0x80)) return 'QR clear';
  const qd = a.readUInt16BE(4);
  if (qd > 1) return `${qd} questions`;
  if (qd === 1) {
    const asked = questionOf(q);
    const echoed = questionOf(a);
    if (!asked || !echoed || !asked.equals(echoed)) return `question rewritten: ${q.toString('hex')} -> ${a.toString('hex')}`;
  }
  let decoded: packet.Packet;
  try {
    decoded = packet.decode(a);
  } catch (e) {
    return `answer does not parse: ${(e as Error).message}`;
  }
  const o = (decoded.additionals ?? []).find((x) => x.type === 'OPT') as { extendedRcode?: number } | undefined;
  const rcode = ((o?.extendedRcode ?? 0) << 4) | (a[3]! & 0x0f);
  if (![0, 1, 2, 3, 4, 5, 16].includes(rcode)) return `rcode ${rcode}`;
  if (proto === 'udp' && a.length > (hasEdns(q) ? 1232 : 512)) return `${a.length} bytes over UDP`;
  return undefined;
}

let server: DnsServer;
let port = 0;
let upstreamUdp: dgram.Socket;
let upstreamTcp: Server;
/** The fake upstream answers each query with its header and question, QR set, NOERROR, no records. */
const echo = (m: Buffer) => {
  const q = questionOf(m);
  const a = Buffer.concat([m.subarray(0, 12), q ?? Buffer.alloc(0)]);
  if (a.length >= 12) {
    a[2] = a[2]! | 0x80;
    a[3] = a[3]! & 0xf0;
    a.writeUInt32BE(0, 6);
    a.writeUInt16BE(0, 10);
  }
  return a;
};
const gc = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

before(async () => {
  upstreamUdp = dgram.createSocket('udp4');
  upstreamUdp.on('message', (m, from) => upstreamUdp.send(echo(m), from.port, from.address));
  await new Promise<void>((r) => upstreamUdp.bind(0, '127.0.0.1', () => r()));
  const upstreamPort = upstreamUdp.address().port;
  upstreamTcp = createServer((s) => {
    s.on('error', () => {});
    s.once('data', (b: Buffer) => {
      const a = echo(b.subarray(2));
      s.end(Buffer.concat([Buffer.from([a.length >> 8, a.length & 0xff]), a]));
    });
  });
  await new Promise<void>((r) => upstreamTcp.listen(upstreamPort, '127.0.0.1', () => r()));
  server = new DnsServer({ view, upstream: { host: '127.0.0.1', port: upstreamPort } });
  await server.listen(0, '127.0.0.1');
  port = (server as unknown as { udp: dgram.Socket }).udp.address().port;
});
after(async () => {
  await server.close();
  upstreamUdp.close();
  upstreamTcp.close();
});

function corpus(seed: number, idBase: number): Buffer[] {
  const r = prng(seed);
  return Array.from({ length: N }, (_, i) => {
    const q = generate(r, (idBase + i) & 0xffff);
    const out = r.chance(0.5) ? mutate(r, q) : q;
    if (r.chance(0.02) && out.length > 2) out[2] = out[2]! | 0x80; // now and then a response
    return out;
  });
}

test(`${N} generated and mutated queries over UDP: every answer is to its question`, { timeout: 60_000 }, async () => {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const queries = corpus(SEED, 0);
  const client = dgram.createSocket('udp4');
  const answers = new Map<number, Buffer[]>();
  client.on('message', (m) => {
    if (m.length < 2) return;
    const id = m.readUInt16BE(0);
    answers.set(id, [...(answers.get(id) ?? []), m]);
  });
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  // A window of queries in flight, so that none is lost to a full socket buffer.
  const WINDOW = 100;
  for (let i = 0; i < queries.length; i += WINDOW) {
    const batch = queries.slice(i, i + WINDOW);
    await Promise.all(batch.map((q) => new Promise<void>((r) => client.send(q, port, '127.0.0.1', () => r()))));
    const deadline = Date.now() + 500;
    while (Date.now() < deadline && batch.some((q) => q.length >= 12 && !(q[2]! & 0x80) && !answers.has(q.readUInt16BE(0)))) await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, 200));
  client.close();
  const bad: string[] = [];
  let answered = 0;
  for (const q of queries) {
    const got = q.length >= 2 ? answers.get(q.readUInt16BE(0)) : undefined;
    if (got && got.length > 1) bad.push(`${got.length} answers to one query`);
    if (got) answered++;
    const why = violation(q, got?.[0], 'udp');
    if (why) bad.push(why);
  }
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} violations (seed ${SEED})`);
  assert.ok(answered > N * 0.9, `${answered} of ${N} answered`);
  gc();
  const grown = (process.memoryUsage().heapUsed - heap0) / 1e6;
  assert.ok(grown < 40, `heap grew ${grown.toFixed(1)} MB`);
  console.log(`# udp: ${answered} of ${N} answered, heap +${grown.toFixed(1)} MB, ${server.stats().cached} answers cached`);
});

test(`${N} generated and mutated queries over TCP, pipelined on 24 connections: answers in order, each to its question`, { timeout: 60_000 }, async () => {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const queries = corpus(SEED + 1, 0);
  const CONNECTIONS = 24;
  const per = Math.ceil(queries.length / CONNECTIONS);
  const bad: string[] = [];
  let answered = 0;
  const sentinelId = 0xffff;
  const sentinel = packet.encode({ type: 'query', id: sentinelId, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: 'web.default.svc.cluster.local' }] });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, (_, c) =>
      new Promise<void>((resolve, reject) => {
        const mine = queries.slice(c * per, (c + 1) * per).filter((q) => q.length > 0);
        const s = connect(port, '127.0.0.1');
        const got = new Map<number, Buffer>();
        let buf = Buffer.alloc(0);
        s.on('data', (b: Buffer) => {
          buf = Buffer.concat([buf, b]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const a = buf.subarray(2, 2 + buf.readUInt16BE(0));
            buf = buf.subarray(2 + a.length);
            const id = a.readUInt16BE(0);
            if (id === sentinelId) {
              s.destroy();
              return;
            }
            if (got.has(id)) bad.push('two answers to one query');
            got.set(id, Buffer.from(a));
          }
        });
        s.on('error', reject);
        s.on('close', () => {
          for (const q of mine) {
            const a = got.get(q.readUInt16BE(0));
            if (a) answered++;
            const why = violation(q, a, 'tcp');
            if (why) bad.push(why);
          }
          resolve();
        });
        // Every query framed, then one plain query: its answer comes last, after all of theirs.
        s.write(Buffer.concat([...mine, sentinel].map((q) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]))));
      }),
    ),
  );
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} violations (seed ${SEED + 1})`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.stats().connections, 0, 'nothing kept of a closed connection');
  assert.ok(server.stats().cached <= 10_000);
  assert.equal(server.stats().forwards, 0);
  gc();
  const grown = (process.memoryUsage().heapUsed - heap0) / 1e6;
  assert.ok(grown < 40, `heap grew ${grown.toFixed(1)} MB`);
  console.log(`# tcp: ${answered} answered, heap +${grown.toFixed(1)} MB`);
});

test('after all that, plain queries are answered over UDP and TCP', async () => {
  const q = packet.encode({ type: 'query', id: 7, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: 'web.default.svc.cluster.local' }] });
  const udp = await server.respond(q, 'udp');
  assert.equal((packet.decode(udp!).answers?.[0] as { data: string }).data, '10.96.0.20');
  const a = await new Promise<Buffer>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from([0, q.length]), q])));
    s.once('data', (b: Buffer) => {
      s.destroy();
      resolve(b.subarray(2));
    });
    s.on('error', reject);
  });
  assert.equal((packet.decode(a).answers?.[0] as { data: string }).data, '10.96.0.20');
});
