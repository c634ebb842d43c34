// The nftables backend of NetworkPolicy: one `inet kubewire-netpol` table per node, apart from
// the service proxy's, so no proxy `accept` can bypass a policy `drop` (a drop in any base
// chain on a hook is final). Rendered whole from the compiled model and put in by one `nft -f`
// transaction that deletes and re-creates the table: the kernel never sees half a policy.
//
//   forward (filter - 10, after the proxy's DNAT: the backend's real IP and port)
//     ct state established,related accept        replies and flows already allowed
//     ip saddr vmap @egress                      a local isolated pod sending: its egress chain
//     ip daddr vmap @ingress                     a local isolated pod receiving: its ingress chain
//   input (after IPVS): the egress of local pods towards their own node. output, in IPVS mode
//   only: IPVS DNATs in LOCAL_IN and sends a Service's packets on through OUTPUT, never through
//   forward, so there they meet both ends' chains on the real server's address and port; the
//   node's own packets pass (a pod's own node is always allowed in).
//
// A pod's chain `ingress-NS/NAME` holds a rule per allowed (peers, port range), each a
// `return` commented "ns/policy ingress rule N", and ends with a counted drop naming the
// isolating policies (what `nft monitor trace` shows at the dropping hop). Peers are interval
// sets of pod IPs and ipBlock ranges (excepts already cut out), shared by every rule with the
// same addresses, so 1,000 policies over 1,000 pods are sets, not rule lists. The first sync
// puts the whole table in; later ones only what changed (diffScript), still one transaction.
// IPv4 only: the cluster's pod network is IPv4.

import { createHash } from 'node:crypto';
import { ipv4Elements, type CompiledDirection, type CompiledNode, type CompiledRule, type PortRange } from './model.ts';
import type { Netns } from '../dataplane/port.ts';
import { tryParseIP } from '../netaddr/ip.ts';
import type { NetpolBackend, NetpolProxyInfo } from './enforcer.ts';

export const NFT_TABLE = 'kubewire-netpol';

/** Priority of the policy chains: before the proxy's filter chains, after DNAT (dstnat -100). */
const PRIORITY = 'filter - 10';
/**
 * The input chain's: after IPVS, which takes a Service's packets in LOCAL_IN at 99 (NAT_SRC - 1)
 * and sends them on through OUTPUT with the real server's address. What reaches this chain is
 * for the node itself; what IPVS took is judged in `output`, as kube-network-policies does.
 */
const INPUT_PRIORITY = 'filter + 101';

