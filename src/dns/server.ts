// The DNS wire protocol around records.ts, with dns-packet for the encoding: UDP and TCP
// (length-prefixed, several queries per connection), EDNS0, truncation (TC) of UDP answers
// larger than the client takes, forwarding of names outside the cluster to an upstream
// resolver (REFUSED when there is none), and the error codes a bad query earns — FORMERR for
// one that does not parse or asks several questions, NOTIMP for an opcode other than QUERY,
// REFUSED for a class other than IN, BADVERS for an EDNS version above 0. Every answer
// carries the question as the client wrote it, byte for byte (wire.ts). Encoded answers are
// cached until the cluster changes; a hit only rewrites the query's ID. TCP connections are
// bounded as CoreDNS bounds them (tcp.ts), and so are queries in flight to the upstream.

import dgram from 'node:dgram';
import { createServer, isIP, Socket, type Server } from 'node:net';
import { createHistogram } from 'node:perf_hooks';
import * as packet from 'dns-packet';
import { answer, answerUnusual, type Answer, type ClusterView, type Rcode } from './records.ts';
import { FairQueue } from './fair.ts';
import { COREDNS_TCP_LIMITS, serveConnection, type TcpLimits } from './tcp.ts';
import { badVersion, inspectQuery, inZone, OUR_UDP, plainName, questionBytes, withQuestion, type Question } from './wire.ts';

/** What we advertise and what a UDP answer may be without EDNS (RFC 1035) or with it (the DNS flag day's 1232). */
const CLASSIC_UDP = 512;
/** Answers kept: CoreDNS's cache plugin holds 9984 of each kind (256 shards of 39); a full cache drops its oldest. */
const MAX_CACHE = 10_000;
const FORWARD_TIMEOUT_MS = 2_000;
/**
 * Queries in flight to the upstream at once; above it REFUSED, as CoreDNS's forward plugin
 * answers above its max_concurrent (which is unset by default: a bound costs nothing here).
 */
const MAX_FORWARDS = 1_000;
/** Queries queued per source and in all (fair.ts), and answered between two reads of the sockets. */
// A source's queue long enough for a client's burst (dnsperf keeps 100 queries out), short
// enough that a flood's queries are dropped while new, rather than kept until the young
// generation's collections have to copy and promote them (measured: 1,020 of a flood queued
// at once, 100-150 ms a second in GC).
const UDP_PER_SOURCE = 256;
const UDP_QUEUED = 4_096;
const UDP_BATCH = 4;
/** A source is reported to `throttle` again at most this often (the kernel's throttle lasts longer: throttle.ts). */
const THROTTLE_MS = 5_000;

/** A query waiting for its turn: a datagram to answer, or a TCP connection's query (`done` takes its answer). */
interface Waiting {
  msg: Buffer;
  port: number;
  address: string;
  /** performance.now() when it was read. */
  at: number;
  done?: (out: Buffer | undefined) => void;
}

/** One answered query: its transport, QTYPE as sent (undefined: none could be read), response code, seconds taken, and whether it was forwarded (arguments, not an object: one call a query). */
export type Observer = (proto: 'udp' | 'tcp', qtype: number | undefined, rcode: string, seconds: number, forwarded: boolean) => void;

export interface ServerOptions {
  view: ClusterView & { generation: number };
  /** host:port of the resolver for names outside the cluster; none: REFUSED. */
  upstream?: { host: string; port: number };
  observe?: Observer;
  /** Called for a source whose UDP queue overflowed (at most once per THROTTLE_MS): throttle.ts limits it in the kernel. */
  throttle?: (address: string) => void;
  /** TCP's timeouts and caps; CoreDNS's by default (tests shorten them). */
  tcp?: Partial<TcpLimits>;
}

/** dns-packet's decoded header bits, which its types leave out. */
type Decoded = packet.Packet & { flag_rd?: boolean; flag_cd?: boolean };

const RCODE_NUMBER: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const IN = 1;

/** A response carrying only a code, built by hand from the query's first 12 bytes (they may be all that parses). */
function bare(query: Buffer, rcode: Rcode): Buffer | undefined {
  if (query.length < 12) return undefined; // not even a header: nothing to answer
  const out = Buffer.alloc(12);
  query.copy(out, 0, 0, 4); // ID, flags
  out[2] = (out[2]! | 0x80) & ~0x02; // QR set, TC clear, opcode and RD as asked
  out[3] = 0x80 | RCODE_NUMBER[rcode]; // RA, and the code
  return out;
}

