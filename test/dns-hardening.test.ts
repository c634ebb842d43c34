// The cluster DNS bounded and strict (issue 27, no root: a server on 127.0.0.1 of this
// process): TCP as CoreDNS bounds it (a client that does not read its answers is closed, read
// and idle timeouts, a cap on connections, nothing kept after a connection), metric labels
// from a closed set, and the wire format where the RFCs are strict (a label holding a dot,
// bytes that are not UTF-8, EDNS versions and OPT counts): the question always echoed as sent.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as packet from 'dns-packet';
import type { EndpointSlice, Service } from '../src/api/types.ts';
import { FairQueue } from '../src/dns/fair.ts';
import { metricType, dnsMetrics } from '../src/dns/metrics.ts';
import { MirrorView } from '../src/dns/mirror.ts';
import type { ClusterView } from '../src/dns/records.ts';
import { DnsServer } from '../src/dns/server.ts';
import { COREDNS_TCP_LIMITS, mayRead, nextFrame } from '../src/dns/tcp.ts';
import { kernelThrottle, notAPod, THROTTLE_RATE, throttleRuleset } from '../src/dns/throttle.ts';
import { udpThreadOrNot } from '../src/dns/udp-thread.ts';
import type { ViewEvent } from '../src/dns/view.ts';
import { inspectQuery, inZone, plainName, questionBytes } from '../src/dns/wire.ts';

const web: Service = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name: 'web' }, spec: { clusterIP: '10.96.0.20' } };
const view: ClusterView & { generation: number } = {
  zone: 'cluster.local',
  generation: 0,
  service: (ns, name) => (ns === 'default' && name === 'web' ? web : undefined),
  slices: () => [],
  hasNamespace: (ns) => ns === 'default',
  byClusterIP: () => undefined,
  byEndpointIP: () => [],
  ownsAddress: () => false,
};

/** A query from its labels as raw bytes (a label may hold anything, a dot included). */
function rawQuery(labels: Array<string | Buffer>, o: { id?: number; qtype?: number; opts?: Buffer[]; ancount?: number } = {}): Buffer {
  const name = Buffer.concat([...labels.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l)).flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(o.id ?? 0x1234, 0);
  header[2] = 0x01; // RD
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(o.opts?.length ?? 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(o.qtype ?? 1, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, name, tail, ...(o.opts ?? [])]);
}
/** An OPT record: root name, type 41, the UDP size, extended RCODE 0, `version`, no options. */
function opt(version = 0, size = 1232): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(41, 1);
  b.writeUInt16BE(size, 3);
  b[6] = version;
  return b;
}
const rcodeOf = (r: Buffer): number => {
  // The extended RCODE: the OPT's upper eight bits above the header's four (RFC 6891 §6.1.3).
  const d = packet.decode(r) as packet.Packet & { additionals?: Array<{ type: string; extendedRcode?: number }> };
  const o = d.additionals?.find((a) => a.type === 'OPT');
  return ((o?.extendedRcode ?? 0) << 4) | (r[3]! & 0x0f);
};


/** A UDP socket bound to a loopback address of its own (127.0.0.N), so the server sees it as its own source. */
async function bindUdp(address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  return s;
}

