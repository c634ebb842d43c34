// A probe's path as hops, from what the kernel reported (observe.ts): the walk starts where
// the probe was sent and goes, namespace by namespace, where the packet really went: each
// namespace's trace chains say whether it arrived, was delivered locally or left (and by
// which device, with which addresses after NAT); its rules say what netfilter did; the
// kernel's own lookups with the packet's keys (`ip route get`, neighbours, the bridges' FDB,
// listening sockets) say why. The reply is walked the same way from where it was sent.

import { parseConntrackLine } from '../dataplane/observations.ts';
import type { ConntrackFlow, ConntrackTuple } from '../dataplane/port.ts';
import { IPTABLES_HOOKS, iptablesPriority, type Hook, type PacketHeader, type TraceEvent } from './events.ts';
import type { Hop, HopConntrack, HopRule, Leg, Trace, Translation } from './types.ts';
import { withNat } from './render.ts';
import { isTraceChain, isTraceTable, ownTraceEvent, TLS_VERIFY, TRACE_TABLE, type Fate, type Observation, type Place, type Probe, type Snapshot } from './observe.ts';

export type { Hop, HopKind, Leg, Trace, Verdict } from './types.ts';

/** The kernel's lookups with a packet's keys, in its namespace. */
export interface Lookups {
  /** `ip route get fibmatch DST [from SRC iif DEV]`: the matching route, or the kernel's refusal. */
  route(netns: string, dst: string, from?: string, iif?: string): Promise<{ route?: { dst: string; gateway?: string; dev?: string; type?: string; table?: string }; error?: string }>;
  /** The processes listening on the port ("node (pid 12)"); empty when nothing listens. */
  listeners(netns: string, protocol: 'tcp' | 'udp', port: number): Promise<string[]>;
}

/** Where a place's devices lead: a pod's eth0 to its node's bridge, a node's (or the client's) eth0 to the underlay. */
export interface Fabric {
  /** The bridge a device's frames enter: its place and name; undefined for a device that is not on one. */
  segment(place: Place, dev: string): { place: Place; bridge: string } | undefined;
  /** An overlay device's wrapping of a frame for `mac`: where the outer packet goes; undefined for other devices. */
  tunnel?(place: Place, dev: string, mac: string): string | undefined;
  /**
   * The true cause of a drop by the cluster's own rule (vpc mode: the VPC's source check; a
   * NetworkPolicy's drop); undefined for any other rule. `seen`: the packet as the dropping
   * chain saw it (after DNAT), when the trace says.
   */
  dropReason?(place: Place, rule: string, packet: PacketHeader, seen?: PacketHeader): string | undefined;
}

export function placeLabel(p: Place): string {
  return p.kind === 'pod' ? `pod/${p.name}` : p.kind === 'node' ? `node/${p.name}` : p.kind;
}

/** What one namespace saw of one packet: its events in hook order and the trace chains' views of it. */
interface Passage {
  events: Array<TraceEvent & { hook: Hook; priority: number }>;
  arrived?: PacketHeader;
  sent?: PacketHeader;
  local?: PacketHeader;
  forwarded?: PacketHeader;
  left?: PacketHeader;
}

const HOOK_RANK: Record<Hook, number> = { prerouting: 0, output: 0, input: 1, forward: 1, postrouting: 2 };
const TRACE_CHAINS: Record<string, { hook: Hook; priority: number }> = {
  'trace-prerouting': { hook: 'prerouting', priority: -350 },
  'trace-output': { hook: 'output', priority: -350 },
  'trace-input': { hook: 'input', priority: 350 },
  'trace-forward': { hook: 'forward', priority: 350 },
  'trace-postrouting': { hook: 'postrouting', priority: 350 },
};

/** Which way a packet goes for a probe: its request (source port = the probe's, or the one a NAT gave it), its reply, or neither. */
export function direction(h: PacketHeader | undefined, p: Probe, fromIP?: string): 'request' | 'reply' | undefined {
  if (!h) return undefined;
  const aliases = p.aliases ?? [];
  if (p.protocol === 'icmp' && h.protocol === 'icmp' && (h.icmpType === 'echo-request' || h.icmpType === 'echo-reply')) {
    if (h.icmpId === p.sport) return h.icmpType === 'echo-request' ? 'request' : 'reply';
    if (h.icmpType === 'echo-request' && aliases.some((a) => a.addr === h.saddr && a.port === h.icmpId)) return 'request';
    if (h.icmpType === 'echo-reply' && aliases.some((a) => a.addr === h.daddr && a.port === h.icmpId)) return 'reply';
    return undefined;
  }
  if (h.protocol === 'icmp' && (h.icmpType === 'destination-unreachable' || h.icmpType === 'time-exceeded')) {
    if (h.inner) return h.inner.protocol === p.protocol && (h.inner.sport === p.sport || aliases.some((a) => a.addr === h.inner!.saddr && a.port === h.inner!.sport)) ? 'reply' : undefined;
    return fromIP !== undefined && h.daddr === fromIP ? 'reply' : undefined;
  }
  if (h.protocol !== p.protocol) return undefined;
  if (h.sport === p.sport) return 'request';
  if (h.dport === p.sport) return 'reply';
  if (aliases.some((a) => a.addr === h.saddr && a.port === h.sport)) return 'request';
  if (aliases.some((a) => a.addr === h.daddr && a.port === h.dport)) return 'reply';
  return undefined;
}

/**
 * The source address and port a NAT gave the probe on its way (a masquerade that picked
 * another port: nftables mode's `fully-random`, or a clash), read from the conntrack entries
 * of the namespaces that NATed it: the reply tuple's destination is where the probe's packets
 * come from after that hop. Followed through every NAT (one entry's new tuple is the next's original).
 */