export class DnsServer {
  private cache = new Map<string, Buffer>();
  private cachedGeneration = -1;
  private udp?: dgram.Socket;
  private tcp?: Server;
  private readonly connections = new Set<Socket>();
  private forwards = 0;
  private readonly waiting = new FairQueue<Waiting>(UDP_PER_SOURCE, UDP_QUEUED);
  /** Sources reported to `throttle`, and when (bounded: emptied past 4,096). */
  private readonly throttled = new Map<string, number>();
  /** Running totals for the profile (profile.ts): datagrams read and dropped, queries answered (of them at once: answerNow), ms spent answering. */
  readonly counters = { udpRead: 0, dropped: 0, answered: 0, atOnce: 0, answerMs: 0 };
  /** Each UDP query's time in this process, read to answer sent (ns): the server's own share of a client's round trip. */
  readonly inProcess = createHistogram();
  private draining = false;
  private closed = false;
  /** Datagrams answered at once in this turn of the event loop (answerNow). */
  private burst = 0;
  private readonly endTurn = () => (this.burst = 0);
  private readonly tcpLimits: TcpLimits;

  constructor(private readonly o: ServerOptions) {
    this.tcpLimits = { ...COREDNS_TCP_LIMITS, ...o.tcp };
  }

  /** What the server holds now: open TCP connections, cached answers, queries at the upstream (tests bound them). */
  stats(): { connections: number; cached: number; forwards: number; queued: number } {
    return { connections: this.connections.size, cached: this.cache.size, forwards: this.forwards, queued: this.waiting.size };
  }

  /** The response to one query in wire format, or undefined for something not to answer (a response, a runt). */
  /** `t0`: when the query was read (its time in the metrics counts from there, its wait for its turn included). */
  async respond(query: Buffer, proto: 'udp' | 'tcp', t0 = performance.now()): Promise<Buffer | undefined> {
    const hit = this.cachedAnswer(query, proto, t0);
    if (hit) return hit;
    if (query.length >= 3 && query[2]! & 0x80) return undefined; // a response, not a query: never answer one
    const fast = cacheKey(query, proto);
    const checked = inspectQuery(query);
    if (!checked.ok) return this.observed(bare(query, checked.rcode), proto, undefined, checked.rcode, t0, false);
    const { question, edns } = checked;
    if (question.qclass !== IN) return this.observed(bare(query, 'REFUSED'), proto, question.qtype, 'REFUSED', t0, false);
    if (edns && edns.version > 0) return this.observed(badVersion(query, question), proto, question.qtype, 'BADVERS', t0, false);
    let q: Decoded;
    try {
      q = packet.decode(query) as Decoded;
    } catch {
      return this.observed(bare(query, 'FORMERR'), proto, question.qtype, 'FORMERR', t0, false);
    }
    const qtype = String(q.questions![0]!.type);
    const limit = proto === 'tcp' ? 65535 : Math.max(CLASSIC_UDP, Math.min(edns?.udpSize ?? CLASSIC_UDP, OUR_UDP));

    // A name with a label no Kubernetes name has is answered for what it is, never as the name it resembles.
    const name = plainName(question.labels);
    let a = name === undefined ? answerUnusual(this.o.view.zone, inZone(question.labels, this.o.view.zone)) : answer(this.o.view, name, qtype);
    // An ExternalName's CNAME: its target's records go along (a stub resolver does not chase it).
    let external = false;
    const cname = a.answers.length === 1 && a.answers[0]!.type === 'CNAME' && qtype !== 'CNAME' ? (a.answers[0]!.data as string) : undefined;
    if (cname) {
      const target = answer(this.o.view, cname, qtype);
      if (!target.forward) a = { ...a, answers: [...a.answers, ...target.answers] };
      else if (this.o.upstream) {
        external = true;
        a = { ...a, answers: [...a.answers, ...(await this.lookUpstream(cname, qtype))] };
      }
    }
    if (a.forward) {
      const busy = this.forwards >= MAX_FORWARDS;
      const forwarded = this.o.upstream && !busy ? await this.forward(query, proto) : undefined;
      // The upstream's answer goes back only when it is one to this question.
      const echoed = forwarded && forwarded.readUInt16BE(0) === query.readUInt16BE(0) && questionBytes(forwarded)?.equals(query.subarray(12, question.end)) ? forwarded : undefined;
      const rcode = !this.o.upstream || busy ? 'REFUSED' : 'SERVFAIL';
      const out = echoed ?? this.encode(query, question, q, { rcode, answers: [], authorities: [] }, edns !== undefined, limit, false);
      return this.observed(out, proto, question.qtype, RCODE_NAMES[out[3]! & 0x0f] ?? 'other', t0, true);
    }
    const out = this.encode(query, question, q, a, edns !== undefined, limit, true);
    // Not cached: what the upstream said (its TTLs are its own).
    if (fast !== undefined && !external) {
      // Full: the oldest answer goes (a Map iterates in insertion order), not the lot: a flood
      // of new questions must not take every other client's answers with it.
      if (this.cache.size >= MAX_CACHE) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(fast.key, out);
    }
    return this.observed(Buffer.from(out), proto, question.qtype, a.rcode, t0, false);
  }

