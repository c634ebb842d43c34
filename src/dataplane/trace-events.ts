// What the kernel reports about a traced packet, parsed (pure). Two sources, because a node
// holds rules of both kinds: nf_tables reports every chain a packet marked `meta nftrace` passes
// (`nft monitor trace`: kube-proxy's nftables mode, and kubewire's own trace chains at every
// hook), and x_tables (iptables-legacy: kube-proxy's iptables mode) logs a `TRACE:` line per
// rule through the namespace's logger, nfnetlink_log group 0, read as pcap from `tcpdump -i nflog:0`.
// The port's traceEvents() hands these values out; nothing outside the dataplane reads the tools.

export type { Hook } from './observations.ts';

/** The headers of a packet as either source shows them (post-NAT where the chain runs after NAT). */
export interface PacketHeader {
  saddr?: string;
  daddr?: string;
  protocol?: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** TCP flags as nft names them (syn, ack, rst, ...). */
  flags?: string[];
  icmpType?: string;
  icmpId?: number;
  /** An ICMP error's quoted packet: which probe it answers. */
  inner?: { saddr: string; daddr: string; protocol?: 'tcp' | 'udp' | 'icmp'; sport?: number; dport?: number };
  iif?: string;
  oif?: string;
  /** The frame's addresses, where nft saw the link layer (at prerouting). */
  etherSaddr?: string;
  etherDaddr?: string;
}

/** One step of one packet in one chain. */
export interface TraceEvent {
  source: 'nft' | 'iptables';
  /** nft: the trace id (one per packet and namespace); iptables: the record's time in microseconds. */
  packetKey: string;
  table: string;
  chain: string;
  /** packet: the chain was entered (headers below); rule: a rule matched; return/policy/verdict: the chain ended. */
  type: 'packet' | 'rule' | 'return' | 'policy' | 'verdict';
  /** nft: the rule's text, or "handle N" when nft did not know it; iptables: the rule's number in its chain. */
  rule?: string;
  ruleNumber?: number;
  /** accept, drop, continue, jump X, goto X, return (nft); iptables: the policy's verdict, if any. */
  verdict?: string;
  packet?: PacketHeader;
  /** iptables: when it was logged (µs since the epoch), for merging. */
  time?: number;
  /** iptables: the devices (ifindex) the packet came in on and goes out of, as nfnetlink_log reports them. */
  indev?: number;
  outdev?: number;
}

const NFT_LINE = /^trace id (\S+) (ip|inet|bridge|netdev|arp) (\S+) (\S+) (packet: |rule |unknown rule handle |verdict |policy )(.*)$/;

/** `nft monitor` output: trace lines parsed, everything else (ruleset changes) skipped. */
export function parseNftTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    const m = NFT_LINE.exec(line.trimEnd());
    if (!m) continue;
    const [, id, , table, chain, kind, rest] = m as unknown as [string, string, string, string, string, string, string];
    const base = { source: 'nft' as const, packetKey: id, table, chain };
    if (kind === 'packet: ') events.push({ ...base, type: 'packet', packet: parseNftPacket(rest) });
    else if (kind === 'rule ' || kind === 'unknown rule handle ') {
      const v = /^(.*) \(verdict ([^)]*)\)$/.exec(rest);
      events.push({ ...base, type: 'rule', rule: kind === 'rule ' ? (v?.[1] ?? rest) : `handle ${v?.[1] ?? rest}`, verdict: v?.[2] });
    } else events.push({ ...base, type: kind === 'policy ' ? 'policy' : 'verdict', verdict: rest.trim() });
  }
  return events;
}

/** The fields of nft's `packet:` dump that say which packet it is and where it goes. */
export function parseNftPacket(text: string): PacketHeader {
  const word = (re: RegExp) => re.exec(text)?.[1];
  const num = (re: RegExp) => {
    const v = word(re);
    return v === undefined ? undefined : Number(v);
  };
  const protocol = /\btcp (sport|dport|flags)\b/.test(text) ? 'tcp' : /\budp (sport|dport)\b/.test(text) ? 'udp' : /\bicmp type\b/.test(text) ? 'icmp' : undefined;
  const flags = word(/\btcp flags == (\S+)/);
  return strip({
    iif: word(/\biif "([^"]+)"/),
    etherSaddr: word(/\bether saddr (\S+)/),
    etherDaddr: word(/\bether daddr (\S+)/),
    oif: word(/\boif "([^"]+)"/),
    saddr: word(/\bip saddr (\S+)/),
    daddr: word(/\bip daddr (\S+)/),
    protocol,
    sport: num(/\b(?:tcp|udp) sport (\d+)/),
    dport: num(/\b(?:tcp|udp) dport (\d+)/),
    flags: flags === undefined ? undefined : tcpFlagNames(flags),
    icmpType: word(/\bicmp type (\S+)/),
    icmpId: num(/\bicmp id (\d+)/),
  });
}

const TCP_FLAGS = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg', 'ecn', 'cwr'];

/** nft prints flags as names joined by "," (syn,ack) or as a number (0x14). */
function tcpFlagNames(text: string): string[] {
  if (/^0x[0-9a-f]+$/i.test(text)) {
    const n = Number(text);
    return TCP_FLAGS.filter((_, i) => n & (1 << i));
  }
  return text.split(/[,|]/);
}

function strip<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