export function natAliases(obs: Pick<Observation, 'snapshots'>, probe: Probe): Array<{ addr: string; port: number }> {
  const entries = [...obs.snapshots.values()].flatMap((s) => s.conntrack).map(natTuples).filter((e): e is ConntrackEntry => e !== undefined && e.protocol === probe.protocol);
  const found: Array<{ addr: string; port: number }> = [];
  const isOurs = (src: string, port: number) => port === probe.sport || found.some((a) => a.addr === src && a.port === port);
  for (let changed = true; changed; ) {
    changed = false;
    for (const e of entries) {
      if (!isOurs(e.orig.src, e.orig.sport) || (e.reply.dst === e.orig.src && e.reply.dport === e.orig.sport)) continue;
      if (found.some((a) => a.addr === e.reply.dst && a.port === e.reply.dport) || e.reply.dport === probe.sport) continue;
      found.push({ addr: e.reply.dst, port: e.reply.dport });
      changed = true;
    }
  }
  return found;
}

interface ConntrackEntry {
  protocol: string;
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
}

/** A flow's two tuples with ports (an echo's identifier as both ports); undefined when a tuple has neither. */
function natTuples(f: ConntrackFlow): ConntrackEntry | undefined {
  const ports = (t: ConntrackTuple) => {
    const sport = t.sport ?? t.id;
    const dport = t.dport ?? t.id;
    return sport === undefined || dport === undefined ? undefined : { src: t.src, dst: t.dst, sport, dport };
  };
  const orig = ports(f.original);
  const reply = ports(f.reply);
  return orig && reply ? { protocol: f.protocol, orig, reply } : undefined;
}

/** A `conntrack -L` line's two tuples, as natAliases reads them. */
export function parseConntrack(line: string): ConntrackEntry | undefined {
  const f = parseConntrackLine(line);
  return f && natTuples(f);
}

/**
 * One namespace's passages of the probe's packet in one direction, in order: usually one, but
 * a packet may cross a namespace twice (bridged through the underlay, then routed by its
 * router), and a lost packet is sent again (a retransmission starts a passage of its own).
 */
export function passages(events: TraceEvent[], snap: Snapshot | undefined, probe: Probe, dir: 'request' | 'reply', fromIP?: string, table: string = TRACE_TABLE): Passage[] {
  const runs: Array<Passage['events']> = [];
  // nft: a trace id per packet and hook run (a bridged packet's id changes after prerouting);
  // each id's packet: line says which packet it is; a trace chain at -350 starts a passage.
  const keyDir = new Map<string, 'request' | 'reply' | undefined>();
  const at = new Map<string, { hook: Hook; priority: number }>();
  for (const e of events) {
    if (e.source !== 'nft') continue;
    // Another session's trace chains (one running beside this one) are not this packet's path.
    if (isTraceTable(e.table) && e.table !== table) continue;
    if (e.type === 'packet' && !keyDir.has(e.packetKey)) keyDir.set(e.packetKey, direction(e.packet, probe, fromIP));
    if (keyDir.get(e.packetKey) !== dir) continue;
    const base = e.table === table ? TRACE_CHAINS[e.chain] : snap?.nftChains.get(`${e.table}/${e.chain}`);
    if (base && e.type === 'packet') {
      if (base.priority === -350 || !runs.length) runs.push([]);
      at.set(e.packetKey, base);
    }
    const where = at.get(e.packetKey);
    if (where) runs.at(-1)!.push({ ...e, ...where });
  }
  const legacy = events.filter((e) => e.source === 'iptables' && direction(e.packet, probe, fromIP) === dir);
  if (!runs.length && legacy.some((e) => isTraceChain(e.chain))) return legacyPassages(legacy, snap);
  // iptables beside nft: every line carries its packet; its lines join the first passage (x_tables runs on nodes, which a packet crosses once).
  const t0 = legacy[0]?.time ?? 0;
  let hook: Hook | undefined;
  if (legacy.length && !runs.length) runs.push([]);
  for (const e of legacy) {
    if ((e.time ?? 0) - t0 > 200_000) break; // a retransmission's
    hook = IPTABLES_HOOKS[e.chain] ?? hook;
    if (!hook) continue;
    runs[0]!.push({ ...e, hook, priority: iptablesPriority(e.table, hook) });
  }
  return runs.map((run) => {
    // Hook order, then priority; each source keeps its own order within a chain (the sort is stable).
    run.sort((a, b) => HOOK_RANK[a.hook] - HOOK_RANK[b.hook] || a.priority - b.priority);
    const seen = (chain: string) => run.find((e) => e.table === table && e.chain === chain && e.type === 'packet')?.packet;
    return { events: run, arrived: seen('trace-prerouting'), sent: seen('trace-output'), local: seen('trace-input'), forwarded: seen('trace-forward'), left: seen('trace-postrouting') };
  });
}

/**
 * Passages where x_tables alone marked and saw the packet (a kernel without nf_tables): a new
 * packet's first line is the end of the trace chain (TRACE marks it there, after its own rule
 * was matched unseen); a packet marked already logs the jump into that chain first: IPVS
 * sending on, through OUTPUT, a packet it took at INPUT, which stays one passage. mangle's
 * built-in chains are the observation points, their devices named from the ifindex.
 */
function legacyPassages(events: TraceEvent[], snap: Snapshot | undefined): Passage[] {
  const name = (ifindex?: number) => (ifindex === undefined ? undefined : (snap?.links.find((l) => l.ifindex === ifindex)?.ifname ?? `if${ifindex}`));
  const passes: Passage[] = [];
  let hook: Hook | undefined;
  for (const [i, e] of events.entries()) {
    if (isTraceChain(e.chain)) {
      // A packet already marked logs the jump into the trace chain too: one IPVS sends on.
      const prev = events[i - 1];
      const continued = prev && (isTraceChain(prev.chain) || (prev.table === 'raw' && prev.type === 'rule' && (prev.chain === 'PREROUTING' || prev.chain === 'OUTPUT')));
      if (!continued) passes.push({ events: [] });
      hook = undefined;
      continue;
    }
    const pass = passes.at(-1);
    if (!pass) continue;
    hook = IPTABLES_HOOKS[e.chain] ?? hook;
    if (!hook) continue;
    pass.events.push({ ...e, hook, priority: iptablesPriority(e.table, hook) });
    if (e.table !== 'mangle' || !IPTABLES_HOOKS[e.chain] || !e.packet) continue;
    const seen = { ...e.packet, ...(name(e.indev) ? { iif: name(e.indev) } : {}), ...(name(e.outdev) ? { oif: name(e.outdev) } : {}) };
    const at = { PREROUTING: 'arrived', OUTPUT: 'sent', INPUT: 'local', FORWARD: 'forwarded', POSTROUTING: 'left' }[e.chain] as 'arrived' | 'sent' | 'local' | 'forwarded' | 'left';
    pass[at] ??= seen;
  }
  return passes;
}