  /**
   * The common case, a question asked before: its answer found by the query's bytes, without
   * decoding it, with the query's ID and question written in (a type answered alike shares the
   * answer: cacheKey); undefined when it is not cached (or is a response, never answered).
   */
  private cachedAnswer(query: Buffer, proto: 'udp' | 'tcp', t0: number): Buffer | undefined {
    if (this.cachedGeneration !== this.o.view.generation) {
      this.cache.clear();
      this.cachedGeneration = this.o.view.generation;
    }
    if (query.length >= 3 && query[2]! & 0x80) return undefined;
    const fast = cacheKey(query, proto);
    const cached = fast === undefined ? undefined : this.cache.get(fast.key);
    if (!cached) return undefined;
    const out = Buffer.from(cached);
    query.copy(out, 0, 0, 2);
    query.copy(out, 12, 12, fast!.end);
    return this.observed(out, proto, fast!.qtype, RCODE_NAMES[out[3]! & 0x0f] ?? 'other', t0, false);
  }

  private observed(out: Buffer | undefined, proto: 'udp' | 'tcp', qtype: number | undefined, rcode: string, t0: number, forwarded: boolean): Buffer | undefined {
    if (out) this.o.observe?.(proto, qtype, rcode, (performance.now() - t0) / 1000, forwarded);
    return out;
  }

  /**
   * The answer for `q`, its question the query's own bytes; one that does not fit `limit`
   * goes out truncated: no records, TC set (the client asks again over TCP).
   */
  private encode(query: Buffer, question: Question, q: Decoded, a: Answer, edns: boolean, limit: number, authoritative: boolean): Buffer {
    // dns-packet takes the response code in the flags' low bits only.
    const flags = (q.flag_rd ? packet.RECURSION_DESIRED : 0) | packet.RECURSION_AVAILABLE | (authoritative ? packet.AUTHORITATIVE_ANSWER : 0) | (q.flag_cd ? packet.CHECKING_DISABLED : 0) | RCODE_NUMBER[a.rcode];
    const additionals = edns ? [{ type: 'OPT' as const, name: '.', udpPayloadSize: OUR_UDP, flags: 0 }] : [];
    const response = { type: 'response' as const, id: q.id ?? 0, flags, rcode: a.rcode, questions: [] as packet.Question[], answers: a.answers, authorities: a.authorities, additionals } as packet.Packet & { rcode: string };
    const full = withQuestion(packet.encode(response), query, question);
    if (full.length <= limit) return full;
    return withQuestion(packet.encode({ ...response, flags: flags | packet.TRUNCATED_RESPONSE, answers: [], authorities: [] } as packet.Packet), query, question);
  }

  /** The records of `name` (type `qtype`) that the upstream resolver gives; none when it does not answer. */
  private async lookUpstream(name: string, qtype: string): Promise<Answer['answers']> {
    const query = packet.encode({ type: 'query', id: Math.floor(Math.random() * 65536), flags: packet.RECURSION_DESIRED, questions: [{ type: qtype as packet.RecordType, name, class: 'IN' }] });
    const reply = await this.forward(query, 'udp');
    if (!reply) return [];
    try {
      return ((packet.decode(reply).answers ?? []) as Answer['answers']).filter((r) => r.type === qtype || r.type === 'CNAME');
    } catch {
      return [];
    }
  }

