// Sends probes and watches them on the real kernel: in every namespace a probe may cross, a
// table of trace chains marks the probes' packets (`meta nftrace set 1`, matched on the
// session's source ports, which NAT keeps) and observes them at every hook; the port's trace
// readers report the nf_tables chains they pass and the iptables-legacy rules (x_tables logs
// TRACE lines to nflog for packets nft marked). Afterwards each namespace's links,
// neighbours, bridge FDBs and the probes' conntrack entries are read, then everything the
// session added is removed: the trace table, its conntrack entries, the observers.

import type { ConntrackFlow, Dataplane, IptablesRuleState, IptablesTable, FdbEntry, FileLock, IpvsConnection, LinkInfo, NeighbourInfo, NftTableState, TraceWatch } from '../dataplane/port.ts';
import { Sessions, TRACE_PORTS, type SessionRecord } from './sessions.ts';
import { baseChains, tableRules, type Hook, type TraceEvent } from './events.ts';

/** A namespace of the cluster and what it is in the seed's words. */
export interface Place {
  kind: 'pod' | 'node' | 'network' | 'external';
  /** namespace/name for a pod, the node's name, "network", "external". */
  name: string;
  /** The namespace's path. */
  netns: string;
  /** A pod's node. */
  node?: string;
}

import type { Protocol } from './input.ts';

export type { Protocol } from './input.ts';

export interface ProbeSpec {
  from: Place;
  protocol: Protocol;
  dst: string;
  /** tcp and udp. */
  dport?: number;
  /** An HTTP request through the ingress controller at dst:dport: its Host and path; over TLS (with SNI) for an https:// URL. */
  http?: { host: string; path: string; tls?: boolean };
}

/** A probe as sent: its identity is its source port (tcp, udp) or echo identifier (icmp). */
export interface Probe extends ProbeSpec {
  sport: number;
  /** HTTP: the port the ingress controller opens its upstream connection from (the second leg's identity). */
  upstreamPort?: number;
  /** Source addresses and ports a NAT gave it on its way (found afterwards, in conntrack). */
  aliases?: Array<{ addr: string; port: number }>;
}

import type { Fate } from './types.ts';

export type { Fate } from './types.ts';

/** One namespace after the probes: what it holds, as the kernel lists it. */
export interface Snapshot {
  links: LinkInfo[];
  neighbours: NeighbourInfo[];
  /** bridge name → its forwarding database. */
  fdb: Map<string, FdbEntry[]>;
  /** The probes' conntrack entries. */
  conntrack: ConntrackFlow[];
  /** iptables-legacy: table → chain → rules, and the built-in chains' policies, for the tables TRACE named. */
  iptables: Map<string, { rules: Map<string, IptablesRuleState[]>; policies: Map<string, string> }>;
  /** nf_tables base chains ("table/chain") → hook and priority. */
  nftChains: Map<string, { hook: Hook; priority: number }>;
  /** The nftables tables as read with those (their rules' handles), where the packets passed any but the trace's. */
  nft?: NftTableState[];
  /** IPVS connections, where the namespace has kube-ipvs0. */
  ipvs: IpvsConnection[];
}

export interface Observation {
  probes: Array<{ probe: Probe; fate: Fate; said: string }>;
  /** How the probes' packets were marked and observed. */
  marking: Marking;
  /** netns path → every trace event seen there, nft's and iptables' (each source in its order). */
  events: Map<string, TraceEvent[]>;
  snapshots: Map<string, Snapshot>;
  places: Place[];
  /** The session's names (its own trace table, among any other session's). */
  session: Session;
}

/** Every session's trace table starts with this name; a session's own is `kubewire-trace-<first port>`. */
export const TRACE_TABLE = 'kubewire-trace';
/**
 * The conntrack marks of the probes' connections: "kw" in the high half, the session in the low
 * half (its first port's offset in the trace range), by which a session lists and deletes its
 * own entries and a sweep finds any session's (`-m 0x6b770000/0xffff0000`).
 */
export const TRACE_CT_MARK = '0x6b770000';
export const TRACE_CT_MASK = '0xffff0000';

/**
 * One trace session's names, all derived from its first port, so that sessions running at once
 * (the CLI's, the page's) never share one: its nft table, its iptables chains, its conntrack mark.
 */
export interface Session {
  lo: number;
  hi: number;
  table: string;
  chain: string;
  ctChain: string;
  ctMark: string;
}