/**
 * The passage that continues the walk: the one sent here (at the start), or the one that
 * arrived as `expect` left the previous place, in a frame addressed to this place (a frame
 * only bridged through it, which br_netfilter shows to its IP hooks all the same, is not).
 */
function pickPassage(all: Passage[], start: boolean, expect?: PacketHeader, ownMacs?: Set<string>, used: Set<string> = new Set(), netns = ''): Passage {
  // Each passage is walked once: a packet may cross a namespace twice (a NodePort of another node,
  // DNATed back to a pod here), and a retransmitted SYN is walked after the first (`used` keeps both walks' passages).
  const free = all.map((p, i) => ({ p, key: `${netns}#${i}` })).filter((x) => !used.has(x.key));
  const take = (x: { p: Passage; key: string } | undefined): Passage => {
    if (x) used.add(x.key);
    return x?.p ?? { events: [] };
  };
  if (start) return take(free.find((x) => x.p.sent) ?? (used.size ? undefined : free[0]));
  const arrived = free.filter(({ p }) => p.arrived && (!p.arrived.etherDaddr || !ownMacs || ownMacs.has(p.arrived.etherDaddr.toLowerCase())));
  return take(arrived.find(({ p }) => p.arrived!.saddr === expect?.saddr && p.arrived!.daddr === expect?.daddr) ?? arrived[0]);
}

/** The netfilter steps of a passage as hops, and the rule that ended the packet, if one did. */
function netfilterHops(label: string, pass: Passage, snap: Snapshot | undefined, legacyMarked: boolean): { hops: Hop[]; stop?: { verdict: 'rejected' | 'dropped'; hop: Hop; seen?: PacketHeader } } {
  const hops: Hop[] = [];
  // The packet as each nft trace id last showed it (a base chain's `packet:` line): what the dropping chain saw.
  const seen = new Map<string, PacketHeader>();
  for (const e of pass.events) {
    if (e.source === 'nft' && e.type === 'packet' && e.packet) seen.set(e.packetKey, e.packet);
    // The trace's own chains and jumps are not the cluster's path.
    if (isTraceTable(e.table) || (legacyMarked && ownTraceEvent(e))) continue;
    if (e.source === 'nft') {
      if (e.type === 'rule') {
        const hop: Hop = { netns: label, kind: 'netfilter', detail: `${e.hook} ${e.table} ${e.chain}`, rule: e.rule, verdict: e.verdict, netfilter: nftRuleRef(e, snap) };
        hops.push(hop);
        if (/\breject\b/.test(e.rule ?? '')) return { hops, stop: { verdict: 'rejected', hop, seen: seen.get(e.packetKey) } };
        if (e.verdict === 'drop') return { hops, stop: { verdict: 'dropped', hop, seen: seen.get(e.packetKey) } };
      } else if ((e.type === 'policy' || e.type === 'verdict') && e.verdict === 'drop') {
        const hop: Hop = { netns: label, kind: 'netfilter', detail: `${e.hook} ${e.table} ${e.chain}`, rule: `${e.type} drop`, verdict: 'drop', netfilter: { source: 'nft', table: e.table, chain: e.chain, hook: e.hook } };
        hops.push(hop);
        return { hops, stop: { verdict: 'dropped', hop } };
      }
      continue;
    }
    const table = snap?.iptables.get(e.table);
    if (e.type === 'rule') {
      const listed = table?.rules.get(e.chain)?.[(e.ruleNumber ?? 0) - 1];
      const rule = listed?.text ?? `${e.chain} rule ${e.ruleNumber}`;
      const target = / -j (\S+)/.exec(rule)?.[1];
      const ref: HopRule = { source: 'iptables', table: e.table, chain: e.chain, hook: e.hook, ...(e.ruleNumber !== undefined ? { number: e.ruleNumber } : {}), ...(listed?.comment !== undefined ? { comment: listed.comment } : {}) };
      const to = / --to-destination (\S+)/.exec(rule)?.[1];
      const hop: Hop = { netns: label, kind: 'netfilter', detail: `${e.hook} ${e.table} ${e.chain}`, rule, verdict: target, netfilter: ref, ...(target === 'DNAT' && to ? withNat([{ kind: 'destination', to }]) : {}) };
      hops.push(hop);
      if (target === 'REJECT') return { hops, stop: { verdict: 'rejected', hop, seen: e.packet } };
      if (target === 'DROP') return { hops, stop: { verdict: 'dropped', hop, seen: e.packet } };
    } else if (e.type === 'policy' && table?.policies.get(e.chain) === 'DROP') {
      const hop: Hop = { netns: label, kind: 'netfilter', detail: `${e.hook} ${e.table} ${e.chain}`, rule: `policy DROP (-P ${e.chain} DROP)`, verdict: 'DROP', netfilter: { source: 'iptables', table: e.table, chain: e.chain, hook: e.hook } };
      hops.push(hop);
      return { hops, stop: { verdict: 'dropped', hop } };
    }
  }
  return { hops };
}