// nfnetlink_log's attributes (linux/netfilter/nfnetlink_log.h) as libpcap's DLT_NFLOG keeps them.
const NFULA_IFINDEX_INDEV = 4;
const NFULA_IFINDEX_OUTDEV = 5;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const NFULA_HWHEADER = 16;
const LINKTYPE_NFLOG = 239;

/** `tcpdump -i nflog:0 -w -` output: the TRACE lines x_tables logged, with the packet each was about. */
export function parseNflogPcap(pcap: Buffer): TraceEvent[] {
  if (pcap.length < 24) return [];
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && pcap.readUInt32BE(0) !== 0xa1b2c3d4 && pcap.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap stream');
  const nanos = (le ? magic : pcap.readUInt32BE(0)) === 0xa1b23c4d;
  const u32 = (at: number) => (le ? pcap.readUInt32LE(at) : pcap.readUInt32BE(at));
  if (u32(20) !== LINKTYPE_NFLOG) throw new Error(`pcap link type ${u32(20)} is not NFLOG`);
  const events: TraceEvent[] = [];
  for (let at = 24; at + 16 <= pcap.length; ) {
    const time = u32(at) * 1e6 + (nanos ? Math.floor(u32(at + 4) / 1000) : u32(at + 4));
    const length = u32(at + 8);
    const record = pcap.subarray(at + 16, at + 16 + length);
    at += 16 + length;
    if (record.length < length) break; // cut off at the end of the capture
    const { prefix, payload, indev, outdev, hwheader } = nflogAttributes(record);
    const m = prefix && /^TRACE: ([^:]+):([^:]+):(rule|return|policy):(\d+)/.exec(prefix);
    if (!m) continue;
    const packet = payload ? parseIPv4(payload) : undefined;
    if (packet && hwheader && hwheader.length >= 12) {
      packet.etherDaddr = mac(hwheader.subarray(0, 6));
      packet.etherSaddr = mac(hwheader.subarray(6, 12));
    }
    events.push({ source: 'iptables', packetKey: String(time), time, table: m[1]!, chain: m[2]!, type: m[3] as 'rule' | 'return' | 'policy', ruleNumber: Number(m[4]), ...(packet ? { packet } : {}), ...(indev ? { indev } : {}), ...(outdev ? { outdev } : {}) });
  }
  return events;
}

/** An NFLOG record: a 4-byte header, then TLVs (length and type in host order, i.e. little-endian here), 4-byte aligned. */
function nflogAttributes(record: Buffer): { prefix?: string; payload?: Buffer; indev?: number; outdev?: number; hwheader?: Buffer } {
  const found: { prefix?: string; payload?: Buffer; indev?: number; outdev?: number; hwheader?: Buffer } = {};
  for (let at = 4; at + 4 <= record.length; ) {
    const length = record.readUInt16LE(at);
    const type = record.readUInt16LE(at + 2) & 0x7fff;
    if (length < 4) break;
    const value = record.subarray(at + 4, at + length);
    if (type === NFULA_PREFIX) found.prefix = value.toString('latin1').replace(/\0.*$/s, '');
    if (type === NFULA_PAYLOAD) found.payload = value;
    // The attributes' own values are in network order.
    if (type === NFULA_IFINDEX_INDEV && value.length >= 4) found.indev = value.readUInt32BE(0);
    if (type === NFULA_IFINDEX_OUTDEV && value.length >= 4) found.outdev = value.readUInt32BE(0);
    if (type === NFULA_HWHEADER) found.hwheader = value;
    at += (length + 3) & ~3;
  }
  return found;
}

function mac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const PROTOCOLS: Record<number, 'tcp' | 'udp' | 'icmp'> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };
const ICMP_TYPES: Record<number, string> = { 0: 'echo-reply', 3: 'destination-unreachable', 8: 'echo-request', 11: 'time-exceeded' };

/** An IPv4 packet's addresses, ports or ICMP identity (and, for an ICMP error, the quoted packet's). */
export function parseIPv4(ip: Buffer, quoted = false): PacketHeader | undefined {
  if (ip.length < 20 || ip[0]! >> 4 !== 4) return undefined;
  const ihl = (ip[0]! & 0xf) * 4;
  const protocol = PROTOCOLS[ip[9]!];
  const addr = (at: number) => `${ip[at]}.${ip[at + 1]}.${ip[at + 2]}.${ip[at + 3]}`;
  const header: PacketHeader = { saddr: addr(12), daddr: addr(16), ...(protocol ? { protocol } : {}) };
  const l4 = ip.subarray(ihl);
  if ((protocol === 'tcp' || protocol === 'udp') && l4.length >= 4) {
    header.sport = l4.readUInt16BE(0);
    header.dport = l4.readUInt16BE(2);
    if (protocol === 'tcp' && l4.length >= 14) header.flags = TCP_FLAGS.filter((_, i) => l4[13]! & (1 << i));
  }
  if (protocol === 'icmp' && l4.length >= 8) {
    header.icmpType = ICMP_TYPES[l4[0]!] ?? String(l4[0]);
    if (l4[0] === 0 || l4[0] === 8) header.icmpId = l4.readUInt16BE(4);
    if (!quoted && (l4[0] === 3 || l4[0] === 11)) {
      const inner = parseIPv4(l4.subarray(8), true);
      if (inner?.saddr && inner.daddr) header.inner = strip({ saddr: inner.saddr, daddr: inner.daddr, protocol: inner.protocol, sport: inner.sport, dport: inner.dport });
    }
  }
  return header;
}