export function session(lo: number, hi: number): Session {
  return { lo, hi, table: `${TRACE_TABLE}-${lo}`, chain: `${LEGACY_TRACE_CHAIN}-${lo}`, ctChain: `${LEGACY_CT_CHAIN}-${lo}`, ctMark: `0x${(0x6b770000 + lo - TRACE_PORTS.lo).toString(16)}` };
}

/** Whether a table is a trace session's (this one's or another's running beside it). */
export function isTraceTable(table: string): boolean {
  return table === TRACE_TABLE || table.startsWith(`${TRACE_TABLE}-`);
}

/**
 * The session's trace table: chains at every hook marking and observing the probes' packets
 * (sport or dport in the range), and the packets of a masqueraded probe: the masquerade may
 * give it another source port (nftables mode's `masquerade fully-random`), which no rule can
 * know beforehand, so a SYN (or datagram, or echo) from an address that masquerades (a node's),
 * and the answers to it, are marked too; the walk keeps only the probe's, found by the
 * conntrack entry of the NAT. Conntrack entries are marked by their original tuple, which NAT keeps.
 */
export function traceTableScript(ses: Session, ct: boolean, masqueraders: string[] = []): string {
  const range = ses.lo === ses.hi ? `${ses.lo}` : `${ses.lo}-${ses.hi}`;
  const masq = masqueraders.length ? `{ ${masqueraders.join(', ')} }` : undefined;
  const mark = [
    // Only what decides a connection's fate: the SYN, and the SYN-ACK or RST that answers it.
    `tcp sport ${range} tcp flags & (syn | ack) == syn meta nftrace set 1`,
    `tcp dport ${range} tcp flags & (syn | rst) != 0 meta nftrace set 1`,
    `udp sport ${range} meta nftrace set 1`,
    `udp dport ${range} meta nftrace set 1`,
    `icmp type { echo-request, echo-reply } icmp id ${range} meta nftrace set 1`,
    `icmp type { destination-unreachable, time-exceeded } meta nftrace set 1`,
    ...(masq
      ? [
          `ip saddr ${masq} tcp flags & (syn | ack) == syn meta nftrace set 1`,
          `ip daddr ${masq} tcp flags & (syn | rst) != 0 meta nftrace set 1`,
          // Not VXLAN's outer packets (node to node, UDP 8472).
          `ip saddr ${masq} udp sport != 8472 udp dport != 8472 meta nftrace set 1`,
          `ip daddr ${masq} udp sport != 8472 udp dport != 8472 meta nftrace set 1`,
          `ip saddr ${masq} icmp type echo-request meta nftrace set 1`,
          `ip daddr ${masq} icmp type echo-reply meta nftrace set 1`,
        ]
      : []),
  ];
  // Marked where conntrack has the connection (after its -200 hooks), so that the session finds and deletes its entries.
  // Only where conntrack runs anyway (nodes): a ct expression would turn it on in a namespace.
  const ctRules = [`meta l4proto { tcp, udp, icmp } ct original proto-src ${range} ct mark set ${ses.ctMark}`];
  const chain = (name: string, hook: Hook, priority: number, rules: string[]) => [`  chain ${name} {`, `    type filter hook ${hook} priority ${priority}; policy accept;`, ...rules.map((r) => `    ${r}`), '  }'];
  return [
    `table ip ${ses.table} {`,
    ...chain('trace-prerouting', 'prerouting', -350, mark),
    ...chain('trace-output', 'output', -350, mark),
    ...chain('trace-input', 'input', 350, ct ? ctRules : []),
    ...chain('trace-forward', 'forward', 350, []),
    ...chain('trace-postrouting', 'postrouting', 350, ct ? ctRules : []),
    '}',
    '',
  ].join('\n');
}

/**
 * How long a TCP probe waits for its answer: at least 1.9 s, so that a SYN answered late on a
 * busy machine still counts (a sender killed before TCP's first retransmission, at 1 s, saw a
 * timeout where the kernel had delivered the SYN and its answer), and less than 2.9 s, before the
 * second retransmission (at 3 s). A retransmitted SYN follows the first's conntrack entry, so
 * the same NAT and path; the walk follows the first SYN (a retransmission is a passage of its own).
 */
export function synWait(timeoutSeconds: number): number {
  return Math.min(Math.max(timeoutSeconds, 1.9), 2.9);
}