/** The conntrack entry of the probe in a namespace, as a hop saying what NAT did. */
export function conntrackHop(label: string, snap: Snapshot | undefined, probe: Probe): Hop | undefined {
  const flow = snap?.conntrack.find((f) => [f.original, f.reply].some((t) => t.sport === probe.sport || (probe.protocol === 'icmp' && t.id === probe.sport)));
  if (!flow) return undefined;
  const text = (t: ConntrackTuple) => ({ src: t.src, dst: t.dst, sport: t.sport === undefined ? undefined : String(t.sport), dport: t.dport === undefined ? undefined : String(t.dport) });
  const orig = text(flow.original);
  const reply = text(flow.reply);
  const state = flow.state;
  const at = (ip: string, port?: string) => (port ? `${ip}:${port}` : ip);
  const nat: Translation[] = [];
  if (reply.src !== orig.dst || reply.sport !== orig.dport) nat.push({ kind: 'DNAT', from: at(orig.dst, orig.dport), to: at(reply.src, reply.sport) });
  if (reply.dst !== orig.src || reply.dport !== orig.sport) nat.push({ kind: 'SNAT', from: at(orig.src, orig.sport), to: at(reply.dst, reply.dport) });
  const flags = flow.flags.join(' ');
  return {
    netns: label,
    kind: 'conntrack',
    detail: `${flow.protocol} entry ${at(orig.src, orig.sport)} → ${at(orig.dst, orig.dport)}, reply expected from ${at(reply.src, reply.sport)}${state ? `; now ${state}` : ''}${flags ? ` [${flags}]` : ''}`,
    ...withNat(nat),
    conntrack: { protocol: flow.protocol, ...(state ? { state } : {}), flags: flow.flags, original: tupleOf(flow.original), reply: tupleOf(flow.reply) },
  };
}

function tupleOf(t: ConntrackTuple): HopConntrack['original'] {
  return { src: t.src, dst: t.dst, ...(t.sport !== undefined ? { sport: t.sport } : {}), ...(t.dport !== undefined ? { dport: t.dport } : {}) };
}

/** Where an nft rule a packet matched sits: its comment from its text, its handle from the listing read after the probes (matched by text). */
function nftRuleRef(e: TraceEvent & { hook?: string }, snap: Snapshot | undefined): HopRule {
  const text = (e.rule ?? '').replace(/(^| )counter packets \d+ bytes \d+/, '$1counter').trim();
  const comment = / comment "((?:[^"\\]|\\.)*)"$/.exec(text)?.[1];
  const handle = snap?.nft?.find((t) => t.name === e.table)?.chains.find((c) => c.name === e.chain)?.rules.find((r) => r.text === text)?.handle;
  return { source: 'nft', table: e.table, chain: e.chain, ...(e.hook ? { hook: e.hook } : {}), ...(handle !== undefined ? { handle } : {}), ...(comment !== undefined ? { comment } : {}) };
}

function macOwner(obs: Observation, mac: string): { place: Place; dev: string } | undefined {
  for (const place of obs.places) {
    const link = obs.snapshots.get(place.netns)?.links.find((l) => l.address?.toLowerCase() === mac.toLowerCase() && l.linkinfo?.info_slave_kind !== 'bridge');
    if (link) return { place, dev: link.ifname };
  }
  return undefined;
}

function ipOwner(obs: Observation, ip: string): { place: Place; dev: string; mac: string } | undefined {
  for (const place of obs.places) {
    const link = obs.snapshots.get(place.netns)?.links.find((l) => l.addr_info?.some((a) => a.family === 'inet' && a.local === ip));
    if (link) return { place, dev: link.ifname, mac: link.address };
  }
  return undefined;
}

/** The L2 step from `place` out of `dev` to the next hop `ip`: the neighbour entry used, and the bridge's FDB decision. */
function l2Out(obs: Observation, fabric: Fabric, place: Place, dev: string, ip: string): { hops: Hop[]; mac?: string; problem?: string } {
  const label = placeLabel(place);
  const snap = obs.snapshots.get(place.netns);
  const neigh = snap?.neighbours.find((n) => n.dst === ip && n.dev === dev);
  const hops: Hop[] = [];
  const state = neigh?.state?.join(',') ?? 'none';
  if (!neigh?.lladdr) {
    const detail = `ARP ${ip} on ${dev}: ${neigh ? state : 'no entry'}`;
    hops.push({ netns: label, kind: 'l2', out: dev, detail });
    return { hops, problem: `no ARP answer for ${ip} on ${dev} (neighbour ${neigh ? state : 'missing'})` };
  }
  hops.push({ netns: label, kind: 'l2', out: dev, detail: `ARP ${ip} is at ${neigh.lladdr} (${state})` });
  const wrapped = fabric.tunnel?.(place, dev, neigh.lladdr);
  if (wrapped) hops.push({ netns: label, kind: 'l2', out: dev, detail: wrapped });
  const seg = fabric.segment(place, dev);
  if (seg) {
    const bridgeSnap = obs.snapshots.get(seg.place.netns);
    const own = bridgeSnap?.links.find((l) => l.ifname === seg.bridge)?.address;
    const entry = bridgeSnap?.fdb.get(seg.bridge)?.find((f) => f.mac.toLowerCase() === neigh.lladdr!.toLowerCase() && f.ifname !== seg.bridge);
    const detail =
      own?.toLowerCase() === neigh.lladdr.toLowerCase()
        ? `bridge ${seg.bridge}: ${neigh.lladdr} is the bridge's own address: up to ${placeLabel(seg.place)}'s IP stack`
        : entry
          ? `bridge ${seg.bridge}: FDB ${neigh.lladdr} → port ${entry.ifname}${entry.state === 'permanent' || entry.flags?.includes('permanent') ? ' (permanent)' : entry.state === 'static' ? ' (static)' : ' (learned)'}`
          : `bridge ${seg.bridge}: no FDB entry for ${neigh.lladdr}: flooded to every port`;
    hops.push({ netns: placeLabel(seg.place), kind: 'l2', detail });
  }
  const owner = ipOwner(obs, ip);
  if (owner && owner.mac.toLowerCase() !== neigh.lladdr.toLowerCase()) {
    const holder = macOwner(obs, neigh.lladdr);
    return { hops, mac: neigh.lladdr, problem: `the neighbour entry for ${ip} on ${dev} says ${neigh.lladdr}, but ${ip} is at ${owner.mac} (${placeLabel(owner.place)} ${owner.dev})${holder ? `; ${neigh.lladdr} is ${placeLabel(holder.place)} ${holder.dev}, which drops a frame for an address not its own` : ': no device has that address, the frame reached nobody'}` };
  }
  return { hops, mac: neigh.lladdr };
}