/** nft keeps at most 128 bytes of a comment. */
export function nftComment(text: string): string {
  const clean = text.replace(/["\\\n]/g, ' ');
  return `"${clean.length > 127 ? `${clean.slice(0, 124)}...` : clean}"`;
}

/** A peer set's name: a hash of its elements, so equal sets are one set and names are stable. */
function setName(elements: string[]): string {
  return `peers-${createHash('sha256').update(elements.join(',')).digest('base64url').slice(0, 12)}`;
}

const L4: Record<PortRange['protocol'], string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function portMatch(p: PortRange): string {
  const proto = `meta l4proto ${L4[p.protocol]}`;
  if (p.first === undefined) return proto;
  return `${proto} th dport ${p.first === p.last ? p.first : `${p.first}-${p.last}`}`;
}

export const chainName = (dir: 'ingress' | 'egress', pod: { namespace: string; name: string }): string => `${dir}-${pod.namespace}/${pod.name}`;

/** One node's table as data: what a full script renders and what a change is diffed against. */
export interface NftTable {
  /** Peer sets by (content-hashed) name: a set never changes, it is replaced. */
  sets: Map<string, string[]>;
  /** Pod chains by name: their rules. */
  chains: Map<string, string[]>;
  /** Verdict maps: pod IP -> its chain. */
  ingress: Map<string, string>;
  egress: Map<string, string>;
  ipvs: boolean;
  counts: Record<string, number>;
}

/** The table one node's compiled view asks for. */
export function desiredTable(node: CompiledNode, proxy: NetpolProxyInfo = {}): NftTable {
  const sets = new Map<string, string[]>();
  const chains = new Map<string, string[]>();
  const ingress = new Map<string, string>();
  const egress = new Map<string, string>();
  let rules = 0;

  const ruleLines = (dir: 'ingress' | 'egress', r: CompiledRule): string[] => {
    let peer = '';
    if (!r.peers.any) {
      const elements = ipv4Elements(r.peers.ips, r.peers.intervals);
      if (!elements.length) return []; // admits no address: nothing to render
      const name = setName(elements);
      sets.set(name, elements);
      peer = `ip ${dir === 'ingress' ? 'saddr' : 'daddr'} @${name} `;
    }
    const comment = `comment ${nftComment(r.comment)}`;
    if (!r.ports) return [`${peer}return ${comment}`];
    return r.ports.map((p) => `${peer}${portMatch(p)} return ${comment}`);
  };

  const chain = (dir: 'ingress' | 'egress', pod: { namespace: string; name: string }, d: CompiledDirection): string => {
    const name = chainName(dir, pod);
    const body = d.rules.flatMap((r) => ruleLines(dir, r));
    rules += body.length;
    const why = `${pod.namespace}/${pod.name} isolated for ${dir} by [${d.isolatedBy.join(', ')}]: no rule allows`;
    body.push(`counter drop comment ${nftComment(why)}`);
    chains.set(name, body);
    return name;
  };

  for (const pod of node.pods) {
    if (tryParseIP(pod.ip)?.family !== 4) continue;
    if (pod.ingress) ingress.set(pod.ip, chain('ingress', pod, pod.ingress));
    if (pod.egress) egress.set(pod.ip, chain('egress', pod, pod.egress));
  }
  return { sets, chains, ingress, egress, ipvs: proxy.ipvs === true, counts: { pods: node.pods.length, chains: chains.size, rules, sets: sets.size } };
}

const setBody = (els: string[]) => `type ipv4_addr; flags interval; elements = { ${els.join(', ')} }`;
const verdicts = (m: Map<string, string>) => [...m].map(([ip, chain]) => `${ip} : jump ${chain}`);

/** The whole table as an `nft -f` script that deletes what was there first. */
export function fullScript(t: NftTable): string {
  const map = (name: string, elements: string[]) => `\tmap ${name} {\n\t\ttype ipv4_addr : verdict\n${elements.length ? `\t\telements = { ${elements.join(',\n\t\t\t')} }\n` : ''}\t}`;
  const base = (hook: string, lines: string[], priority = PRIORITY) => `\tchain ${hook} {\n\t\ttype filter hook ${hook} priority ${priority}; policy accept;\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}`;
  const body = [
    `\tcomment "NetworkPolicy, by kubewire"`,
    map('ingress', verdicts(t.ingress)),
    map('egress', verdicts(t.egress)),
    ...[...t.sets].sort(([a], [b]) => a.localeCompare(b)).map(([name, els]) => `\tset ${name} {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { ${els.join(', ')} }\n\t}`),
    ...[...t.chains].map(([name, lines]) => `\tchain ${name} {\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}`),
    base('forward', ['ct state established,related accept', 'ip saddr vmap @egress', 'ip daddr vmap @ingress']),
    base('input', ['ct state established,related accept', 'ip saddr vmap @egress'], INPUT_PRIORITY),
    // IPVS: a pod's Service connection after IPVS (the real server's address and port), on
    // either end; the node's own packets (never a pod's address) are always allowed.
    ...(t.ipvs ? [base('output', ['ct state established,related accept', 'fib saddr type local accept', 'ip saddr vmap @egress', 'ip daddr vmap @ingress'])] : []),
  ];
  return `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\ntable inet ${NFT_TABLE} {\n${body.join('\n')}\n}\n`;
}

const sameLines = (a: string[] | undefined, b: string[]) => a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);

/**
 * The change from table `was` (what the kernel holds) to `want`, as one `nft -f` transaction:
 * new sets, new and changed chains (flushed and refilled), the verdict maps' changed elements,
 * then what nothing refers to any more (chains, then sets). Empty when nothing changed. A
 * label change touches a few chains and sets, not the whole table (issue 31: ≤ 0.5 s).
 */
export function diffScript(was: NftTable, want: NftTable): string {
  const T = `inet ${NFT_TABLE}`;
  const out: string[] = [];
  for (const [name, els] of want.sets) if (!was.sets.has(name)) out.push(`add set ${T} ${name} { ${setBody(els)}; }`);
  for (const [name, lines] of want.chains) {
    const before = was.chains.get(name);
    if (sameLines(before, lines)) continue;
    out.push(before ? `flush chain ${T} ${name}` : `add chain ${T} ${name}`, ...lines.map((l) => `add rule ${T} ${name} ${l}`));
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const [a, b] = [was[dir], want[dir]];
    const gone = [...a].filter(([ip, chain]) => b.get(ip) !== chain).map(([ip]) => ip);
    const come = [...b].filter(([ip, chain]) => a.get(ip) !== chain);
    if (gone.length) out.push(`delete element ${T} ${dir} { ${gone.join(', ')} }`);
    if (come.length) out.push(`add element ${T} ${dir} { ${come.map(([ip, chain]) => `${ip} : jump ${chain}`).join(', ')} }`);
  }
  for (const name of was.chains.keys()) if (!want.chains.has(name)) out.push(`flush chain ${T} ${name}`, `delete chain ${T} ${name}`);
  for (const name of was.sets.keys()) if (!want.sets.has(name)) out.push(`delete set ${T} ${name}`);
  return out.length ? `${out.join('\n')}\n` : '';
}

/** The whole table for one node, as an `nft -f` script (deletes what was there first). */
export function renderNftables(node: CompiledNode, proxy: NetpolProxyInfo = {}): { script: string; counts: Record<string, number> } {
  const t = desiredTable(node, proxy);
  return { script: fullScript(t), counts: t.counts };
}

/** The script that removes the table (nothing left after the last policy is deleted). */
export function nftRemoval(): string {
  return `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
}

/**
 * Applies the table through the node's namespace, one `nft -f` per sync: whole the first time
 * (and after a failure or a lost table), then only the difference from what went in last.
 */
export class NftablesPolicyBackend implements NetpolBackend {
  readonly name = 'nftables';
  /** The last script that went in: for tests and the bench. */
  lastScript = '';
  /** What the kernel holds after the last sync; undefined: unknown (the next sync is whole). */
  private applied: NftTable | undefined;

  constructor(private readonly netns: Netns, private readonly proxy: NetpolProxyInfo = {}) {}

  async apply(node: CompiledNode): Promise<Record<string, number>> {
    const want = desiredTable(node, this.proxy);
    const was = this.applied;
    this.applied = undefined; // until this transaction is in
    const script = was && was.ipvs === want.ipvs ? diffScript(was, want) : fullScript(want);
    if (script) await this.netns.nft(script);
    this.applied = want;
    this.lastScript = script;
    return { ...want.counts, partial: was ? 1 : 0 };
  }

  async remove(): Promise<void> {
    this.applied = undefined;
    await this.netns.nft(nftRemoval());
    this.lastScript = '';
  }

  async intact(): Promise<boolean> {
    const ok = (await this.netns.nftTables('inet')).includes(NFT_TABLE);
    if (!ok) this.applied = undefined; // the next sync puts it in whole
    return ok;
  }
}
