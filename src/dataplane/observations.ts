// What the port reads back from the kernel's netfilter, conntrack, IPVS and sockets, as typed
// values, and the pure parsers of the tools' text that both implementations share (the Linux
// one reads the tools' output; the fake prints the same formats from its state and parses
// them with the same code, so both answer alike). Components never see the tools' text.

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

/** An nftables family as `nft list` names it. */
export type NftListFamily = 'ip' | 'ip6' | 'inet' | 'bridge' | 'arp' | 'netdev';

/** One rule as a listing shows it: its text (without its handle and its counter's values), and those. */
export interface NftRuleState {
  text: string;
  handle?: number;
  comment?: string;
  packets?: number;
  bytes?: number;
}

export interface NftChainState {
  name: string;
  /** A base chain's type, hook, priority (nft's names resolved for ip hooks) and policy. */
  type?: string;
  hook?: Hook | string;
  priority?: number;
  policy?: string;
  rules: NftRuleState[];
}

export interface NftSetState {
  name: string;
  kind: 'set' | 'map';
  /** As listed: "10.0.0.1", "10.96.0.1 . tcp . 80 : goto svc-x". */
  elements: string[];
}

export interface NftCounterState {
  name: string;
  packets: number;
  bytes: number;
}

export interface NftTableState {
  family: string;
  name: string;
  chains: NftChainState[];
  sets: NftSetState[];
  counters: NftCounterState[];
}

/** One rule of an iptables chain: "-A CHAIN ..." as iptables-save prints it, and what it says. */
export interface IptablesRuleState {
  chain: string;
  text: string;
  target?: string;
  comment?: string;
  packets?: number;
  bytes?: number;
}

export interface IptablesChainState {
  name: string;
  /** A built-in chain's policy (ACCEPT, DROP); undefined for a user chain. */
  policy?: string;
  rules: IptablesRuleState[];
}

export interface IptablesTableState {
  table: string;
  chains: IptablesChainState[];
}

/** One direction of a conntrack entry: addresses, ports, or an ICMP message's type, code and identifier. */
export interface ConntrackTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  id?: number;
}

/** A conntrack entry as `conntrack -L` lists it. */
export interface ConntrackFlow {
  protocol: string;
  /** Seconds left. */
  timeout?: number;
  /** TCP's state (SYN_SENT, ESTABLISHED, TIME_WAIT...); undefined for other protocols. */
  state?: string;
  original: ConntrackTuple;
  reply: ConntrackTuple;
  /** ASSURED, UNREPLIED, in the order listed. */
  flags: string[];
  mark?: number;
}

/** One IPVS connection (`ipvsadm -Lnc`): which real server a client's connection to a virtual server went to. */
export interface IpvsConnection {
  protocol: string;
  expires: string;
  state: string;
  /** ADDRESS:PORT each. */
  source: string;
  virtual: string;
  destination: string;
}

/** A listening socket and the processes that hold it (none visible: the kernel's own, or another user's). */
export interface SocketListener {
  local: string;
  processes: Array<{ name: string; pid: number }>;
}

/** The route the kernel picks for a destination (`ip route get fibmatch`). */
export interface RouteLookup {
  dst: string;
  gateway?: string;
  dev?: string;
  type?: string;
  table?: string;
}

// ---- nft ----

const NAMED_PRIORITIES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };

/** "dstnat", "dstnat - 10", "-350": nft's priority names resolved for ip hooks. */
export function nftPriority(text: string): number {
  const m = /^([a-z]+)\s*([+-])\s*(\d+)$/.exec(text);
  if (m) return NAMED_PRIORITIES[m[1]!]! + (m[2] === '-' ? -1 : 1) * Number(m[3]);
  return NAMED_PRIORITIES[text] ?? Number(text);
}

const HANDLE = / # handle (\d+)$/;