/** Walks one direction of the probe from `start`; `target` (the reply's) ends it when the packet is delivered there. */
async function walk(obs: Observation, fabric: Fabric, lookups: Lookups, probe: Probe, dir: 'request' | 'reply', start: Place, fromIP: string | undefined, used: Set<string> = new Set()): Promise<Leg & { at?: Place; delivered?: PacketHeader }> {
  const hops: Hop[] = [];
  let place = start;
  let prev: { place: Place; dev: string; ip: string; left: PacketHeader; problem?: string } | undefined;
  for (let step = 0; step < 16; step++) {
    const label = placeLabel(place);
    const snap = obs.snapshots.get(place.netns);
    const ownMacs = new Set((snap?.links ?? []).map((l) => l.address?.toLowerCase()).filter((m): m is string => Boolean(m)));
    const pass = pickPassage(passages(obs.events.get(place.netns) ?? [], snap, probe, dir, fromIP, obs.session.table), step === 0, prev?.left, ownMacs, used, place.netns);
    const entered = step === 0 ? (pass.sent ?? pass.arrived) : pass.arrived;
    if (!entered) {
      if (step === 0) {
        const r = await lookups.route(place.netns, probe.dst);
        hops.push({ netns: label, kind: 'l3', detail: r.error ? `route to ${probe.dst}: ${r.error}` : `route ${describeRoute(r.route!)}` });
        return { verdict: 'dropped', reason: r.error ? `${label} has no route to ${probe.dst} (${r.error})` : `the probe never left ${label}`, hops };
      }
      const why = prev?.problem ?? `the packet left ${placeLabel(prev!.place)} by ${prev!.dev} towards ${prev!.ip} but never reached ${label}`;
      return { verdict: 'dropped', reason: `dropped between ${placeLabel(prev!.place)} and ${label}: ${why}`, hops };
    }
    if (step > 0) hops.push({ netns: label, kind: 'l2', in: entered.iif, detail: `arrived on ${entered.iif ?? '?'}${entered.etherDaddr ? ` (frame to ${entered.etherDaddr})` : ''}: ${entered.saddr} → ${entered.daddr}${portOf(entered)}` });
    const nf = netfilterHops(label, pass, snap, obs.marking === 'iptables');
    hops.push(...nf.hops);
    const ct = conntrackHop(label, snap, probe);
    if (ct && dir === 'request') hops.push(ct);
    if (nf.stop) {
      const why = nf.stop.verdict === 'rejected' ? 'rejected' : 'dropped';
      const rule = nf.stop.hop.rule ?? '';
      const none = /"([^"]+) has no endpoints"/.exec(rule)?.[1];
      const noLocal = /"([^"]+) has no local endpoints"/.exec(rule)?.[1];
      const because = none ? ` (Service ${none} has no endpoints)` : noLocal ? ` (externalTrafficPolicy Local: Service ${noLocal} has no endpoint on this node)` : '';
      const reason = fabric.dropReason?.(place, rule, entered, nf.stop.seen) ?? `${why} on ${label} by ${nf.stop.hop.detail}: ${rule}${because}`;
      nf.stop.hop.cause = reason;
      return { verdict: nf.stop.verdict, reason, hops };
    }
    // IPVS takes a packet for a virtual server at INPUT and sends it on to a real server.
    const ipvs = pass.local && pass.left && (pass.left.daddr !== pass.local.daddr || pass.left.dport !== pass.local.dport);
    if (ipvs) hops.push(ipvsHop(label, snap, probe, pass.local!, pass.left!));
    // (A reply to the node's own socket on a VIP's address, the source it chose for a ClusterIP of its own, is no new connection for IPVS.)
    const vip = dir === 'request' && pass.local && !ipvs && snap?.links.find((l) => l.ifname === 'kube-ipvs0')?.addr_info?.some((a) => a.local === pass.local!.daddr);
    if (vip && pass.local!.protocol !== 'icmp') {
      const pkt = pass.local!;
      const reason = `rejected on ${label} by IPVS: the virtual server ${pkt.daddr}:${pkt.dport} has no real server (the Service has no ready endpoints), so IPVS answered port unreachable`;
      hops.push({ netns: label, kind: 'ipvs', detail: `IPVS virtual server ${pkt.daddr}:${pkt.dport} took no real server for it`, cause: reason });
      return { verdict: 'rejected', reason, hops };
    }
    if (pass.local && !ipvs) {
      const pkt = pass.local;
      if (probe.protocol === 'icmp' || pkt.protocol === 'icmp') {
        hops.push({ netns: label, kind: 'socket', detail: `the kernel of ${label} takes the ${pkt.icmpType ?? 'ICMP'} for ${pkt.daddr}` });
        return { verdict: 'delivered', reason: `delivered to ${label} (${pkt.daddr})`, hops, at: place, delivered: pkt };
      }
      if (dir === 'reply') {
        hops.push({ netns: label, kind: 'socket', detail: `the sender's socket on ${pkt.daddr}:${pkt.dport} gets the ${replyKind(pkt)}` });
        return { verdict: 'delivered', reason: `the ${replyKind(pkt)} reached the sender in ${label}`, hops, at: place, delivered: pkt };
      }
      const listening = await lookups.listeners(place.netns, pkt.protocol as 'tcp' | 'udp', pkt.dport!);
      if (!listening.length) {
        hops.push({ netns: label, kind: 'socket', detail: `nothing listens on ${pkt.protocol} port ${pkt.dport} in ${label}` });
        return { verdict: 'dropped', reason: `no listener: the packet reached ${label} (${pkt.daddr}:${pkt.dport}), but nothing listens on ${pkt.protocol} port ${pkt.dport}${pkt.protocol === 'tcp' ? ', so its kernel answered with a reset' : ''}`, hops, at: place, delivered: pkt };
      }
      hops.push({ netns: label, kind: 'socket', detail: `${pkt.protocol} ${pkt.daddr}:${pkt.dport}: ${listening.join(', ')} listens` });
      return { verdict: 'delivered', reason: `delivered to ${label} at ${pkt.daddr}:${pkt.dport}, where ${listening.join(', ')} listens`, hops, at: place, delivered: pkt };
    }
    const left = pass.left;
    if (!left) {
      // Arrived (or sent) but neither delivered nor sent on: the routing decision refused it.
      const pkt = pass.forwarded ?? entered;
      const r = await lookups.route(place.netns, pkt.daddr!, step > 0 ? pkt.saddr : undefined, step > 0 ? entered.iif : undefined);
      hops.push({ netns: label, kind: 'l3', in: entered.iif, detail: r.error ? `route to ${pkt.daddr} from ${pkt.saddr}${entered.iif ? ` in on ${entered.iif}` : ''}: ${r.error}` : `route ${describeRoute(r.route!)}` });
      if (r.error) {
        const rp = /cross-device/i.test(r.error);
        return { verdict: 'dropped', reason: rp ? `dropped on ${label} by rp_filter: the way back to ${pkt.saddr} is not through ${entered.iif}` : `${label} has no route to ${pkt.daddr} (${r.error})`, hops };
      }
      return { verdict: 'dropped', reason: `dropped on ${label} after routing (by ${r.route?.type ?? 'a'} route ${describeRoute(r.route!)})`, hops };
    }
    const routed = step > 0 && !ipvs; // a forwarded packet's lookup has its way in; the host's own (and IPVS's) has none
    const r = await lookups.route(place.netns, left.daddr!, routed ? (pass.forwarded ?? entered).saddr : undefined, routed ? entered.iif : undefined);
    const nextHop = r.route?.gateway ?? left.daddr!;
    hops.push({ netns: label, kind: 'l3', in: step > 0 ? entered.iif : undefined, out: left.oif, detail: r.route ? `route ${describeRoute(r.route)}: next hop ${nextHop}` : `route to ${left.daddr}: ${r.error}`, ...natBetween(entered, left) });
    const l2 = l2Out(obs, fabric, place, left.oif!, nextHop);
    hops.push(...l2.hops);
    // The frame goes where its MAC leads: usually the next hop's own namespace, but through a
    // VPC (proxy ARP) or to a point-to-point gateway, the namespace that routes it on.
    const owner = (l2.mac ? macOwner(obs, l2.mac) : undefined) ?? ipOwner(obs, nextHop);
    // A frame only bridged through the segment's namespace (the VPC) may be dropped there, by the bridge's own rules.
    const seg = fabric.segment(place, left.oif!);
    const bridged = seg && seg.place.netns !== owner?.place.netns ? bridgedDrop(obs, fabric, seg.place, probe, dir, fromIP, left) : undefined;
    if (bridged) return { verdict: 'dropped', reason: bridged.reason, hops: [...hops, ...bridged.hops] };
    if (!owner) return { verdict: 'dropped', reason: l2.problem ? `dropped on ${label}: ${l2.problem}: ${nextHop} is no namespace of the cluster` : `${label} sent it to ${nextHop} on ${left.oif}, which is no namespace of the cluster`, hops };
    prev = { place, dev: left.oif!, ip: nextHop, left, ...(l2.problem ? { problem: l2.problem } : {}) };
    place = owner.place;
  }
  return { verdict: 'dropped', reason: 'the walk went through more than 16 namespaces', hops };
}