/** The ingress controller's attempts at most (its TRIES): a traced request's attempts leave from its upstream port and the next ones. */
export const UPSTREAM_TRIES = 3;

/** What the HTTPS probe adds after the response's head: the certificate check's result (0: trusted; X509's codes otherwise). */
export const TLS_VERIFY = 'kubewire-tls-verify';

/** The command that sends a probe from its namespace, and how to read its end. */
export function probeCommand(p: Probe, timeoutSeconds: number): { argv: string[]; input?: string } {
  const w = String(timeoutSeconds);
  if (p.http) {
    // The response's head is what is read: its status and the ingress's X-Kubewire-Trace-Route.
    const common = ['curl', '-s', '-o', '/dev/null', '-D', '-', '--max-time', String(Math.max(4, timeoutSeconds + 2)), '--connect-timeout', String(synWait(timeoutSeconds)), '--local-port', String(p.sport), '-H', `X-Kubewire-Trace: ${p.upstreamPort}`];
    if (!p.http.tls) return { argv: [...common, '-H', `Host: ${p.http.host}`, `http://${p.dst}:${p.dport}${p.http.path}`] };
    // TLS to the controller with the name as SNI (and Host), the certificate taken whatever it is and its check reported.
    const byName = !/^\d+\.\d+\.\d+\.\d+$/.test(p.http.host);
    const url = `https://${byName ? p.http.host : p.dst}:${p.dport}${p.http.path}`;
    return { argv: [...common, '-k', '--http1.1', ...(byName ? ['--resolve', `${p.http.host}:${p.dport}:${p.dst}`] : []), '-w', `${TLS_VERIFY}: %{ssl_verify_result}\\n`, url] };
  }
  // At most one retransmitted SYN (see synWait), so that the packet traced is the one whose fate the sender reports.
  if (p.protocol === 'tcp') return { argv: ['timeout', '-s', 'KILL', String(synWait(timeoutSeconds)), 'nc', '-z', '-v', '-n', '-w', String(Math.ceil(synWait(timeoutSeconds))), '-p', String(p.sport), p.dst, String(p.dport)] };
  if (p.protocol === 'udp') return { argv: ['nc', '-u', '-n', '-q', '0', '-p', String(p.sport), p.dst, String(p.dport)], input: 'kubewire trace\n' };
  return { argv: ['ping', '-c', '1', '-n', '-W', w, '-e', String(p.sport), p.dst] };
}

export function fateOf(p: Probe, ok: boolean, said: string): Fate {
  if (p.protocol === 'udp') return 'sent';
  if (ok) return p.protocol === 'tcp' ? 'connected' : 'answered';
  if (/refused|exit code 7\b/i.test(said)) return 'refused';
  if (/unreachable|no route/i.test(said)) return 'unreachable';
  return 'timeout';
}

export interface SessionOptions {
  /** Namespaces whose iptables rules are iptables-legacy's (their TRACE lines are read from nflog). */
  legacyIptables: Set<string>;
  /** Namespaces where conntrack runs (the nodes): the probes' entries there are listed, then deleted. */
  conntrack: Set<string>;
  /** Seconds a probe waits for its answer. */
  timeoutSeconds?: number;
  /** Probes sent at once. */
  parallel?: number;
  /** The addresses a masquerade may give a probe (the nodes'): their packets are marked too. */
  masqueraders?: string[];
  /** Ends the session early (Ctrl-C): what it put in place is removed all the same. */
  signal?: AbortSignal;
  /** Where sessions record their ports (tests: a directory of their own). */
  runDir?: string;
}

/**
 * How packets are marked for tracing: `nft` (a trace table at every hook; the host's kernel),
 * or `iptables` where the kernel has no nf_tables for ip (Debian's UML kernel): a TRACE rule in
 * raw and the mangle table's chains as the observation points, everything read from nflog.
 */
export type Marking = 'nft' | 'iptables';

export const LEGACY_TRACE_CHAIN = 'KUBEWIRE-TRACE';
export const LEGACY_CT_CHAIN = 'KUBEWIRE-TRACE-CT';

/** A trace session's iptables chain (this one's or another's): the marking one in raw, or with `ct`, the conntrack-marking one in mangle too. */
export function isTraceChain(chain: string, ct = false): boolean {
  return (ct ? /^KUBEWIRE-TRACE(-CT)?(-\d+)?$/ : /^KUBEWIRE-TRACE(-\d+)?$/).test(chain);
}

