// The DNS wire protocol around records.ts, with dns-packet for the encoding: UDP and TCP
// (length-prefixed, several queries per connection), EDNS0, truncation (TC) of UDP answers
// larger than the client takes, forwarding of names outside the cluster to an upstream
// resolver (REFUSED when there is none), and the error codes a bad query earns — FORMERR for
// one that does not parse or asks several questions, NOTIMP for an opcode other than QUERY,
// REFUSED for a class other than IN. Encoded answers are cached until the cluster changes; a
// hit only rewrites the query's ID.

import dgram from 'node:dgram';
import { createServer, Socket, type Server } from 'node:net';
import * as packet from 'dns-packet';
import { answer, type Answer, type ClusterView, type Rcode } from './records.ts';

/** What we advertise and what a UDP answer may be without EDNS (RFC 1035) or with it (the DNS flag day's 1232). */
const CLASSIC_UDP = 512;
const OUR_UDP = 1232;
const MAX_CACHE = 50_000;
const FORWARD_TIMEOUT_MS = 2_000;

export interface Observer {
  /** One answered query: its transport, type, response code, seconds taken, and whether it was forwarded. */
  (q: { proto: 'udp' | 'tcp'; qtype: string; rcode: string; seconds: number; forwarded: boolean }): void;
}

export interface ServerOptions {
  view: ClusterView & { generation: number };
  /** host:port of the resolver for names outside the cluster; none: REFUSED. */
  upstream?: { host: string; port: number };
  observe?: Observer;
}

/** dns-packet's decoded header bits, which its types leave out. */
type Decoded = packet.Packet & { flag_rd?: boolean; flag_cd?: boolean };