/** The drop of a frame on its way through a bridge's namespace (not routed there): its rule as hops, and why. */
function bridgedDrop(obs: Observation, fabric: Fabric, at: Place, probe: Probe, dir: 'request' | 'reply', fromIP: string | undefined, left: PacketHeader): { hops: Hop[]; reason: string } | undefined {
  const snap = obs.snapshots.get(at.netns);
  const label = placeLabel(at);
  for (const pass of passages(obs.events.get(at.netns) ?? [], snap, probe, dir, fromIP, obs.session.table)) {
    const seen = pass.arrived;
    if (!seen || seen.saddr !== left.saddr || seen.daddr !== left.daddr) continue;
    const nf = netfilterHops(label, pass, snap, obs.marking === 'iptables');
    if (!nf.stop) continue;
    const rule = nf.stop.hop.rule ?? '';
    const frame = seen.etherSaddr ? ` (frame from ${seen.etherSaddr})` : '';
    nf.stop.hop.cause = fabric.dropReason?.(at, rule, seen) ?? `${nf.stop.verdict} on ${label} by ${nf.stop.hop.detail}: ${rule}`;
    return {
      hops: [{ netns: label, kind: 'l2', ...(seen.iif ? { in: seen.iif } : {}), detail: `bridged${frame}: ${seen.saddr} → ${seen.daddr}${portOf(seen)}` }, ...nf.hops],
      reason: nf.stop.hop.cause,
    };
  }
  return undefined;
}

/** IPVS's choice for the probe: its connection entry (`ipvsadm -Lnc`), or what the packet shows. */
export function ipvsHop(label: string, snap: Snapshot | undefined, probe: Probe, local: PacketHeader, left: PacketHeader): Hop {
  const conn = snap?.ipvs.find((c) => c.source.endsWith(`:${probe.sport}`));
  const [state, virtual, real] = conn ? [conn.state, conn.virtual, conn.destination] : [];
  const v = virtual ?? `${local.daddr}:${local.dport}`;
  const r = real ?? `${left.daddr}:${left.dport}`;
  return { netns: label, kind: 'ipvs', detail: `IPVS virtual server ${v} → real server ${r}${state ? ` (connection ${state})` : ''}`, ...withNat([{ kind: 'destination', from: v, to: r }]) };
}

