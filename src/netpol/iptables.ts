// The iptables + ipset backend of NetworkPolicy, for kernels without nf_tables (the user-mode
// Linux one), built as kube-router builds it: a jump kept at the head of FORWARD and INPUT (so
// no ACCEPT of the proxy's can come first) to KUBEWIRE-NETPOL, which lets established flows
// pass and sends a local isolated pod's packets to its chain; a pod chain RETURNs what a rule
// allows (commented "ns/policy ingress rule N") and DROPs the rest. Peers are hash:net ipsets
// named by a hash of their content (excepts already cut out of the ranges), so a set never
// changes once made: a sync creates the new ones, restores the filter table's chains in one
// iptables-restore, then destroys the sets nothing uses any more.
//
// Verdicts here never ACCEPT: returning from KUBEWIRE-NETPOL hands the packet back to the
// rest of FORWARD (the proxy's chains), which is what "not dropped by policy" means.

import { createHash } from 'node:crypto';
import type { IptablesBackend, Netns } from '../dataplane/port.ts';
import { tryParseIP } from '../netaddr/ip.ts';
import type { NetpolBackend } from './enforcer.ts';
import { formatInterval, mergeIntervals, type CompiledDirection, type CompiledNode, type Interval, type PortRange } from './model.ts';

export const TOP = 'KUBEWIRE-NETPOL';
export const TOP_INPUT = 'KUBEWIRE-NETPOL-INPUT';
const PREFIX = 'KWNP-';

const hash = (s: string, n: number) => createHash('sha256').update(s).digest('base64url').replace(/[-_]/g, 'x').slice(0, n).toUpperCase();

/** The jumps kept first in the built-in chains. */
export const HEAD_JUMPS: Array<{ chain: 'FORWARD' | 'INPUT'; rule: string[] }> = [
  { chain: 'FORWARD', rule: ['-m', 'comment', '--comment', 'kubewire netpol', '-j', TOP] },
  { chain: 'INPUT', rule: ['-m', 'comment', '--comment', 'kubewire netpol', '-j', TOP_INPUT] },
];

const quote = (s: string) => `"${s.replace(/["\\\n]/g, ' ').slice(0, 250)}"`;

/** Elements by the compiled rule's (shared) address lists: a policy's peers are rendered once, not once per pod it selects. */
const elementMemo = new WeakMap<string[], WeakMap<Interval[], string[]>>();

function elements(ips: string[], intervals: Interval[]): string[] {
  let byIntervals = elementMemo.get(ips);
  if (!byIntervals) elementMemo.set(ips, (byIntervals = new WeakMap()));
  let hit = byIntervals.get(intervals);
  if (!hit) byIntervals.set(intervals, (hit = elementsOf(ips, intervals)));
  return hit;
}

function elementsOf(ips: string[], intervals: Interval[]): string[] {
  const all: Interval[] = [...intervals];
  for (const ip of ips) {
    const a = tryParseIP(ip);
    if (a) all.push({ family: a.family, first: a.value, last: a.value });
  }
  return mergeIntervals(all.filter((iv) => iv.family === 4)).map(formatInterval);
}

function portArgs(p: PortRange): string {
  const proto = p.protocol.toLowerCase();
  if (p.first === undefined) return `-p ${proto}`;
  return `-p ${proto} -m ${proto} --dport ${p.first === p.last ? p.first : `${p.first}:${p.last}`}`;
}

export interface IptablesRender {
  /** ipset restore script creating every set the rules use. */
  ipsets: string;
  /** Set names the rules use. */
  sets: string[];
  /** The filter table's policy chains, for iptables-restore --noflush (built-in jumps apart). */
  filter: string;
  chains: string[];
  counts: Record<string, number>;
}