/** The iptables-legacy equivalent of the trace table (an iptables-restore --noflush script), masqueraded probes included. */
export function legacyTraceScript(ses: Session, ctMark: boolean, masqueraders: string[] = []): string {
  const range = `${ses.lo}:${ses.hi}`;
  const trace = (m: string) => `-A ${ses.chain} ${m} -j TRACE`;
  const lines = [
    '*raw',
    `:${ses.chain} - [0:0]`,
    `-I PREROUTING 1 -j ${ses.chain}`,
    `-I OUTPUT 1 -j ${ses.chain}`,
    trace(`-p tcp --sport ${range} --tcp-flags SYN,ACK SYN`),
    trace(`-p tcp --dport ${range} --tcp-flags SYN,ACK SYN,ACK`),
    trace(`-p tcp --dport ${range} --tcp-flags RST RST`),
    trace(`-p udp --sport ${range}`),
    trace(`-p udp --dport ${range}`),
    ...['echo-request', 'echo-reply', 'destination-unreachable', 'time-exceeded'].map((t) => trace(`-p icmp --icmp-type ${t}`)),
    ...masqueraders.flatMap((a) => [
      trace(`-s ${a}/32 -p tcp --tcp-flags SYN,ACK SYN`),
      trace(`-d ${a}/32 -p tcp --tcp-flags SYN,ACK SYN,ACK`),
      trace(`-d ${a}/32 -p tcp --tcp-flags RST RST`),
      trace(`-s ${a}/32 -p udp ! --sport 8472 ! --dport 8472`),
      trace(`-d ${a}/32 -p udp ! --sport 8472 ! --dport 8472`),
    ]),
    'COMMIT',
    // mangle has a chain at every hook: its TRACE lines are where the packet was seen (and with which devices).
    '*mangle',
    ...(ctMark
      ? [
          `:${ses.ctChain} - [0:0]`,
          `-I INPUT 1 -j ${ses.ctChain}`,
          `-I POSTROUTING 1 -j ${ses.ctChain}`,
          // The original tuple: a masquerade's new source port does not hide the entry.
          ...['tcp', 'udp'].flatMap((p) => ['--ctorigsrcport', '--ctorigdstport'].map((d) => `-A ${ses.ctChain} -p ${p} -m conntrack ${d} ${range} -j CONNMARK --set-mark ${ses.ctMark}`)),
        ]
      : []),
    'COMMIT',
    '',
  ];
  return lines.join('\n');
}

function legacyRemoval(ses: Session, ctMark: boolean): string {
  const drop = (chain: string, hooks: string[]) => [...hooks.map((h) => `-D ${h} -j ${chain}`), `-F ${chain}`, `-X ${chain}`];
  return ['*raw', ...drop(ses.chain, ['PREROUTING', 'OUTPUT']), 'COMMIT', ...(ctMark ? ['*mangle', ...drop(ses.ctChain, ['INPUT', 'POSTROUTING']), 'COMMIT'] : []), ''].join('\n');
}

/** A TRACE line of the trace's own rules (its chains, and the jumps into them inserted first). */
export function ownTraceEvent(e: TraceEvent): boolean {
  if (isTraceChain(e.chain, true)) return true;
  if (e.type !== 'rule' || e.ruleNumber !== 1) return false;
  return (e.table === 'raw' && (e.chain === 'PREROUTING' || e.chain === 'OUTPUT')) || (e.table === 'mangle' && (e.chain === 'INPUT' || e.chain === 'POSTROUTING'));
}

/** Whether this kernel takes nf_tables' ip family (asked in one place: every namespace has the same kernel). */
async function markingOf(dp: Dataplane, place: Place): Promise<Marking> {
  const probeTable = `${TRACE_TABLE}-probe`;
  try {
    await dp.at(place.netns).nft(`add table ip ${probeTable}\ndelete table ip ${probeTable}\n`);
    return 'nft';
  } catch (e) {
    if (/not supported|No such file or directory|cache initialization failed/i.test((e as Error).message)) return 'iptables';
    throw e;
  }
}

/**
 * Waits until the namespace's nft trace reader is subscribed: it has reported a change to the
 * session's table. The table may have been added before nft subscribed (a busy machine starts
 * it late): then a chain added later tells, tried again every half second.
 */