/** What NAT changed between a packet's arrival in a namespace and its leaving. */
function natBetween(a: PacketHeader, b: PacketHeader): { nat?: Translation[]; translation?: string } {
  const changes: Translation[] = [];
  const at = (ip: string | undefined, port: number | undefined) => `${ip}${port ? `:${port}` : ''}`;
  if (a.saddr !== b.saddr || a.sport !== b.sport) changes.push({ kind: 'source', from: at(a.saddr, a.sport), to: at(b.saddr, b.sport) });
  if (a.daddr !== b.daddr || a.dport !== b.dport) changes.push({ kind: 'destination', from: at(a.daddr, a.dport), to: at(b.daddr, b.dport) });
  return withNat(changes);
}

function portOf(h: PacketHeader): string {
  return h.dport !== undefined ? ` (${h.protocol} ${h.sport} → ${h.dport})` : h.icmpType ? ` (icmp ${h.icmpType})` : '';
}

function replyKind(h: PacketHeader): string {
  if (h.protocol === 'icmp') return `ICMP ${h.icmpType}`;
  if (h.flags?.includes('rst')) return 'reset';
  if (h.flags?.includes('syn')) return 'SYN-ACK';
  return `${h.protocol} reply`;
}

function describeRoute(r: { dst: string; gateway?: string; dev?: string; type?: string; table?: string }): string {
  return `${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.table && r.table !== 'main' ? ` table ${r.table}` : ''}`;
}

/** The probe's trace: its request walked from the sender, its reply from where it was answered. */
export async function explain(obs: Observation, index: number, fabric: Fabric, lookups: Lookups, podOfPlace: (p: Place) => string | undefined = () => undefined): Promise<Trace> {
  const { probe: sent, fate, said } = obs.probes[index]!;
  // Followed through a masquerade's new source port.
  const aliases = natAliases(obs, sent);
  const probe: Probe = aliases.length ? { ...sent, aliases } : sent;
  const fromPass = pickPassage(passages(obs.events.get(probe.from.netns) ?? [], obs.snapshots.get(probe.from.netns), probe, 'request', undefined, obs.session.table), true);
  // nft shows no ICMP error's quoted packet: one is taken as this probe's answer only when no other probe from the same sender was refused.
  const refused = (f: Fate) => f === 'refused' || f === 'unreachable';
  const alone = refused(fate) && obs.probes.filter((p) => p.probe.from.netns === probe.from.netns && refused(p.fate)).length === 1;
  const fromIP = alone ? (fromPass.sent ?? fromPass.left)?.saddr : undefined;
  const walked = new Set<string>();
  let request = await walk(obs, fabric, lookups, probe, 'request', probe.from, fromIP, walked);
  // The first SYN lost, and the sender connected all the same: its retransmission went through
  // (the first's conntrack entry died with it, so the retransmission was NATed anew, perhaps to
  // another endpoint). Both are the kernel's story: the first, then the one that made the connection.
  if (request.verdict !== 'delivered' && fate === 'connected' && probe.protocol === 'tcp') {
    const again = await walk(obs, fabric, lookups, probe, 'request', probe.from, fromIP, walked);
    if (again.verdict === 'delivered' && again.hops.length) {
      const resent: Hop = { netns: placeLabel(probe.from), kind: 'socket', detail: `the sender's TCP sends the SYN again (its first retransmission, 1 s later): the first was ${request.verdict}` };
      request = { ...again, hops: [...request.hops, resent, ...again.hops], reason: `${again.reason} (by the retransmitted SYN; the first was ${request.reason})` };
    }
  }
  const trace: Trace = {
    probe: { from: placeLabel(probe.from), protocol: probe.protocol, dst: probe.dst, ...(probe.dport !== undefined ? { dport: probe.dport } : {}), sport: probe.sport, ...(probe.http ? { http: probe.http } : {}) },
    fate,
    verdict: request.verdict,
    reason: request.reason,
    hops: request.hops,
  };
  // Through the ingress: the controller's choice, then the second leg (its connection to the endpoint), walked the same way.
  let upstream: { probe: Probe; from: Place } | undefined;
  if (probe.http && request.verdict === 'delivered' && request.at) {
    const hop = ingressHop(placeLabel(request.at), probe, said);
    trace.hops.push(hop.hop);
    if (!hop.endpoint) {
      request = { ...request, verdict: hop.verdict ?? 'rejected', reason: `${request.reason}; ${hop.reason}` };
    } else {
      // Each attempt left from its own port (the first from the upstream port, a retry from the next): the failed ones, then the last.
      const legOf = (ep: { ip: string; port: number }, i: number): Probe => {
        const direct: Probe = { from: request.at!, protocol: 'tcp', dst: ep.ip, dport: ep.port, sport: probe.upstreamPort! + i };
        const legAliases = natAliases(obs, direct);
        return legAliases.length ? { ...direct, aliases: legAliases } : direct;
      };
      const failed: string[] = [];
      for (const [i, ep] of hop.tried.entries()) {
        const attempt = await walk(obs, fabric, lookups, legOf(ep, i), 'request', request.at, undefined);
        trace.hops.push(...attempt.hops);
        const why = attempt.verdict === 'delivered' ? 'it failed after connecting' : attempt.reason;
        trace.hops.push({ netns: placeLabel(request.at), kind: 'ingress', detail: `attempt ${i + 1} to ${ep.ip}:${ep.port} (from port ${probe.upstreamPort! + i}) failed: ${why}; the controller tries another endpoint` });
        failed.push(`attempt ${i + 1} to ${ep.ip}:${ep.port} failed (${why})`);
      }
      const leg = legOf(hop.endpoint, hop.tried.length);
      const second = await walk(obs, fabric, lookups, leg, 'request', request.at, undefined);
      trace.hops.push(...second.hops);
      upstream = { probe: leg, from: request.at };
      request = { ...second, reason: `${hop.reason}${failed.length ? ` after ${failed.join('; ')}` : ''}; ${second.reason}` };
      // Every attempt failed: the client has the controller's 502 or 504, its rejection.
      if (second.verdict !== 'delivered' && hop.status !== undefined && hop.status >= 500) {
        request = { ...second, verdict: 'rejected', reason: `the ingress controller on ${placeLabel(request.at!)} answered ${hop.status}: ${[...failed, `attempt ${failed.length + 1} to ${hop.endpoint.ip}:${hop.endpoint.port} failed (${second.reason})`].join('; ')}` };
      }
    }
    trace.verdict = request.verdict;
    trace.reason = request.reason;
  }
  if (request.at && request.delivered) {
    const pod = podOfPlace(request.at);
    trace.destination = { ...(pod ? { pod } : { node: placeLabel(request.at) }), ip: request.delivered.daddr!, ...(request.delivered.dport !== undefined ? { port: request.delivered.dport } : {}) };
    const proc = request.hops.at(-1)?.detail.match(/: (.*) listens$/)?.[1];
    if (proc && request.verdict === 'delivered') trace.destination.process = proc;
  }
  // The reply starts where a packet of the reply was sent by the kernel (the output hook).
  const replyOf = async (p: Probe, at: Place | undefined, ip: string | undefined): Promise<Leg | undefined> => {
    const answers = (x: Place) => passages(obs.events.get(x.netns) ?? [], obs.snapshots.get(x.netns), p, 'reply', ip, obs.session.table).some((y) => y.sent);
    const answerer = at && answers(at) ? at : obs.places.find(answers);
    return answerer ? walk(obs, fabric, lookups, p, 'reply', answerer, ip) : undefined;
  };
  const first = await replyOf(probe, upstream?.from ?? request.at, fromIP);
  const second = upstream ? await replyOf(upstream.probe, request.at, undefined) : undefined;
  // Through the ingress the endpoint's answer comes first, then the controller's to the client.
  const legs = [second, first].filter((l): l is Leg => l !== undefined);
  if (legs.length) {
    const lost = legs.find((l) => l.verdict !== 'delivered');
    trace.reply = { verdict: lost?.verdict ?? 'delivered', reason: lost?.reason ?? legs.at(-1)!.reason, hops: legs.flatMap((l) => l.hops) };
  }
  // A request delivered whose answer was lost is, for the sender, lost all the same.
  if (trace.verdict === 'delivered' && trace.reply && trace.reply.verdict !== 'delivered') {
    trace.verdict = 'dropped';
    trace.reason = `${request.reason}; but its reply was lost: ${trace.reply.reason}`;
  }
  // The walk says what the kernel reported; the sender's view is beside it, and a disagreement is said, not hidden.
  const saw = { connected: 'delivered', answered: 'delivered', refused: 'refused', unreachable: 'refused', timeout: 'silent', sent: undefined }[fate];
  if (!probe.http && (saw === 'delivered' ? trace.verdict !== 'delivered' : saw !== undefined && trace.verdict === 'delivered' && probe.protocol === 'tcp')) {
    trace.reason += ` (but the sender saw ${fate})`;
  }
  return trace;
}