describe('wire format: the question echoed byte for byte; EDNS as RFC 6891 has it', () => {
  const server = new DnsServer({ view });
  const ask = async (q: Buffer) => (await server.respond(q, 'udp'))!;

  test('a label holding a dot is not the dotted name: NXDOMAIN in the zone, the question as sent', async () => {
    const q = rawQuery(['web.default', 'svc', 'cluster', 'local']);
    const r = await ask(q);
    assert.deepEqual(questionBytes(r), questionBytes(q), 'the question is not rewritten into five labels');
    assert.equal(rcodeOf(r), 3, 'NXDOMAIN: no Kubernetes name has a dot in a label');
    assert.equal(r.readUInt16BE(6), 0, 'no answer records');
    const dotted = await ask(rawQuery(['web', 'default.svc', 'cluster', 'local']));
    assert.equal(rcodeOf(dotted), 3, 'not web.default.svc.cluster.local');
    // Outside the zone with no upstream: REFUSED, the question still as sent.
    const outside = rawQuery(['a.b', 'example', 'org']);
    const refused = await ask(outside);
    assert.equal(rcodeOf(refused), 5);
    assert.deepEqual(questionBytes(refused), questionBytes(outside));
  });

  test('bytes that are not UTF-8, and any case, are echoed as sent', async () => {
    const q = rawQuery([Buffer.from([0xff, 0xfe, 0x41]), 'default', 'svc', 'cluster', 'local']);
    const r = await ask(q);
    assert.deepEqual(questionBytes(r), questionBytes(q));
    assert.equal(rcodeOf(r), 3);
    const mixed = rawQuery(['WeB', 'DeFault', 'svc', 'Cluster', 'local']);
    const answered = await ask(mixed);
    assert.deepEqual(questionBytes(answered), questionBytes(mixed));
    assert.equal(rcodeOf(answered), 0);
    assert.equal((packet.decode(answered).answers?.[0] as { data: string }).data, '10.96.0.20');
  });

  test('EDNS version 1: BADVERS (extended RCODE 16) with our OPT at version 0, even after a version-0 answer was cached', async () => {
    const name = ['web', 'default', 'svc', 'cluster', 'local'];
    assert.equal(rcodeOf(await ask(rawQuery(name, { opts: [opt(0)] }))), 0, 'version 0 answered (and cached)');
    const q = rawQuery(name, { opts: [opt(1)] });
    const r = await ask(q);
    assert.equal(rcodeOf(r), 16, 'BADVERS');
    assert.equal(r[3]! & 0x0f, 0, 'the header carries the low four bits of 16');
    const o = (packet.decode(r).additionals ?? []).find((a) => a.type === 'OPT') as { ednsVersion: number } | undefined;
    assert.equal(o?.ednsVersion, 0, 'the version we speak');
    assert.deepEqual(questionBytes(r), questionBytes(q));
  });

  test('two OPT records, or an OPT outside the additional section or not at the root: FORMERR', async () => {
    const name = ['web', 'default', 'svc', 'cluster', 'local'];
    assert.equal(rcodeOf(await ask(rawQuery(name, { opts: [opt(0), opt(0)] }))), 1);
    const notRoot = opt(0);
    assert.equal(inspectQuery(rawQuery(name, { opts: [Buffer.concat([Buffer.from([1, 0x61]), notRoot.subarray(0, 0), notRoot])] })).ok, false, 'an OPT owned by a name');
    const inAnswer = rawQuery(name, { opts: [opt(0)] });
    inAnswer.writeUInt16BE(0, 10);
    inAnswer.writeUInt16BE(1, 6); // the same OPT, counted as an answer record
    assert.deepEqual(inspectQuery(inAnswer), { ok: false, rcode: 'FORMERR' });
  });

  test('the decisions: plain names, the zone, compression in the question', () => {
    assert.equal(plainName([Buffer.from('_http'), Buffer.from('_tcp'), Buffer.from('web-1')]), '_http._tcp.web-1');
    assert.equal(plainName([Buffer.from('a.b')]), undefined);
    assert.equal(plainName([Buffer.from('a b')]), undefined);
    assert.equal(inZone([Buffer.from('x'), Buffer.from('Cluster'), Buffer.from('LOCAL')], 'cluster.local'), true);
    assert.equal(inZone([Buffer.from('cluster.local')], 'cluster.local'), false, 'one label holding a dot is not the zone');
    const pointer = rawQuery(['web']);
    pointer[12] = 0xc0;
    pointer[13] = 0x00;
    assert.deepEqual(inspectQuery(pointer), { ok: false, rcode: 'FORMERR' }, 'a pointer in the question can only point into the header');
  });

  test("an upstream's answer to another question is not relayed (SERVFAIL)", async () => {
    const upstream = dgram.createSocket('udp4');
    upstream.on('message', (m, from) => {
      // Answers with the question rewritten: the dotted label split in two, as a re-encoding would.
      const reply = Buffer.from(rawQuery(['a', 'b', 'example', 'org'], { id: m.readUInt16BE(0) }));
      reply[2] = 0x81;
      upstream.send(reply, from.port, from.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    const forwarding = new DnsServer({ view, upstream: { host: '127.0.0.1', port: upstream.address().port } });
    const q = rawQuery(['a.b', 'example', 'org']);
    const r = (await forwarding.respond(q, 'udp'))!;
    upstream.close();
    assert.equal(rcodeOf(r), 2);
    assert.deepEqual(questionBytes(r), questionBytes(q));
  });
});

describe('metrics: labels from a closed set, a scrape that costs the same whatever clients sent', () => {
  test("CoreDNS's known types by name, every other type (and none) as other", () => {
    assert.equal(metricType(1), 'A');
    assert.equal(metricType(65), 'HTTPS');
    assert.equal(metricType(255), 'ANY');
    assert.equal(metricType(99), 'other', 'SPF is not one CoreDNS counts by name');
    assert.equal(metricType(65535), 'other');
    assert.equal(metricType(undefined), 'other');
  });

  test('all 65,536 query types through a server: the same series as one query of each known type and one other', async () => {
    const series = async (qtypes: number[]) => {
      const metrics = dnsMetrics('cluster.local', 53);
      const server = new DnsServer({ view, observe: metrics.observe });
      for (const t of qtypes) await server.respond(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype: t, id: t }), 'udp');
      await server.respond(Buffer.from(rawQuery(['x'], { opts: [opt(7)] })), 'udp');
      const body = await metrics.registry.metrics();
      return { body, names: body.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/ [^ ]+$/, '')).sort() };
    };
    const all = await series(Array.from({ length: 65536 }, (_, t) => t));
    const few = await series([1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 50, 64, 65, 251, 252, 255, 99]);
    assert.deepEqual(all.names, few.names, 'the series do not depend on what clients sent');
    const types = new Set([...all.body.matchAll(/type="([^"]*)"/g)].map((m) => m[1]));
    assert.ok(types.size <= 20, `${types.size} type labels: ${[...types].slice(0, 30).join(' ')}`);
    const rcodes = new Set([...all.body.matchAll(/rcode="([^"]*)"/g)].map((m) => m[1]));
    assert.ok([...rcodes].every((r) => ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS', 'other'].includes(r!)), [...rcodes].join(' '));
    assert.ok(all.body.length < 128 << 10, `scrape of ${all.body.length} bytes`);
  });
});

describe('TCP bounded as CoreDNS bounds it', () => {
  const limits = { readTimeoutMs: 400, idleTimeoutMs: 400, writeTimeoutMs: 400, maxConnections: 5 };
  const server = new DnsServer({ view, tcp: limits });
  let port = 0;
  before(async () => {
    await server.listen(0, '127.0.0.1');
    port = (server as unknown as { tcp: { address(): { port: number } } }).tcp.address().port;
  });
  after(() => server.close());

  const open = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  /** Milliseconds until the server closes `s` (or `limitMs` when it does not). */
  const closedAfter = (s: Socket, limitMs: number) =>
    new Promise<number>((resolve) => {
      const t0 = Date.now();
      const timer = setTimeout(() => resolve(limitMs), limitMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - t0);
      });
      s.on('error', () => {});
    });
  const framed = (q: Buffer) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  const query = framed(rawQuery(['web', 'default', 'svc', 'cluster', 'local']));

  test("CoreDNS's figures: read 3 s, idle 10 s, write 5 s (core/dnsserver/server.go)", () => {
    assert.equal(COREDNS_TCP_LIMITS.readTimeoutMs, 3_000);
    assert.equal(COREDNS_TCP_LIMITS.idleTimeoutMs, 10_000);
    assert.equal(COREDNS_TCP_LIMITS.writeTimeoutMs, 5_000);
  });

  test('frames and flow (pure): a zero length closes; reading stops over either bound', () => {
    assert.equal(nextFrame(Buffer.from([0])), undefined);
    assert.deepEqual(nextFrame(Buffer.from([0, 0, 9])), { close: true });
    const f = nextFrame(Buffer.from([0, 2, 7, 8, 9]));
    assert.ok(f && 'query' in f);
    assert.deepEqual([...f.query], [7, 8]);
    assert.deepEqual([...f.rest], [9]);
    assert.equal(mayRead(0, 0, COREDNS_TCP_LIMITS), true);
    assert.equal(mayRead(0, (64 << 10) + 1, COREDNS_TCP_LIMITS), false, 'answers waiting for the client');
    assert.equal(mayRead((64 << 10) + 1, 0, COREDNS_TCP_LIMITS), false, 'queries waiting for us');
  });

  test('a client pipelining queries and never reading is closed; the server stopped answering it long before', async () => {
    const s = await open();
    s.on('error', () => {});
    let sent = 0;
    const block = Buffer.concat(Array.from({ length: 1000 }, () => query));
    const closed = closedAfter(s, 8_000);
    // Write as fast as the server takes it, up to 30 MB (the old server took it all, and answered into memory).
    const writeMore = () => {
      while (!s.destroyed && sent < 30 << 20) {
        sent += block.length;
        if (!s.write(block)) return void s.once('drain', writeMore);
      }
    };
    s.pause(); // never read
    writeMore();
    const ms = await closed;
    assert.ok(ms < 8_000, 'closed by the server');
    assert.ok(sent < 30 << 20, `the server stopped taking queries (${(sent / 1e6).toFixed(1)} MB written)`);
  });

  test('a client that pipelines and reads gets every answer', async () => {
    const s = await open();
    const n = 3000;
    let got = 0;
    let buf = Buffer.alloc(0);
    const done = new Promise<void>((resolve, reject) => {
      s.on('data', (b: Buffer) => {
        buf = Buffer.concat([buf, b]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          if (++got === n) resolve();
        }
      });
      s.on('close', () => reject(new Error(`closed after ${got} answers`)));
    });
    s.write(Buffer.concat(Array.from({ length: n }, () => query)));
    await done;
    s.destroy();
  });

  test('slowloris: a query sent a byte at a time is closed at the read timeout; an idle connection at the idle timeout', async () => {
    const slow = await open();
    const closed = closedAfter(slow, 3_000);
    let i = 0;
    const drip = setInterval(() => !slow.destroyed && slow.write(query.subarray(i, ++i)), 100);
    const ms = await closed;
    clearInterval(drip);
    assert.ok(ms < 1_500, `closed after ${ms} ms`);

    const idle = await open();
    idle.write(query);
    const answered = await new Promise<Buffer>((r) => idle.once('data', r));
    assert.ok(answered.length > 14);
    assert.ok((await closedAfter(idle, 3_000)) < 1_500, 'idle: closed');
  });

  test('connections above the cap are dropped at once; the ones within it are served; nothing is kept after they close', async () => {
    const within = await Promise.all(Array.from({ length: limits.maxConnections }, open));
    await new Promise((r) => setTimeout(r, 50));
    const above = await open();
    assert.ok((await closedAfter(above, 1_000)) < 1_000, 'the sixth connection is dropped');
    within[0]!.write(query);
    assert.ok((await new Promise<Buffer>((r) => within[0]!.once('data', r))).length > 14, 'a connection within the cap is answered');
    for (const s of within) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.stats().connections, 0);
  });
});