/** An `nft [-a] list ruleset|table` listing as tables of chains (with rules), sets and maps (with elements), named counters. */
export function parseNftListing(text: string): NftTableState[] {
  const tables: NftTableState[] = [];
  let table: NftTableState | undefined;
  // The blocks open at this line: the table, then one object (a chain, set, counter, or any other nft prints, skipped).
  const open: Array<{ chain?: NftChainState; set?: NftSetState; counter?: NftCounterState }> = [];
  let elements: { set: NftSetState; text: string } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(HANDLE, '').trim();
    if (!line) continue;
    if (elements) {
      // An elements block continued over lines until its closing brace.
      elements.text += ` ${line}`;
      if (line.endsWith('}')) {
        elements.set.elements.push(...splitElements(elements.text));
        elements = undefined;
      }
      continue;
    }
    if (line === '}') {
      if (open.pop() !== undefined && !open.length) table = undefined;
      continue;
    }
    const t = /^table (\S+) (\S+) \{$/.exec(line);
    if (t && !open.length) {
      tables.push((table = { family: t[1]!, name: t[2]!, chains: [], sets: [], counters: [] }));
      open.push({});
      continue;
    }
    if (line.endsWith('{')) {
      const o = /^(chain|set|map|counter) (\S+) \{$/.exec(line);
      const name = o ? unquote(o[2]!) : '';
      const block: (typeof open)[number] = {};
      if (table && open.length === 1 && o?.[1] === 'chain') table.chains.push((block.chain = { name, rules: [] }));
      else if (table && open.length === 1 && o?.[1] === 'counter') table.counters.push((block.counter = { name, packets: 0, bytes: 0 }));
      else if (table && open.length === 1 && (o?.[1] === 'set' || o?.[1] === 'map')) table.sets.push((block.set = { name, kind: o[1] as 'set' | 'map', elements: [] }));
      open.push(block);
      continue;
    }
    const { chain, set, counter } = open.at(-1) ?? {};
    if (set && line.startsWith('elements = {')) {
      elements = { set, text: line.slice('elements = '.length) };
      if (line.endsWith('}')) {
        set.elements.push(...splitElements(elements.text));
        elements = undefined;
      }
    } else if (counter) {
      const c = /^packets (\d+) bytes (\d+)/.exec(line);
      if (c) Object.assign(counter, { packets: Number(c[1]), bytes: Number(c[2]) });
    } else if (chain) {
      const base = /^type (\S+) hook (\S+)(?: device \S+)? priority ([^;]+)(?:;|$)(?: policy (\w+);?)?/.exec(line);
      if (base && !chain.rules.length) Object.assign(chain, { type: base[1], hook: base[2], priority: nftPriority(base[3]!.trim()) }, base[4] ? { policy: base[4] } : {});
      else chain.rules.push(nftRule(raw.trim()));
    }
  }
  return tables;
}

function nftRule(line: string): NftRuleState {
  const h = HANDLE.exec(line);
  const text = h ? line.slice(0, h.index) : line;
  const rule: NftRuleState = { text };
  if (h) rule.handle = Number(h[1]);
  const c = /(?:^| )counter packets (\d+) bytes (\d+)/.exec(text);
  if (c) Object.assign(rule, { packets: Number(c[1]), bytes: Number(c[2]) });
  const comment = / comment "((?:[^"\\]|\\.)*)"$/.exec(text);
  if (comment) rule.comment = comment[1]!;
  // The text without the counter's values, which change with every packet.
  rule.text = text.replace(/(^| )counter packets \d+ bytes \d+/, '$1counter').trim();
  return rule;
}

/** "{ a, b : x, c }" → ["a", "b : x", "c"] (commas inside a concatenation's parts do not occur). */
function splitElements(block: string): string[] {
  const inner = block.trim().replace(/^\{/, '').replace(/\}$/, '');
  return inner.split(',').map((e) => e.trim()).filter(Boolean);
}