/** The ingress controller's part, from the traced response's head: the status, and the rule and endpoint it chose, or why it answered itself (X-Kubewire-Trace-Route). */
export function ingressHop(where: string, probe: Probe, said: string): { hop: Hop; reason: string; status?: number; endpoint?: { ip: string; port: number }; tried: Array<{ ip: string; port: number }>; verdict?: 'answered' | 'rejected' } {
  const status = /^HTTP\/[\d.]+ (\d{3})/m.exec(said)?.[1];
  const route = /^x-kubewire-trace-route: *(.*?)\r?$/im.exec(said)?.[1];
  const target = route ? / -> endpoint (\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(route) : null;
  const own = route ? / ?(?:-> )?answered (\d{3}): (.*)$/.exec(route) : null;
  // Endpoints tried before the last (a retry), each from the next trace port.
  const tried = [...(/ -> tried ([^>]*) -> endpoint /.exec(route ?? '')?.[1] ?? '').matchAll(/(\d+\.\d+\.\d+\.\d+):(\d+)/g)].map((m) => ({ ip: m[1]!, port: Number(m[2]) }));
  const verify = new RegExp(`^${TLS_VERIFY}: (\\d+)`, 'm').exec(said)?.[1];
  const http = probe.http!;
  const request = `${http.tls ? 'HTTPS' : 'HTTP'} GET ${http.host}${http.path}`;
  const tls = http.tls ? `TLS with SNI ${http.host}, certificate ${verify === undefined ? 'not seen' : verify === '0' ? 'trusted' : `not trusted (X509 verify result ${verify}), not checked`}; ` : '';
  const rule = route?.replace(/ -> tried .*$/, '').replace(/ -> endpoint .*$/, '').replace(/ ?(?:-> )?answered \d{3}: .*$/, '');
  const detail = target ? `${tls}${request} answered ${status ?? '?'}: endpoint ${target[1]}:${target[2]} chosen` : `${tls}${request}: ${status ? `the controller answered ${status} itself${own ? `: ${own[2]}` : ''}` : 'no HTTP answer'}`;
  const hop: Hop = { netns: where, kind: 'ingress', detail, ...(rule ? { rule } : {}), ...(target ? withNat([{ kind: 'connection', to: `${target[1]}:${target[2]}`, sourcePort: probe.upstreamPort! + tried.length }]) : {}) };
  if (!target) {
    // The controller's own words when it gave them; the status's usual cause otherwise (a controller without them).
    const why = own?.[2] ?? (status === '404' ? `no Ingress rule matches ${http.host}${http.path}` : status === '503' ? 'the backend Service has no ready endpoints' : status ? `the controller answered ${status}` : 'no HTTP answer came back');
    const answered = status !== undefined && Number(status) < 400;
    return { hop, reason: `the ingress controller on ${where} answered ${status ?? 'nothing'} itself: ${why}`, tried, verdict: answered ? 'answered' : 'rejected' };
  }
  return { hop, reason: `the ingress controller on ${where} matched ${rule} and chose endpoint ${target[1]}:${target[2]}${status && status !== '200' ? ` (status ${status})` : ''}`, endpoint: { ip: target[1]!, port: Number(target[2]) }, tried, ...(status ? { status: Number(status) } : {}) };
}