async function subscribed(dp: Dataplane, netns: string, monitor: TraceWatch, table: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    if (i > 0) await dp.at(netns).nft(`add chain ip ${table} subscribed-${i}\n`);
    const text = i === 0 ? `add table ip ${table}` : `add chain ip ${table} subscribed-${i}`;
    if (await monitor.until(text, 500).then(() => true, () => false)) return;
  }
  throw new Error(`nft monitor in ${netns} reported nothing of table ${table} within 20 s`);
}

/** Removes what a session put in a namespace: its table or chains, its conntrack entries (each step tried, whatever failed before). */
async function unmark(dp: Dataplane, ses: Session, marking: Marking, netns: string, ct: boolean): Promise<void> {
  const ns = dp.at(netns);
  if (marking === 'nft') await ns.nft(`delete table ip ${ses.table}\n`).catch(() => undefined);
  else await ns.iptablesRestore(legacyRemoval(ses, ct), 4, 'legacy').catch(() => undefined);
  if (ct) await ns.conntrackDelete({ mark: ses.ctMark }).catch(() => undefined);
}

/** What sessions whose process died left behind (their record says where). */
async function sweep(dp: Dataplane, dead: SessionRecord[]): Promise<void> {
  await Promise.all(dead.flatMap((d) => d.places.map((p) => unmark(dp, session(d.lo, d.hi), d.marking, p.netns, p.conntrack))));
}