const RCODE_NUMBER: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };

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

  constructor(private readonly o: ServerOptions) {}

  /** The response to one query in wire format, or undefined for something not to answer (a response, a runt). */
  async respond(query: Buffer, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const t0 = performance.now();
    if (query.length >= 3 && query[2]! & 0x80) return undefined; // a response, not a query: never answer one
    if (this.cachedGeneration !== this.o.view.generation) {
      this.cache.clear();
      this.cachedGeneration = this.o.view.generation;
    }
    // The common case, a question asked before: found by its bytes, without decoding the query.
    const fast = cacheKey(query, proto);
    const cached = fast === undefined ? undefined : this.cache.get(fast.key);
    if (cached) {
      const out = Buffer.from(cached);
      query.copy(out, 0, 0, 2);
      return this.observed(out, proto, QTYPE_NAMES[fast!.qtype] ?? String(fast!.qtype), RCODE_NAMES[out[3]! & 0x0f] ?? '?', t0, false);
    }
    let q: Decoded;
    try {
      q = packet.decode(query) as Decoded;
    } catch {
      return this.observed(bare(query, 'FORMERR'), proto, '?', 'FORMERR', t0, false);
    }
    const opcode = (query[2]! >> 3) & 0x0f;
    if (opcode !== 0) return this.observed(bare(query, 'NOTIMP'), proto, '?', 'NOTIMP', t0, false);
    const question = q.questions?.length === 1 ? q.questions[0]! : undefined;
    if (!question) return this.observed(bare(query, 'FORMERR'), proto, '?', 'FORMERR', t0, false);
    const qtype = String(question.type);
    if (question.class !== 'IN') return this.observed(bare(query, 'REFUSED'), proto, qtype, 'REFUSED', t0, false);
    const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = proto === 'tcp' ? 65535 : Math.max(CLASSIC_UDP, Math.min(opt?.udpPayloadSize ?? CLASSIC_UDP, OUR_UDP));

    let a = answer(this.o.view, question.name, qtype);
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
      const forwarded = this.o.upstream ? await this.forward(query, proto) : undefined;
      const out = forwarded ?? this.encode(q, { rcode: this.o.upstream ? 'SERVFAIL' : 'REFUSED', answers: [], authorities: [] }, opt !== undefined, limit, false);
      return this.observed(out, proto, qtype, RCODE_NAMES[out[3]! & 0x0f] ?? '?', t0, true);
    }
    const out = this.encode(q, a, opt !== undefined, limit, true);
    // Not cached: what the upstream said (its TTLs are its own).
    if (fast !== undefined && !external) {
      if (this.cache.size >= MAX_CACHE) this.cache.clear();
      this.cache.set(fast.key, out);
    }
    return this.observed(Buffer.from(out), proto, qtype, a.rcode, t0, false);
  }

  private observed(out: Buffer | undefined, proto: 'udp' | 'tcp', qtype: string, rcode: string, t0: number, forwarded: boolean): Buffer | undefined {
    if (out) this.o.observe?.({ proto, qtype, rcode, seconds: (performance.now() - t0) / 1000, forwarded });
    return out;
  }

  /** The answer for `q`; one that does not fit `limit` goes out truncated: no records, TC set (the client asks again over TCP). */
  private encode(q: Decoded, a: Answer, edns: boolean, limit: number, authoritative: boolean): Buffer {
    // dns-packet takes the response code in the flags' low bits only.
    const flags = (q.flag_rd ? packet.RECURSION_DESIRED : 0) | packet.RECURSION_AVAILABLE | (authoritative ? packet.AUTHORITATIVE_ANSWER : 0) | (q.flag_cd ? packet.CHECKING_DISABLED : 0) | RCODE_NUMBER[a.rcode];
    const additionals = edns ? [{ type: 'OPT' as const, name: '.', udpPayloadSize: OUR_UDP, flags: 0 }] : [];
    const response = { type: 'response' as const, id: q.id ?? 0, flags, rcode: a.rcode, questions: q.questions, answers: a.answers, authorities: a.authorities, additionals } as packet.Packet & { rcode: string };
    const full = packet.encode(response);
    if (full.length <= limit) return full;
    return packet.encode({ ...response, flags: flags | packet.TRUNCATED_RESPONSE, answers: [], authorities: [] } as packet.Packet);
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
    return new Promise((resolve) => {
      let done = false;
      const finish = (b: Buffer | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(b);
      };
      const timer = setTimeout(() => finish(undefined), FORWARD_TIMEOUT_MS);
      if (proto === 'udp') {
        const s = dgram.createSocket('udp4');
        s.on('message', (m) => {
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
      }
    });
  }

  /** Serves UDP and TCP on `port` of every address of this network namespace. */
  async listen(port: number, host = '0.0.0.0'): Promise<void> {
    const udp = (this.udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 }));
    udp.on('message', (msg, rinfo) => {
      void this.respond(msg, 'udp').then((out) => {
        if (out) udp.send(out, rinfo.port, rinfo.address);
      });
    });
    udp.on('error', () => {}); // a send to a client that went away
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => resolve());
    });
    const tcp = (this.tcp = createServer((socket) => this.serveTcp(socket)));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, host, () => resolve());
    });
  }

  /** Length-prefixed queries, answered in turn; idle connections close after 10 s. */
  private serveTcp(socket: Socket): void {
    this.connections.add(socket);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const query = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + query.length);
        chain = chain.then(async () => {
          const out = await this.respond(Buffer.from(query), 'tcp');
          if (out && !socket.destroyed) socket.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 0xff]), out]));
        });
      }
    });
  }

  async close(): Promise<void> {
    this.udp?.close();
    for (const s of this.connections) s.destroy();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }
}

const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RCODE_NUMBER).map(([k, v]) => [v, k]));
const QTYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 255: 'ANY' };

/**
 * The cache key of a plain query, read from its bytes (pure): one question, no answer or
 * authority records, at most one additional record and that one an EDNS0 OPT at the root.
 * The key holds what the answer depends on: the question as asked (case kept), the UDP
 * limit, EDNS, RD and CD. undefined: anything else (decoded the slow way, never cached).
 */
export function cacheKey(query: Buffer, proto: 'udp' | 'tcp'): { key: string; qtype: number } | undefined {
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
    // OPT: root name, type 41, class = the client's UDP payload size; nothing after it.
    if (end + 11 > query.length || query[end] !== 0 || query.readUInt16BE(end + 1) !== 41 || end + 11 + query.readUInt16BE(end + 9) !== query.length) return undefined;
    if (proto === 'udp') limit = Math.max(CLASSIC_UDP, Math.min(query.readUInt16BE(end + 3), OUR_UDP));
  } else if (end !== query.length) return undefined;
  return { key: `${query.toString('latin1', 12, end)}|${limit}|${additional}|${query[2]! & 0x01}|${query[3]! & 0x10}`, qtype: query.readUInt16BE(i + 1) };
}