  /** The query as it came, to the upstream resolver, over the same transport; undefined when it does not answer. */
  private forward(query: Buffer, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const up = this.o.upstream!;
    this.forwards++;
    return new Promise((resolve) => {
      let done = false;
      const finish = (b: Buffer | undefined) => {
        if (done) return;
        done = true;
        this.forwards--;
        clearTimeout(timer);
        resolve(b);
      };
      const timer = setTimeout(() => finish(undefined), FORWARD_TIMEOUT_MS);
      if (proto === 'udp') {
        const s = dgram.createSocket('udp4');
        s.on('message', (m, from) => {
          if (from.port !== up.port || (isIP(up.host) !== 0 && from.address !== up.host)) return; // not the upstream's
          s.close();
          finish(m);
        });
        s.on('error', () => {
          s.close();
          finish(undefined);
        });
        s.send(query, up.port, up.host);
        timer.unref();
      } else {
        const framed = Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]);
        const chunks: Buffer[] = [];
        const s = new Socket();
        s.connect(up.port, up.host, () => s.write(framed));
        s.on('data', (b: Buffer) => {
          chunks.push(b);
          const all = Buffer.concat(chunks);
          if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
            s.destroy();
            finish(all.subarray(2, 2 + all.readUInt16BE(0)));
          }
        });
        s.on('error', () => finish(undefined));
        timer.unref();
        s.on('close', () => finish(undefined));
      }
    });
  }

  /**
   * Answers up to UDP_BATCH queued queries in turn (fair.ts), then lets the event loop read
   * the sockets again (libuv reads up to 32 datagrams a turn): reading stays ahead of
   * answering, so a flood is dropped at its own queue, not met in the socket's buffer by
   * everyone else's queries.
   */
  private drain(udp: dgram.Socket | undefined): void {
    for (let n = 0; n < UDP_BATCH && !this.closed; n++) {
      const q = this.waiting.shift();
      if (!q) break;
      const t0 = performance.now();
      const answered = this.respond(q.msg, q.done ? 'tcp' : 'udp', q.at);
      this.counters.answered++;
      this.counters.answerMs += performance.now() - t0;
      if (q.done) void answered.then(q.done, () => q.done!(undefined));
      else
        void answered.then((out) => {
          if (out && udp && !this.closed) {
            udp.send(out, q.port, q.address);
            this.inProcess.record(Math.max(1, Math.round((performance.now() - q.at) * 1e6)));
          }
        });
    }
    if (this.waiting.size && !this.closed) setImmediate(() => this.drain(udp));
    else this.draining = false;
  }

  /** A datagram of `address` dropped: its queue is full; reported to `throttle` (not more than every THROTTLE_MS). */
  private overflowed(address: string): void {
    this.counters.dropped++;
    if (!this.o.throttle) return;
    const now = Date.now();
    if ((this.throttled.get(address) ?? 0) > now - THROTTLE_MS) return;
    if (this.throttled.size >= 4_096) this.throttled.clear();
    this.throttled.set(address, now);
    this.o.throttle(address);
  }

  /**
   * Answers a datagram in the callback that read it, when nothing waits for its turn and its
   * answer is cached: no queue, no promise, no extra turn of the event loop (one epoll_wait
   * less a query). A query's CPU is what decides its wait for the CPU on a loaded machine:
   * the kernel (EEVDF) puts a task that woke back in line behind the others by what it used
   * before it slept. Past UDP_BATCH datagrams read in one turn of the loop (a backlog in the
   * socket: libuv reads up to 32 a turn), the rest go the fair queue's way, and so does all
   * while anything is queued: a flood is met there, and its overflow throttled, as before.
   */
  private answerNow(udp: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo, at: number): boolean {
    if (this.waiting.size || this.burst >= UDP_BATCH || this.closed) return false;
    const out = this.cachedAnswer(msg, 'udp', at);
    if (!out) return false;
    if (this.burst++ === 0) setImmediate(this.endTurn); // once a turn, after the datagrams read in it
    udp.send(out, rinfo.port, rinfo.address);
    this.counters.answered++;
    this.counters.atOnce++;
    const ms = performance.now() - at;
    this.counters.answerMs += ms;
    this.inProcess.record(Math.max(1, Math.round(ms * 1e6)));
    return true;
  }

  /** Queues a query for its source's turn (fair.ts); false: its source's turn is full, dropped. */
  private enqueue(item: Waiting): boolean {
    // A TCP connection's queries are bounded by the connection (tcp.ts: TURN at a time), not here.
    if (!this.waiting.push(item.address, item, !item.done)) return false;
    if (!this.draining && !this.closed) {
      this.draining = true;
      const udp = this.udp;
      setImmediate(() => this.drain(udp));
    }
    return true;
  }

  /**
   * Serves UDP and TCP (or one of them: the other served by another thread, udp-thread.ts) on
   * `port` of every address of this network namespace; port 0: one the kernel picks (TCP on UDP's).
   */
  async listen(port: number, host = '0.0.0.0', transports: { udp?: boolean; tcp?: boolean } = {}): Promise<void> {
    if (transports.udp !== false) await this.listenUdp(port, host);
    if (transports.tcp !== false) await this.listenTcp(port || (this.udp?.address().port ?? 0), host);
  }

  /** The UDP port served (listen's port 0 made concrete). */
  get udpPort(): number {
    return this.udp!.address().port;
  }

  private async listenUdp(port: number, host: string): Promise<void> {
    // 1 MiB: about a thousand queries queued in the kernel; a larger buffer only lengthens the
    // wait behind a flood (the fair queue can only order what has been read).
    const udp = (this.udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 }));
    udp.on('message', (msg, rinfo) => {
      this.counters.udpRead++;
      const at = performance.now();
      if (this.answerNow(udp, msg, rinfo, at)) return;
      if (!this.enqueue({ msg, port: rinfo.port, address: rinfo.address, at })) this.overflowed(rinfo.address); // its source's turn is full
    });
    udp.on('error', () => {}); // a send to a client that went away
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => resolve());
    });
  }

  private async listenTcp(port: number, host: string): Promise<void> {
    const tcp = (this.tcp = createServer((socket) => this.serveTcp(socket)));
    tcp.maxConnections = this.tcpLimits.maxConnections; // Node closes the ones above it at once
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => resolve());
    });
    tcp.on('error', () => {}); // an accept that failed (EMFILE under a flood of connections) ends nothing
  }

  /**
   * Length-prefixed queries, within tcp.ts's limits; nothing of a connection outlives it. Each
   * query waits for its source's turn with the datagrams (one at a time per connection): a
   * pipelining client shares the server as a flood of datagrams does, never ahead of anyone.
   */
  private serveTcp(socket: Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    const address = socket.remoteAddress ?? '';
    const port = socket.remotePort ?? 0;
    serveConnection(socket, (msg) => new Promise((done) => void this.enqueue({ msg, port, address, at: performance.now(), done })), this.tcpLimits);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.udp?.close();
    for (const s of this.connections) s.destroy();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }
}