describe('UDP served in turn by source: a flood waits behind its own queries', () => {
  test('the queue (pure): round robin across sources, bounded per source and in all, nothing kept of an emptied source', () => {
    const q = new FairQueue<string>(3, 5);
    for (const x of ['a1', 'a2', 'a3']) assert.equal(q.push('a', x), true);
    assert.equal(q.push('a', 'a4'), false, 'a source holds at most 3');
    assert.equal(q.push('b', 'b1'), true);
    assert.equal(q.push('c', 'c1'), true);
    assert.equal(q.push('d', 'd1'), false, '5 in all');
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ['a1', 'b1', 'c1', 'a2', 'a3', undefined]);
    assert.equal(q.sources, 0);
    assert.equal(q.size, 0);
  });

  test("one address's backlog does not hold up another's query: it is answered in turn, not after the backlog", async () => {
    const server = new DnsServer({ view });
    await server.listen(0, '127.0.0.1');
    const port = (server as unknown as { udp: dgram.Socket }).udp.address().port;
    // Every loopback address is this machine's: a flood from 127.0.0.2, a client at 127.0.0.3.
    const flood = await bindUdp('127.0.0.2');
    const client = await bindUdp('127.0.0.3');
    let floodAnswers = 0;
    flood.on('message', () => floodAnswers++);
    const BACKLOG = 800;
    // Every query type in turn (none is a cached answer), all in the server's socket buffer before it reads one.
    await Promise.all(Array.from({ length: BACKLOG }, (_, t) => new Promise<void>((r) => flood.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype: t + 1000 }), port, '127.0.0.1', () => r()))));
    const answered = new Promise<number>((resolve) => client.once('message', () => resolve(floodAnswers)));
    client.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local']), port, '127.0.0.1');
    const before = await answered;
    await new Promise((r) => setTimeout(r, 200));
    flood.close();
    client.close();
    await server.close();
    // In arrival order (the old server) it came after all 800.
    assert.ok(before < BACKLOG / 4, `answered after ${before} of the flood's ${BACKLOG} queries`);
  });
});