function unquote(s: string): string {
  return s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

// ---- iptables ----

/** An `iptables-save [-c]` dump (one table or all) as tables of chains with their rules, counters and comments. */
export function parseIptablesSave(text: string): IptablesTableState[] {
  const tables: IptablesTableState[] = [];
  let table: IptablesTableState | undefined;
  const chains = new Map<string, IptablesChainState>();
  const chainOf = (name: string) => {
    let c = chains.get(name);
    if (!c) {
      c = { name, rules: [] };
      chains.set(name, c);
      table!.chains.push(c);
    }
    return c;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      tables.push((table = { table: line.slice(1).trim(), chains: [] }));
      chains.clear();
      continue;
    }
    // A table's section alone (no "*table" line) is read as one table without a name.
    if (!table && /^(:|-A |\[)/.test(line)) tables.push((table = { table: '', chains: [] }));
    if (!table) continue;
    const decl = /^:(\S+) (\S+) /.exec(line);
    if (decl) {
      const c = chainOf(decl[1]!);
      if (decl[2] !== '-') c.policy = decl[2]!;
      continue;
    }
    const r = /^(?:\[(\d+):(\d+)\] )?(-A (\S+)(?: .*)?)$/.exec(line);
    if (!r) continue;
    const rule: IptablesRuleState = { chain: r[4]!, text: r[3]! };
    const target = / -[jg] (\S+)/.exec(rule.text)?.[1];
    if (target) rule.target = target;
    const comment = / --comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(rule.text);
    if (comment) rule.comment = comment[1] ?? comment[2]!;
    if (r[1] !== undefined) Object.assign(rule, { packets: Number(r[1]), bytes: Number(r[2]) });
    chainOf(rule.chain).rules.push(rule);
  }
  return tables;
}

// ---- conntrack, IPVS, sockets ----

/** `conntrack -L` output (the "N flow entries" line is on stderr): one flow per line. */
export function parseConntrackList(text: string): ConntrackFlow[] {
  return text.split('\n').flatMap((l) => {
    const f = parseConntrackLine(l);
    return f ? [f] : [];
  });
}

export function parseConntrackLine(line: string): ConntrackFlow | undefined {
  const head = /^(\w+)\s+\d+\s+(\d+)\s+(?:([A-Z_]+)\s)?/.exec(line);
  if (!head) return undefined;
  const tuples = [...line.matchAll(/src=(\S+) dst=(\S+)(?: sport=(\d+) dport=(\d+)| type=(\d+) code=(\d+)(?: id=(\d+))?)?/g)].map((m): ConntrackTuple => {
    const t: ConntrackTuple = { src: m[1]!, dst: m[2]! };
    if (m[3] !== undefined) Object.assign(t, { sport: Number(m[3]), dport: Number(m[4]) });
    if (m[5] !== undefined) Object.assign(t, { type: Number(m[5]), code: Number(m[6]) }, m[7] !== undefined ? { id: Number(m[7]) } : {});
    return t;
  });
  const [original, reply] = tuples;
  if (!original || !reply) return undefined;
  const flow: ConntrackFlow = { protocol: head[1]!, timeout: Number(head[2]), original, reply, flags: [...line.matchAll(/\[([A-Z]+)\]/g)].map((m) => m[1]!) };
  if (head[3]) flow.state = head[3];
  const mark = /\bmark=(\d+)/.exec(line)?.[1];
  if (mark !== undefined) flow.mark = Number(mark);
  return flow;
}

/** `ipvsadm -Lnc`: the connection lines (after its two header lines). */
export function parseIpvsConnections(text: string): IpvsConnection[] {
  return text.split('\n').flatMap((l) => {
    if (!/^(TCP|UDP|SCTP)\s/.test(l)) return [];
    const [protocol, expires, state, source, virtual, destination] = l.trim().split(/\s+/);
    return destination ? [{ protocol: protocol!, expires: expires!, state: state!, source: source!, virtual: virtual!, destination }] : [];
  });
}

/** `ss -Hlnp`: each socket's local address and the processes that hold it. */
export function parseListeners(text: string): SocketListener[] {
  return text.split('\n').flatMap((l) => {
    const cols = l.trim().split(/\s+/);
    if (cols.length < 4) return [];
    return [{ local: cols[3]!, processes: [...l.matchAll(/\("([^"]+)",pid=(\d+)/g)].map((m) => ({ name: m[1]!, pid: Number(m[2]) })) }];
  });
}
