// The nftables backend of NetworkPolicy: one `inet kubewire-netpol` table per node, apart from
// the service proxy's, so no proxy `accept` can bypass a policy `drop` (a drop in any base
// chain on a hook is final). Rendered whole from the compiled model and put in by one `nft -f`
// transaction that deletes and re-creates the table: the kernel never sees half a policy.
//
//   forward (filter - 10, after the proxy's DNAT: the backend's real IP and port)
//     ct state established,related accept        replies and flows already allowed
//     ip saddr vmap @egress                      a local isolated pod sending: its egress chain
//     ip daddr vmap @ingress                     a local isolated pod receiving: its ingress chain
//   input: the egress of local pods towards their own node; output: nothing (the pod's own
//   node is always allowed in: node-originated packets never meet an ingress chain).
//
// A pod's chain `ingress-NS/NAME` holds a rule per allowed (peers, port range), each a
// `return` commented "ns/policy ingress rule N", and ends with a counted drop naming the
// isolating policies (what `nft monitor trace` shows at the dropping hop). Peers are interval
// sets of pod IPs and ipBlock ranges (excepts already cut out), shared by every rule with the
// same addresses, so 1,000 policies over 1,000 pods are sets, not rule lists. IPv4 only: the
// cluster's pod network is IPv4.

import { createHash } from 'node:crypto';
import { mergeIntervals, formatInterval, type CompiledDirection, type CompiledNode, type CompiledRule, type Interval, type PortRange } from './model.ts';
import type { Netns } from '../dataplane/port.ts';
import { tryParseIP } from '../netaddr/ip.ts';
import type { NetpolBackend } from './enforcer.ts';

export const NFT_TABLE = 'kubewire-netpol';

/** Priority of the policy chains: before the proxy's filter chains, after DNAT (dstnat -100). */
const PRIORITY = 'filter - 10';

/** nft keeps at most 128 bytes of a comment. */
export function nftComment(text: string): string {
  const clean = text.replace(/["\\\n]/g, ' ');
  return `"${clean.length > 127 ? `${clean.slice(0, 124)}...` : clean}"`;
}

/** A peer set's name: a hash of its elements, so equal sets are one set and names are stable. */
function setName(elements: string[]): string {
  return `peers-${createHash('sha256').update(elements.join(',')).digest('base64url').slice(0, 12)}`;
}

/** Elements by the compiled rule's (shared) address lists: a policy's peers are rendered once, not once per pod it selects. */
const elementMemo = new WeakMap<string[], WeakMap<Interval[], string[]>>();

function ipv4Elements(ips: string[], intervals: Interval[]): string[] {
  let byIntervals = elementMemo.get(ips);
  if (!byIntervals) elementMemo.set(ips, (byIntervals = new WeakMap()));
  let hit = byIntervals.get(intervals);
  if (!hit) byIntervals.set(intervals, (hit = ipv4ElementsOf(ips, intervals)));
  return hit;
}

function ipv4ElementsOf(ips: string[], intervals: Interval[]): string[] {
  const all: Interval[] = [...intervals];
  for (const ip of ips) {
    const a = tryParseIP(ip);
    if (a) all.push({ family: a.family, first: a.value, last: a.value });
  }
  return mergeIntervals(all.filter((iv) => iv.family === 4)).map(formatInterval);
}

const L4: Record<PortRange['protocol'], string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function portMatch(p: PortRange): string {
  const proto = `meta l4proto ${L4[p.protocol]}`;
  if (p.first === undefined) return proto;
  return `${proto} th dport ${p.first === p.last ? p.first : `${p.first}-${p.last}`}`;
}

export const chainName = (dir: 'ingress' | 'egress', pod: { namespace: string; name: string }): string => `${dir}-${pod.namespace}/${pod.name}`;

/** The whole table for one node, as an `nft -f` script (deletes what was there first). */
export function renderNftables(node: CompiledNode): { script: string; counts: Record<string, number> } {
  const sets = new Map<string, string[]>();
  const chains: string[] = [];
  const ingress: string[] = [];
  const egress: string[] = [];
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
    chains.push(`\tchain ${name} {\n${body.map((l) => `\t\t${l}\n`).join('')}\t}`);
    return name;
  };

  for (const pod of node.pods) {
    if (!tryParseIP(pod.ip) || tryParseIP(pod.ip)!.family !== 4) continue;
    if (pod.ingress) ingress.push(`${pod.ip} : jump ${chain('ingress', pod, pod.ingress)}`);
    if (pod.egress) egress.push(`${pod.ip} : jump ${chain('egress', pod, pod.egress)}`);
  }

  const map = (name: string, elements: string[]) => `\tmap ${name} {\n\t\ttype ipv4_addr : verdict\n${elements.length ? `\t\telements = { ${elements.join(',\n\t\t\t')} }\n` : ''}\t}`;
  const base = (hook: string, lines: string[]) => `\tchain ${hook} {\n\t\ttype filter hook ${hook} priority ${PRIORITY}; policy accept;\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}`;
  const body = [
    `\tcomment "NetworkPolicy, by kubewire"`,
    map('ingress', ingress),
    map('egress', egress),
    ...[...sets].sort(([a], [b]) => a.localeCompare(b)).map(([name, els]) => `\tset ${name} {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { ${els.join(', ')} }\n\t}`),
    ...chains,
    base('forward', ['ct state established,related accept', 'ip saddr vmap @egress', 'ip daddr vmap @ingress']),
    base('input', ['ct state established,related accept', 'ip saddr vmap @egress']),
  ];
  const script = `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\ntable inet ${NFT_TABLE} {\n${body.join('\n')}\n}\n`;
  return { script, counts: { pods: node.pods.length, chains: chains.length, rules, sets: sets.size } };
}

/** The script that removes the table (nothing left after the last policy is deleted). */
export function nftRemoval(): string {
  return `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
}

/** Renders and applies the table through the node's namespace (one `nft -f` per sync). */
export class NftablesPolicyBackend implements NetpolBackend {
  readonly name = 'nftables';
  /** The last script that went in: for tests and the bench. */
  lastScript = '';

  constructor(private readonly netns: Netns) {}

  async apply(node: CompiledNode): Promise<Record<string, number>> {
    const { script, counts } = renderNftables(node);
    await this.netns.nft(script);
    this.lastScript = script;
    return counts;
  }

  async remove(): Promise<void> {
    await this.netns.nft(nftRemoval());
    this.lastScript = '';
  }

  async intact(): Promise<boolean> {
    return (await this.netns.nftTables('inet')).includes(NFT_TABLE);
  }
}