describe('a flood costs little: one cached answer for the types answered alike, its source throttled in the kernel', () => {
  test('every query type a name answers alike shares one cached answer, each with its own question', async () => {
    const server = new DnsServer({ view });
    const types = [28, 1000, 2000, 65535];
    const answers = await Promise.all(types.map((qtype, i) => server.respond(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype, id: i }), 'udp')));
    assert.equal(server.stats().cached, 1, 'AAAA and unknown types: one answer (NOERROR, no records, the SOA)');
    answers.forEach((a, i) => {
      assert.equal(a!.readUInt16BE(0), i, 'its own ID');
      assert.equal(a!.readUInt16BE(12 + 31), types[i], 'its own type in the question (after the 31 bytes of the name)');
      assert.deepEqual(a!.subarray(12, 12 + 31 + 4), rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype: types[i] }).subarray(12), 'the question as asked');
    });
    const a = await server.respond(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype: 1 }), 'udp');
    assert.equal(packet.decode(a!).answers?.length, 1, 'A has its own answer');
    assert.equal(server.stats().cached, 2);
  });

  test('a source whose queue overflows is reported to throttle, once; a client that waits for its answers is not', async () => {
    const reported: string[] = [];
    const server = new DnsServer({ view, throttle: (address) => reported.push(address) });
    await server.listen(0, '127.0.0.1');
    const port = (server as unknown as { udp: dgram.Socket }).udp.address().port;
    const flood = await bindUdp('127.0.0.2');
    const client = await bindUdp('127.0.0.3');
    await Promise.all(Array.from({ length: 800 }, (_, t) => new Promise<void>((r) => flood.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { qtype: t + 1000 }), port, '127.0.0.1', () => r()))));
    for (let i = 0; i < 20; i++) {
      const answered = new Promise((r) => client.once('message', r));
      client.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { id: i }), port, '127.0.0.1');
      await answered;
    }
    await new Promise((r) => setTimeout(r, 100));
    flood.close();
    client.close();
    await server.close();
    assert.deepEqual(reported, ['127.0.0.2']);
  });

  test('a cached question is answered where it is read, one at a time; a flood of it still meets the queue and is reported', async () => {
    const reported: string[] = [];
    const server = new DnsServer({ view, throttle: (address) => reported.push(address) });
    await server.listen(0, '127.0.0.1');
    const port = (server as unknown as { udp: dgram.Socket }).udp.address().port;
    const client = await bindUdp('127.0.0.3');
    const ask = async (id: number) => {
      const answered = new Promise<Buffer>((r) => client.once('message', r));
      client.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { id }), port, '127.0.0.1');
      return answered;
    };
    await ask(0); // not cached yet: the queue's way
    for (let i = 1; i <= 20; i++) assert.equal((await ask(i)).readUInt16BE(0), i, 'its own ID');
    assert.equal(server.counters.atOnce, 20, 'each cached answer sent in the callback that read its query');
    // The same cached question 800 times in the socket before the server reads one: a few answered at once, the rest queued, the overflow reported.
    const flood = await bindUdp('127.0.0.2');
    await Promise.all(Array.from({ length: 800 }, (_, i) => new Promise<void>((r) => flood.send(rawQuery(['web', 'default', 'svc', 'cluster', 'local'], { id: i }), port, '127.0.0.1', () => r()))));
    for (let i = 0; i < 200 && !reported.length; i++) await new Promise((r) => setTimeout(r, 10));
    flood.close();
    client.close();
    await server.close();
    assert.deepEqual(reported, ['127.0.0.2']);
    assert.ok(server.counters.atOnce < 20 + 100, `${server.counters.atOnce - 20} of the flood answered at once`);
  });

  test("only in a pod's network namespace, never the machine's own: nothing run elsewhere", async () => {
    const ran: string[][] = [];
    const lines: string[] = [];
    // This test's namespace holds no pod address.
    assert.equal(await kernelThrottle(53, async (argv) => ran.push(argv), (l) => lines.push(l), '10.244.9.9'), undefined);
    assert.deepEqual(ran, []);
    assert.match(lines.join('\n'), /no interface here holds the pod's address \(POD_IP 10\.244\.9\.9\)/);
    const ns = () => 'net:[1]';
    assert.match(notAPod(undefined, ['10.244.1.2'], ns, ns)!, /POD_IP unset/);
    assert.equal(notAPod('10.244.1.2', ['127.0.0.1', '10.244.1.2'], ns, ns), "this is the machine's own network namespace");
    assert.equal(notAPod('10.244.1.2', ['10.244.1.2'], ns, () => 'net:[2]'), undefined);
    assert.equal(notAPod('10.244.1.2', ['10.244.1.2'], ns, () => { throw new Error('EACCES'); }), undefined, '/proc/1 unreadable: the address decides');
  });

  test('the ruleset, in a namespace of its own: a throttled source gets about its rate through, another all it sends', (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root (a network namespace and nft)');
    const ns = `kdnsab-tt-${process.pid}`;
    const inNs = (argv: string[], input?: string) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { input, encoding: 'utf8', timeout: 30_000 });
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      inNs(['ip', 'link', 'set', 'lo', 'up']);
      inNs(['ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo']);
      inNs(['nft', '-f', '-'], throttleRuleset(53));
      inNs(['nft', 'add', 'element', 'ip', 'kubewire_dns', 'throttled', '{ 127.0.0.2 timeout 10s }']);
      // 3,000 datagrams in about half a second from each of two sources; counted by the receiver.
      const script = `const d = require('dgram'); const r = d.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 }); const got = {}; r.on('message', (m, i) => (got[i.address] = (got[i.address] || 0) + 1));
        r.bind(53, '127.0.0.1', async () => { for (const from of ['127.0.0.2', '127.0.0.3']) { const s = d.createSocket('udp4'); await new Promise((ok) => s.bind(0, from, ok)); for (let i = 0; i < 3000; i++) { await new Promise((ok) => s.send(Buffer.alloc(40), 53, '127.0.0.1', ok)); if (i % 100 === 99) await new Promise((ok) => setTimeout(ok, 15)); } s.close(); }
        setTimeout(() => { console.log(JSON.stringify(got)); process.exit(0); }, 300); });`;
      const got = JSON.parse(inNs([process.execPath, '-e', script])) as Record<string, number>;
      assert.equal(got['127.0.0.3'], 3000, 'a source not throttled: everything');
      const throttled = got['127.0.0.2'] ?? 0;
      assert.ok(throttled < 3000 && throttled >= THROTTLE_RATE, `the throttled source: ${throttled} of 3000 (a burst of ${THROTTLE_RATE}, then ${THROTTLE_RATE}/s)`);
      assert.match(inNs(['nft', 'list', 'table', 'ip', 'kubewire_dns']), /counter packets [1-9]/);
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});

