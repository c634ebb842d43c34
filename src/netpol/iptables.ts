// The iptables + ipset backend of NetworkPolicy, for kernels without nf_tables (the user-mode
// Linux one), built as kube-router builds it: a jump kept at the head of FORWARD and INPUT (and
// OUTPUT in IPVS mode, where a Service's packets are judged after IPVS; see renderIptables)
// (so no ACCEPT of the proxy's can come first) to KUBEWIRE-NETPOL, which lets established flows
// pass and sends a local isolated pod's packets to its chain; a pod chain RETURNs what a rule
// allows (commented "ns/policy ingress rule N") and DROPs the rest. Peers are hash:net ipsets
// named by a hash of their content (excepts already cut out of the ranges), so a set never
// changes once made: a sync creates the new ones, restores the filter table's chains in one
// iptables-restore, then destroys the sets nothing uses any more. The first sync restores every
// chain; later ones only those whose rules changed (iptablesDiff).
//
// Verdicts here never ACCEPT: returning from KUBEWIRE-NETPOL hands the packet back to the
// rest of FORWARD (the proxy's chains), which is what "not dropped by policy" means.

import { createHash } from 'node:crypto';
import type { IptablesBackend, Netns } from '../dataplane/port.ts';
import { tryParseIP } from '../netaddr/ip.ts';
import type { NetpolBackend, NetpolProxyInfo } from './enforcer.ts';
import { ipv4Elements, type CompiledDirection, type CompiledNode, type PortRange } from './model.ts';
import { NODE_PORT_RANGE } from '../apiserver/allocators.ts';

export const TOP = 'KUBEWIRE-NETPOL';
export const TOP_INPUT = 'KUBEWIRE-NETPOL-INPUT';
export const TOP_OUTPUT = 'KUBEWIRE-NETPOL-OUTPUT';
const PREFIX = 'KWNP-';

const hash = (s: string, n: number) => createHash('sha256').update(s).digest('base64url').replace(/[-_]/g, 'x').slice(0, n).toUpperCase();

type HeadJump = { chain: 'FORWARD' | 'INPUT' | 'OUTPUT'; rule: string[] };
const jump = (chain: HeadJump['chain'], to: string): HeadJump => ({ chain, rule: ['-m', 'comment', '--comment', 'kubewire netpol', '-j', to] });

/** The jumps kept first in the built-in chains: OUTPUT too in IPVS mode. */
export function headJumps(proxy: NetpolProxyInfo = {}): HeadJump[] {
  return [jump('FORWARD', TOP), jump('INPUT', TOP_INPUT), ...(proxy.ipvs ? [jump('OUTPUT', TOP_OUTPUT)] : [])];
}

/** Every jump any mode makes (removal takes whichever are there). */
const ALL_JUMPS = headJumps({ ipvs: true });

const quote = (s: string) => `"${s.replace(/["\\\n]/g, ' ').slice(0, 250)}"`;

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
  /** Each chain's rules (what a later sync compares to restore only the chains that changed). */
  bodies: Map<string, string[]>;
  /** Each set's elements. */
  setElements: Map<string, string[]>;
  counts: Record<string, number>;
}