/** The whole policy of one node as ipsets and filter chains. */
export function renderIptables(node: CompiledNode): IptablesRender {
  const sets = new Map<string, string[]>();
  const chains = new Map<string, string[]>();
  const top: string[] = [`-A ${TOP} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  const input: string[] = [`-A ${TOP_INPUT} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  let rules = 0;

  const chain = (dir: 'ingress' | 'egress', pod: { namespace: string; name: string }, d: CompiledDirection): string => {
    const name = `${PREFIX}${dir === 'ingress' ? 'IN' : 'EG'}-${hash(`${pod.namespace}/${pod.name}`, 16)}`;
    const lines: string[] = [];
    for (const r of d.rules) {
      let peer = '';
      if (!r.peers.any) {
        const els = elements(r.peers.ips, r.peers.intervals);
        if (!els.length) continue;
        const set = `${PREFIX}${hash(els.join(','), 20)}`;
        sets.set(set, els);
        peer = `-m set --match-set ${set} ${dir === 'ingress' ? 'src' : 'dst'} `;
      }
      const comment = `-m comment --comment ${quote(r.comment)}`;
      for (const p of r.ports ?? [undefined]) lines.push(`-A ${name} ${peer}${p ? `${portArgs(p)} ` : ''}${comment} -j RETURN`);
    }
    rules += lines.length;
    lines.push(`-A ${name} -m comment --comment ${quote(`${pod.namespace}/${pod.name} isolated for ${dir} by [${d.isolatedBy.join(', ')}]: no rule allows`)} -j DROP`);
    chains.set(name, lines);
    return name;
  };

  for (const pod of node.pods) {
    if (tryParseIP(pod.ip)?.family !== 4) continue;
    if (pod.egress) {
      const c = chain('egress', pod, pod.egress);
      top.push(`-A ${TOP} -s ${pod.ip}/32 -j ${c}`);
      input.push(`-A ${TOP_INPUT} -s ${pod.ip}/32 -j ${c}`);
    }
  }
  for (const pod of node.pods) {
    if (tryParseIP(pod.ip)?.family !== 4) continue;
    if (pod.ingress) top.push(`-A ${TOP} -d ${pod.ip}/32 -j ${chain('ingress', pod, pod.ingress)}`);
  }

  const names = [TOP, TOP_INPUT, ...chains.keys()];
  const filter = ['*filter', ...names.map((n) => `:${n} - [0:0]`), ...top, ...input, ...[...chains.values()].flat(), 'COMMIT', ''].join('\n');
  const ipsets = [...sets].map(([name, els]) => [`create ${name} hash:net family inet -exist`, ...els.map((e) => `add ${name} ${e} -exist`)].join('\n')).join('\n');
  return { ipsets: ipsets ? `${ipsets}\n` : '', sets: [...sets.keys()], filter, chains: names, counts: { pods: node.pods.length, chains: chains.size, rules, sets: sets.size } };
}

/** A head jump as iptables-save prints it. */
const jumpLine = (j: (typeof HEAD_JUMPS)[number]) => `-A ${j.chain} ${j.rule.map((w) => (w.includes(' ') ? `"${w}"` : w)).join(' ')}`;

/** The restore lines that put our jumps first in their chains (deleting one that slipped down). */
export function headRepairs(save: string): string[] {
  const out: string[] = [];
  for (const j of HEAD_JUMPS) {
    const line = jumpLine(j);
    const first = save.split('\n').find((l) => l.startsWith(`-A ${j.chain} `));
    if (first === line) continue;
    if (save.split('\n').includes(line)) out.push(line.replace(/^-A/, '-D'));
    out.push(line.replace(/^-A (\S+)/, '-I $1 1'));
  }
  return out;
}

/** Chain names of ours in an iptables-save of the filter table. */
export function ourChains(save: string): string[] {
  return [...save.matchAll(/^:((?:KWNP-|KUBEWIRE-NETPOL)\S*)/gm)].map((m) => m[1]!);
}

export class IptablesPolicyBackend implements NetpolBackend {
  readonly name = 'iptables';

  constructor(private readonly netns: Netns, private readonly iptables?: IptablesBackend) {}

  async apply(node: CompiledNode): Promise<Record<string, number>> {
    const r = renderIptables(node);
    if (r.ipsets) await this.netns.ipsetRestore(r.ipsets);
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    const stale = ourChains(save).filter((c) => !r.chains.includes(c));
    const jumps = headRepairs(save);
    // Stale chains are flushed (declared) with ours, then deleted once nothing jumps to them.
    const script = r.filter.replace(/COMMIT\n$/, [...stale.map((c) => `:${c} - [0:0]`), ...jumps, ...stale.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n'));
    await this.netns.iptablesRestore(script, 4, this.iptables);
    await this.destroySets(r.sets);
    return r.counts;
  }

  private async destroySets(keep: string[]): Promise<void> {
    const unused = (await this.netns.ipsetNames()).filter((s) => s.startsWith(PREFIX) && !keep.includes(s));
    if (unused.length) await this.netns.ipsetRestore(unused.map((s) => `destroy ${s}`).join('\n') + '\n');
  }

  async remove(): Promise<void> {
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    const chains = ourChains(save);
    const lines = ['*filter'];
    for (const j of HEAD_JUMPS) if (save.includes(jumpLine(j))) lines.push(jumpLine(j).replace(/^-A/, '-D'));
    lines.push(...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`), 'COMMIT', '');
    if (lines.length > 3) await this.netns.iptablesRestore(lines.join('\n'), 4, this.iptables);
    await this.destroySets([]);
  }

  /** Our chains there, and our jumps first in FORWARD and INPUT (a proxy started later inserts its own at the head). */
  async intact(): Promise<boolean> {
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    return ourChains(save).includes(TOP) && headRepairs(save).length === 0;
  }
}