describe('UDP on a thread of its own', () => {
  const svc = (name: string, clusterIP: string): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name }, spec: { clusterIP } });
  const headless: Service = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name: 'db' }, spec: { clusterIP: 'None' } };
  const slice = (name: string, service: string, ip: string): EndpointSlice => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'default', name, labels: { 'kubernetes.io/service-name': service } }, addressType: 'IPv4', endpoints: [{ addresses: [ip], conditions: { ready: true } }] });

  test("the mirror holds what the informers' changes say: a list replaces, a slice's label change moves it, a deletion removes", () => {
    const m = new MirrorView('cluster.local', ['10.96.0.0/12']);
    assert.equal(m.synced, false);
    m.apply({ kind: 'Service', type: 'SYNC', objects: [svc('web', '10.96.0.20'), headless] });
    m.apply({ kind: 'EndpointSlice', type: 'SYNC', objects: [slice('db-1', 'db', '10.244.1.5')] });
    assert.equal(m.synced, true);
    assert.equal(m.byClusterIP('10.96.0.20')?.metadata.name, 'web');
    assert.deepEqual(m.byEndpointIP('10.244.1.5').map((e) => e.service.metadata.name), ['db']);
    const before = m.generation;
    m.apply({ kind: 'EndpointSlice', type: 'PUT', object: slice('db-1', 'other', '10.244.1.5') });
    assert.ok(m.generation > before, 'a change empties the answer cache');
    assert.deepEqual(m.slices('default', 'db'), []);
    assert.equal(m.slices('default', 'other').length, 1);
    m.apply({ kind: 'EndpointSlice', type: 'DELETED', object: slice('db-1', 'other', '10.244.1.5') });
    assert.deepEqual(m.slices('default', 'other'), []);
    m.apply({ kind: 'Service', type: 'SYNC', objects: [svc('api', '10.96.0.30')] });
    assert.equal(m.service('default', 'web'), undefined, 'a relist replaces the lot');
    assert.equal(m.ownsAddress('10.96.0.30'), true);
  });

  test('answers from the copy of the view, follows its changes, counts in the scrape, closes', async () => {
    let relay: ((e: ViewEvent) => void) | undefined;
    const metrics = dnsMetrics('cluster.local', 53);
    const lines: string[] = [];
    const thread = await udpThreadOrNot({ onEvent: (fn) => void (relay = fn) }, metrics, { port: 0, host: '127.0.0.1', zone: 'cluster.local', ranges: ['10.96.0.0/12'], log: (l) => lines.push(l) });
    assert.ok(thread, `the thread started: ${lines.join('; ')}`);
    const client = await bindUdp('127.0.0.3');
    try {
      const ask = async (name: string, id: number) => {
        const answered = new Promise<Buffer>((r) => client.once('message', r));
        client.send(rawQuery([...name.split('.'), 'svc', 'cluster', 'local'], { id }), thread.port, '127.0.0.1');
        const a = packet.decode(await answered);
        return { id: a.id, rcode: (a as packet.Packet & { rcode?: string }).rcode, data: (a.answers?.[0] as { data?: string } | undefined)?.data };
      };
      assert.equal(thread.synced, false);
      relay!({ kind: 'Service', type: 'SYNC', objects: [svc('web', '10.96.0.20')] });
      relay!({ kind: 'EndpointSlice', type: 'SYNC', objects: [] });
      assert.deepEqual(await ask('web.default', 7), { id: 7, rcode: 'NOERROR', data: '10.96.0.20' });
      assert.equal(thread.synced, true);
      relay!({ kind: 'Service', type: 'PUT', object: svc('api', '10.96.0.30') });
      assert.deepEqual(await ask('api.default', 8), { id: 8, rcode: 'NOERROR', data: '10.96.0.30' });
      relay!({ kind: 'Service', type: 'DELETED', object: svc('web', '10.96.0.20') });
      assert.equal((await ask('web.default', 9)).rcode, 'NXDOMAIN');
      const body = await metrics.registry.metrics();
      assert.match(body, /coredns_dns_requests_total\{[^}]*proto="udp"[^}]*type="A"\} 3/, 'the thread\'s answers in the scrape');
    } finally {
      client.close();
      await thread.close();
    }
    // Its socket is closed: the port can be bound again.
    const again = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(thread.port, '127.0.0.1', () => resolve());
    });
    again.close();
  });
});