/** The whole policy of one node as ipsets and filter chains. */
export function renderIptables(node: CompiledNode, proxy: NetpolProxyInfo = {}): IptablesRender {
  const sets = new Map<string, string[]>();
  const chains = new Map<string, string[]>();
  const top: string[] = [`-A ${TOP} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  const input: string[] = [`-A ${TOP_INPUT} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  // IPVS: filter's INPUT (priority 0) comes before IPVS (99), so a Service's packets are let
  // through here and judged in OUTPUT, where IPVS sends them with the real server's address
  // (kube-router's way). Anything IPVS does not take is then delivered to the node unjudged:
  // the ClusterIP range and the NodePort range are all that is let through.
  const output: string[] = [];
  if (proxy.ipvs) {
    const why = '-m comment --comment "IPVS: judged in OUTPUT after it"';
    if (proxy.serviceCIDR) input.push(`-A ${TOP_INPUT} -d ${proxy.serviceCIDR} ${why} -j RETURN`);
    for (const p of ['tcp', 'udp', 'sctp']) input.push(`-A ${TOP_INPUT} -p ${p} -m ${p} --dport ${NODE_PORT_RANGE.min}:${NODE_PORT_RANGE.max} ${why} -j RETURN`);
    output.push(`-A ${TOP_OUTPUT} -m addrtype --src-type LOCAL -m comment --comment "the node's own packets" -j RETURN`, `-A ${TOP_OUTPUT} -j ${TOP}`);
  }
  let rules = 0;

  const chain = (dir: 'ingress' | 'egress', pod: { namespace: string; name: string }, d: CompiledDirection): string => {
    const name = `${PREFIX}${dir === 'ingress' ? 'IN' : 'EG'}-${hash(`${pod.namespace}/${pod.name}`, 16)}`;
    const lines: string[] = [];
    for (const r of d.rules) {
      let peer = '';
      if (!r.peers.any) {
        const els = ipv4Elements(r.peers.ips, r.peers.intervals);
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

  const names = [TOP, TOP_INPUT, ...(proxy.ipvs ? [TOP_OUTPUT] : []), ...chains.keys()];
  const filter = ['*filter', ...names.map((n) => `:${n} - [0:0]`), ...top, ...input, ...output, ...[...chains.values()].flat(), 'COMMIT', ''].join('\n');
  const bodies = new Map<string, string[]>([[TOP, top], [TOP_INPUT, input], ...(proxy.ipvs ? [[TOP_OUTPUT, output] as [string, string[]]] : []), ...chains]);
  return { ipsets: ipsetScript(sets), sets: [...sets.keys()], filter, chains: names, bodies, setElements: sets, counts: { pods: node.pods.length, chains: chains.size, rules, sets: sets.size } };
}

/** `ipset restore` lines creating these sets. */
function ipsetScript(sets: Iterable<[string, string[]]>): string {
  const lines = [...sets].flatMap(([name, els]) => [`create ${name} hash:net family inet -exist`, ...els.map((e) => `add ${name} ${e} -exist`)]);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

const sameLines = (a: string[] | undefined, b: string[]) => a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);

/**
 * The restore script from what the last sync left (`was`) to `want`: only the chains whose
 * rules changed are declared (which flushes them) and written again, stale ones flushed and
 * deleted; empty when nothing changed. A label change touches a few chains, not every pod's.
 */
export function iptablesDiff(was: Map<string, string[]>, want: Map<string, string[]>): string {
  const changed = [...want].filter(([name, lines]) => !sameLines(was.get(name), lines));
  const stale = [...was.keys()].filter((name) => !want.has(name));
  if (!changed.length && !stale.length) return '';
  return ['*filter', ...[...changed.map(([n]) => n), ...stale].map((n) => `:${n} - [0:0]`), ...changed.flatMap(([, lines]) => lines), ...stale.map((n) => `-X ${n}`), 'COMMIT', ''].join('\n');
}

/** A head jump as iptables-save prints it. */
const jumpLine = (j: HeadJump) => `-A ${j.chain} ${j.rule.map((w) => (w.includes(' ') ? `"${w}"` : w)).join(' ')}`;

/** The restore lines that put our jumps first in their chains (deleting one that slipped down). */
export function headRepairs(save: string, proxy: NetpolProxyInfo = {}): string[] {
  const out: string[] = [];
  for (const j of headJumps(proxy)) {
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
  /** What the last sync left (chains' rules, set names); undefined: unknown, the next sync is whole. */
  private applied: { bodies: Map<string, string[]>; sets: Set<string> } | undefined;

  constructor(private readonly netns: Netns, private readonly iptables?: IptablesBackend, private readonly proxy: NetpolProxyInfo = {}) {}

  async apply(node: CompiledNode): Promise<Record<string, number>> {
    const r = renderIptables(node, this.proxy);
    const was = this.applied;
    this.applied = undefined; // until this sync is through
    if (was) {
      // Sets are named by their content: new ones made, the chains that changed restored, unused sets destroyed.
      const made = ipsetScript([...r.setElements].filter(([name]) => !was.sets.has(name)));
      if (made) await this.netns.ipsetRestore(made);
      const script = iptablesDiff(was.bodies, r.bodies);
      if (script) await this.netns.iptablesRestore(script, 4, this.iptables);
      const unused = [...was.sets].filter((name) => !r.setElements.has(name));
      if (unused.length) await this.netns.ipsetRestore(unused.map((name) => `destroy ${name}`).join('\n') + '\n');
      this.applied = { bodies: r.bodies, sets: new Set(r.sets) };
      return { ...r.counts, partial: 1 };
    }
    if (r.ipsets) await this.netns.ipsetRestore(r.ipsets);
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    const stale = ourChains(save).filter((c) => !r.chains.includes(c));
    const jumps = headRepairs(save, this.proxy);
    // Stale chains are flushed (declared) with ours, then deleted once nothing jumps to them.
    const script = r.filter.replace(/COMMIT\n$/, [...stale.map((c) => `:${c} - [0:0]`), ...jumps, ...stale.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n'));
    await this.netns.iptablesRestore(script, 4, this.iptables);
    await this.destroySets(r.sets);
    this.applied = { bodies: r.bodies, sets: new Set(r.sets) };
    return { ...r.counts, partial: 0 };
  }

  private async destroySets(keep: string[]): Promise<void> {
    const unused = (await this.netns.ipsetNames()).filter((s) => s.startsWith(PREFIX) && !keep.includes(s));
    if (unused.length) await this.netns.ipsetRestore(unused.map((s) => `destroy ${s}`).join('\n') + '\n');
  }

  async remove(): Promise<void> {
    this.applied = undefined;
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    const chains = ourChains(save);
    const lines = ['*filter'];
    for (const j of ALL_JUMPS) if (save.includes(jumpLine(j))) lines.push(jumpLine(j).replace(/^-A/, '-D'));
    lines.push(...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`), 'COMMIT', '');
    if (lines.length > 3) await this.netns.iptablesRestore(lines.join('\n'), 4, this.iptables);
    await this.destroySets([]);
  }

  /** Our chains there, and our jumps first in FORWARD and INPUT (and OUTPUT: IPVS) (a proxy started later inserts its own at the head). */
  async intact(): Promise<boolean> {
    const save = await this.netns.iptablesSave('filter', 4, this.iptables);
    const ok = ourChains(save).includes(TOP) && headRepairs(save, this.proxy).length === 0;
    if (!ok) this.applied = undefined; // the next sync is whole, and repairs the jumps
    return ok;
  }
}