const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RCODE_NUMBER).map(([k, v]) => [v, k]));

/**
 * The query types records.ts (and the CNAME chase above) answers each in its own way: A,
 * CNAME, SOA, PTR, TXT, SRV and ANY. Every other type of a name gets the same answer (its
 * name's code, no records, the SOA), so they share one cached answer: a flood of every type
 * of one name costs a lookup each, not a decoding and an encoding, and does not push the
 * cache's other answers out.
 */
const ANSWERED_TYPES = new Set([1, 5, 6, 12, 16, 33, 255]);

/**
 * The cache key of a plain query, read from its bytes (pure): one question, no answer or
 * authority records, at most one additional record and that one an EDNS0 OPT at the root.
 * The key holds what the answer depends on: the question as asked (case kept), the UDP
 * limit, EDNS, RD and CD. undefined: anything else (decoded the slow way, never cached).
 */
export function cacheKey(query: Buffer, proto: 'udp' | 'tcp'): { key: string; qtype: number; end: number } | undefined {
  if (query.length < 17 || query.readUInt16BE(4) !== 1 || query.readUInt16BE(6) !== 0 || query.readUInt16BE(8) !== 0) return undefined;
  const additional = query.readUInt16BE(10);
  if (additional > 1 || (query[2]! & 0x78) !== 0) return undefined; // opcode QUERY only
  let i = 12;
  while (i < query.length && query[i] !== 0) {
    if (query[i]! & 0xc0) return undefined; // a compression pointer in a question: not a plain one
    i += query[i]! + 1;
  }
  const end = i + 5; // the root label, QTYPE, QCLASS
  if (end > query.length || query.readUInt16BE(i + 3) !== 1) return undefined; // class IN
  let limit = proto === 'tcp' ? 65535 : CLASSIC_UDP;
  if (additional === 1) {
    // OPT: root name, type 41, class = the client's UDP payload size, version 0 (the TTL's
    // second byte: any other is BADVERS, on the slow path); nothing after it.
    if (end + 11 > query.length || query[end] !== 0 || query.readUInt16BE(end + 1) !== 41 || query[end + 6] !== 0 || end + 11 + query.readUInt16BE(end + 9) !== query.length) return undefined;
    if (proto === 'udp') limit = Math.max(CLASSIC_UDP, Math.min(query.readUInt16BE(end + 3), OUR_UDP));
  } else if (end !== query.length) return undefined;
  const qtype = query.readUInt16BE(i + 1);
  return { key: `${query.toString('latin1', 12, i + 1)}|${ANSWERED_TYPES.has(qtype) ? qtype : 'other'}|${limit}|${additional}|${query[2]! & 0x01}|${query[3]! & 0x10}`, qtype, end };
}