export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Sends the probes with tracing on in every place, collects what the kernel reported, and leaves nothing behind. */
export async function observe(dp: Dataplane, places: Place[], specs: ProbeSpec[], opts: SessionOptions): Promise<Observation> {
  if (specs.length > 3_000) throw new Error(`${specs.length} probes in one trace session: at most 3000`);
  const upstreams = specs.filter((s) => s.http).length * UPSTREAM_TRIES;
  const marking = await markingOf(dp, places[0]!);
  const sessions = new Sessions(dp, opts.runDir);
  const claimed = await sessions.claim(Math.max(1, specs.length + upstreams), { marking, places: places.map((p) => ({ netns: p.netns, conntrack: opts.conntrack.has(p.netns) })) });
  const ses = session(claimed.lo, claimed.hi);
  await sweep(dp, claimed.dead);
  let spare = ses.lo + specs.length;
  const probes: Probe[] = specs.map((s, i) => {
    const upstreamPort = s.http ? spare : undefined;
    if (s.http) spare += UPSTREAM_TRIES;
    return { ...s, sport: ses.lo + i, ...(upstreamPort !== undefined ? { upstreamPort } : {}) };
  });
  const monitors: Array<{ netns: string; kind: 'nft' | 'nflog'; monitor: TraceWatch }> = [];
  const marked: string[] = [];
  const timeout = opts.timeoutSeconds ?? 1;
  const masq = opts.masqueraders ?? [];
  const check = () => {
    if (opts.signal?.aborted) throw new Interrupted('the trace was interrupted; what it had put in place is removed');
  };
  const readers = places.filter((p) => marking === 'iptables' || opts.legacyIptables.has(p.netns)).map((p) => p.netns);
  let nflog: FileLock | undefined;
  try {
    // One reader of group 0 per namespace: a session reading it where another does waits its turn.
    if (readers.length) nflog = await sessions.nflog(readers);
    check();
    await Promise.all(
      places.map(async (place) => {
        const ns = dp.at(place.netns);
        const ct = opts.conntrack.has(place.netns);
        const started: Array<Promise<unknown>> = [];
        if (marking === 'nft') started.push(ns.traceEvents('nft').then((monitor) => monitors.push({ netns: place.netns, kind: 'nft', monitor })));
        if (readers.includes(place.netns)) started.push(ns.traceEvents('nflog').then((monitor) => monitors.push({ netns: place.netns, kind: 'nflog', monitor })));
        await Promise.all(started);
        marked.push(place.netns);
        if (marking === 'iptables') return void (await ns.iptablesRestore(legacyTraceScript(ses, ct, masq), 4, 'legacy'));
        await ns.nft(traceTableScript(ses, ct, masq));
        await subscribed(dp, place.netns, monitors.find((m) => m.netns === place.netns && m.kind === 'nft')!.monitor, ses.table);
      }),
    );
    check();
    const results = await mapLimit(probes, opts.parallel ?? 32, async (probe) => {
      const { argv, input } = probeCommand(probe, timeout);
      const ns = dp.at(probe.from.netns);
      const said = await ns.exec(argv, input).then(
        (out) => ({ ok: true, text: out }),
        (e: Error) => ({ ok: false, text: e.message }),
      );
      return { probe, fate: fateOf(probe, said.ok, said.text), said: said.text.trim() };
    });
    check();
    // Every probe's packets have been through the kernel by now, their trace events queued to the
    // observers in order: a change to the table, queued behind them, says when nft has read them all
    // (a fixed wait lost the last ones on a busy machine). nflog's records get a short wait.
    await Promise.all(
      monitors
        .filter((m) => m.kind === 'nft')
        .map(async (m) => {
          await dp.at(m.netns).nft(`add chain ip ${ses.table} barrier\n`);
          await m.monitor.until(`add chain ip ${ses.table} barrier`, 10_000);
        }),
    );
    if (readers.length) await new Promise((r) => setTimeout(r, 50));
    const events = new Map<string, TraceEvent[]>();
    const outputs = await Promise.all(monitors.splice(0).map(async (m) => ({ ...m, out: await m.monitor.stop() })));
    nflog?.release();
    for (const o of outputs) events.set(o.netns, [...(events.get(o.netns) ?? []), ...o.out]);
    // Where the probes went, and the fabric (nodes' and underlay's bridges), all the kernel
    // holds; of a pod no probe reached, only its addresses (it may be a next hop).
    const crossed = (p: Place) => p.kind !== 'pod' || (events.get(p.netns) ?? []).length > 0 || probes.some((x) => x.from.netns === p.netns);
    const snapshots = new Map<string, Snapshot>();
    await Promise.all(places.map(async (p) => snapshots.set(p.netns, await snapshot(dp, p.netns, opts.conntrack.has(p.netns) ? ses.ctMark : undefined, crossed(p)))));
    // The rules TRACE named by number, and the nft chains' hooks, read now that it is known which are needed.
    await Promise.all(
      places.map(async (p) => {
        const evs = events.get(p.netns) ?? [];
        const snap = snapshots.get(p.netns)!;
        const ns = dp.at(p.netns);
        // One read of every table whose rules (other than the trace's own) the packets matched.
        const tables = new Set(evs.filter((e) => e.source === 'iptables' && e.type !== 'return' && !(marking === 'iptables' && ownTraceEvent(e))).map((e) => e.table));
        if (tables.size) {
          const saved = await ns.iptablesRules([...tables] as IptablesTable[], 4, 'legacy');
          for (const t of tables) snap.iptables.set(t, tableRules(saved.find((s) => s.table === t)));
        }
        if (evs.some((e) => e.source === 'nft' && !isTraceTable(e.table))) {
          snap.nft = await ns.nftRuleset();
          snap.nftChains = baseChains(snap.nft);
        }
      }),
    );
    check();
    return { probes: results, events, snapshots, places, marking, session: ses };
  } catch (e) {
    // Ctrl-C at a terminal reaches the observers and probes too: whatever failed, the trace was interrupted.
    if (opts.signal?.aborted && !(e instanceof Interrupted)) throw new Interrupted('the trace was interrupted; what it had put in place is removed', { cause: e });
    throw e;
  } finally {
    await Promise.all(monitors.map((m) => m.monitor.stop().catch(() => undefined)));
    nflog?.release();
    await Promise.all(marked.map((netns) => unmark(dp, ses, marking, netns, opts.conntrack.has(netns))));
    await sessions.release(ses.lo).catch(() => undefined);
  }
}

async function snapshot(dp: Dataplane, netns: string, ctMark: string | undefined, crossed: boolean): Promise<Snapshot> {
  const ns = dp.at(netns);
  if (!crossed) return { links: await ns.links(), neighbours: [], fdb: new Map(), conntrack: [], iptables: new Map(), nftChains: new Map(), ipvs: [] };
  const [{ links, neighbours }, entries] = await Promise.all([
    ns.addressing(),
    ctMark ? ns.conntrackList({ mark: ctMark }).catch(() => [] as ConntrackFlow[]) : [],
  ]);
  const fdb = new Map<string, FdbEntry[]>();
  for (const l of links.filter((l) => l.linkinfo?.info_kind === 'bridge')) fdb.set(l.ifname, await ns.fdb(l.ifname));
  const ipvs = links.some((l) => l.ifname === 'kube-ipvs0') ? await ns.ipvsConnectionList().catch(() => [] as IpvsConnection[]) : [];
  return { links, neighbours, fdb, conntrack: entries, iptables: new Map(), nftChains: new Map(), ipvs };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}
