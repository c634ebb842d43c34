// kube-proxy's iptables mode as a pure function: the Services' ports and endpoints in, the
// filter and nat tables out as one iptables-restore text, with upstream's chains, names,
// comments and rule shapes (pkg/proxy/iptables/proxier.go), so that `iptables-save` on a
// kubewire node reads like it does on any Kubernetes node.

import { endpointString } from '../../api/endpointslices.ts';
import { categorize, servicePortName, type ServicePortInfo } from '../model.ts';
import { endpointChain, externalChain, localChain, serviceChain } from './names.ts';

export interface IptablesConfig {
  /** The cluster's pod range: traffic from outside it to a ClusterIP is masqueraded (kube-proxy's --cluster-cidr detector). */
  clusterCIDR: string;
  /** The node's pod range (externalTrafficPolicy Local lets pod traffic through). */
  nodePodCIDR?: string;
  /** kube-proxy's --iptables-masquerade-bit (14). */
  masqueradeBit?: number;
}

/** Chains kube-proxy owns in each table; what a sync writes whole. */
export const FILTER_CHAINS = ['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL'];
export const NAT_CHAINS = ['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING'];
/** Prefixes of the per-Service chains: one that exists but is not written any more is deleted. */
export const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP)-[A-Z2-7]{16}$/;

/** The jumps from the built-in chains into kube-proxy's (iptablesJumpChains), ensured once per full sync. */
export const JUMP_RULES: Array<{ table: 'filter' | 'nat'; chain: string; rule: string[] }> = [
  { table: 'filter', chain: 'INPUT', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes externally-visible service portals', '-j', 'KUBE-EXTERNAL-SERVICES'] },
  { table: 'filter', chain: 'FORWARD', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes externally-visible service portals', '-j', 'KUBE-EXTERNAL-SERVICES'] },
  { table: 'filter', chain: 'INPUT', rule: ['-m', 'comment', '--comment', 'kubernetes health check service ports', '-j', 'KUBE-NODEPORTS'] },
  { table: 'filter', chain: 'FORWARD', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'filter', chain: 'OUTPUT', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'filter', chain: 'FORWARD', rule: ['-m', 'comment', '--comment', 'kubernetes forwarding rules', '-j', 'KUBE-FORWARD'] },
  { table: 'filter', chain: 'INPUT', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes load balancer firewall', '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'OUTPUT', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes load balancer firewall', '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'FORWARD', rule: ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'kubernetes load balancer firewall', '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'nat', chain: 'OUTPUT', rule: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'PREROUTING', rule: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'POSTROUTING', rule: ['-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING'] },
];

/** iptables-save quotes a comment only when it has to. */
function comment(text: string): string {
  return /[\s"]/.test(text) ? `-m comment --comment "${text.replace(/"/g, '\\"')}"` : `-m comment --comment ${text}`;
}

/** Go's fmt.Sprintf("%0.10f", p). */
function probability(p: number): string {
  return p.toFixed(10);
}

export interface RuleSet {
  /** The filter table: kube-proxy's chains, declarations first. */
  filter: string[];
  /** nat's top-level chains (declarations first). */
  natTop: string[];
  /** Each Service port's own chains (SVC, SVL, EXT, SEP) by name, under its key. */
  chainNames: Map<string, string[]>;
  /** Those chains' rules (declaration first) for the keys asked for: all, or the changed ones. */
  serviceChains: Map<string, string[][]>;
  /** How many rules all per-Service chains hold. */
  serviceRules: number;
}

/** Every chain the nat table should hold (to find stale ones). */
export function natChains(rules: RuleSet): Set<string> {
  const out = new Set(NAT_CHAINS);
  for (const names of rules.chainNames.values()) for (const c of names) out.add(c);
  return out;
}

/** The key under which a Service port's chains are kept: "ns/name:port/protocol". */
export function ownerKey(sp: ServicePortInfo): string {
  return `${servicePortName(sp)}/${sp.protocol}`;
}

const chainOf = (line: string) => (line.startsWith(':') ? line.slice(1).split(' ')[0]! : line.split(' ')[1]!);

/** The whole nat table as iptables-save lists it: every declaration, then every rule. */
export function natTable(rules: RuleSet): string[] {
  const blocks = [...rules.serviceChains.values()].flat();
  const top = rules.natTop;
  return [...top.filter((l) => l.startsWith(':')), ...blocks.map((b) => b[0]!), ...top.filter((l) => !l.startsWith(':')), ...blocks.flatMap((b) => b.slice(1))];
}

/** How many rules each table holds (kube-proxy's sync_proxy_rules_iptables_total). */
export function ruleCounts(rules: RuleSet): { filter: number; nat: number } {
  const nat = rules.natTop.filter((l) => l.startsWith('-A')).length + rules.serviceRules;
  return { filter: rules.filter.filter((l) => l.startsWith('-A')).length, nat };
}

/** One Service port's share of the ruleset; a pure function of the port, so it can be kept while the port is unchanged. */
export interface PortRules {
  /** Its rules in filter's KUBE-SERVICES and KUBE-EXTERNAL-SERVICES. */
  filter: string[];
  external: string[];
  /** Its rules in nat's KUBE-SERVICES and KUBE-NODEPORTS. */
  natServices: string[];
  natNodePorts: string[];
  /** Its own chains (SVC, SVL, EXT, SEP), each declaration first. */
  chains: string[][];
}

/** What is kept of a port's rules between syncs: all but its chains' rules (regenerated when it changes, or for a full sync). */
export type KeptRules = Omit<PortRules, 'chains'> & { chainNames: string[]; chainRules: number };


/** The rules of one Service port (kube-proxy's per-service loop body in syncProxyRules). */
export function portRules(sp: ServicePortInfo, cfg: IptablesConfig): PortRules {
  const out: PortRules = { filter: [], external: [], natServices: [], natNodePorts: [], chains: [] };
  const name = servicePortName(sp);
  const proto = sp.protocol;
  const match = `-m ${proto} -p ${proto}`;
  const svcChain = serviceChain(name, proto);
  const svlChain = localChain(name, proto);
  const extChain = externalChain(name, proto);
  const { cluster: ready, local } = categorize(sp);
  const clusterEndpoints = sp.internalLocal ? local : ready;
  const hasExternal = sp.nodePort !== undefined || sp.externalIPs.length > 0;
  const externalEndpoints = sp.externalLocal ? local : ready;
  // With endpoints (below), KUBE-SVC serves cluster traffic unless internalTrafficPolicy is
  // Local, and external traffic always (directly, or for pods and the node under eTP Local);
  // KUBE-SVL holds the local endpoints when a Local policy needs them.
  const usesSvc = !sp.internalLocal || hasExternal;
  const usesSvl = local.length > 0 && (sp.internalLocal || (hasExternal && sp.externalLocal));

  // ClusterIP.
  if (sp.clusterIP) {
    const dst = `-d ${sp.clusterIP} --dport ${sp.port}`;
    if (clusterEndpoints.length) out.natServices.push(`-A KUBE-SERVICES ${comment(`${name} cluster IP`)} ${match} ${dst} -j ${sp.internalLocal ? svlChain : svcChain}`);
    else if (ready.length === 0) out.filter.push(`-A KUBE-SERVICES ${comment(`${name} has no endpoints`)} ${match} ${dst} -j REJECT`);
    else out.filter.push(`-A KUBE-SERVICES ${comment(`${name} has no local endpoints`)} ${match} ${dst} -j DROP`);
  }

  // External addresses: externalIPs and the NodePort go through KUBE-EXT.
  if (hasExternal) {
    if (externalEndpoints.length || (sp.externalLocal && ready.length)) {
      for (const ip of sp.externalIPs) out.natServices.push(`-A KUBE-SERVICES ${comment(`${name} external IP`)} ${match} -d ${ip} --dport ${sp.port} -j ${extChain}`);
      if (sp.nodePort) out.natNodePorts.push(`-A KUBE-NODEPORTS ${comment(name)} ${match} --dport ${sp.nodePort} -j ${extChain}`);
    }
    if (!ready.length) {
      for (const ip of sp.externalIPs) out.external.push(`-A KUBE-EXTERNAL-SERVICES ${comment(`${name} has no endpoints`)} ${match} -d ${ip} --dport ${sp.port} -j REJECT`);
      if (sp.nodePort) out.external.push(`-A KUBE-EXTERNAL-SERVICES ${comment(`${name} has no endpoints`)} -m addrtype --dst-type LOCAL ${match} --dport ${sp.nodePort} -j REJECT`);
    } else if (sp.externalLocal && !local.length) {
      for (const ip of sp.externalIPs) out.external.push(`-A KUBE-EXTERNAL-SERVICES ${comment(`${name} has no local endpoints`)} ${match} -d ${ip} --dport ${sp.port} -j DROP`);
      if (sp.nodePort) out.external.push(`-A KUBE-EXTERNAL-SERVICES ${comment(`${name} has no local endpoints`)} -m addrtype --dst-type LOCAL ${match} --dport ${sp.nodePort} -j DROP`);
    }
  }

  if (!ready.length) return out;
  const chain = (c: string, rules: string[]) => out.chains.push([`:${c} - [0:0]`, ...rules]);

  if (hasExternal && (externalEndpoints.length || sp.externalLocal)) {
    const ext: string[] = [];
    if (!sp.externalLocal) {
      ext.push(`-A ${extChain} ${comment(`masquerade traffic for ${name} external destinations`)} -j KUBE-MARK-MASQ`, `-A ${extChain} -j ${svcChain}`);
    } else {
      // Local policy: pods and the node itself may use any endpoint; outside clients only local ones, with their address kept.
      if (cfg.nodePodCIDR) ext.push(`-A ${extChain} ${comment(`pod traffic for ${name} external destinations`)} -s ${cfg.nodePodCIDR} -j ${svcChain}`);
      ext.push(`-A ${extChain} ${comment(`masquerade LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
      ext.push(`-A ${extChain} ${comment(`route LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j ${svcChain}`);
      if (local.length) ext.push(`-A ${extChain} -j ${svlChain}`);
    }
    chain(extChain, ext);
  }

  // Each endpoint's chain name, hashed once.
  const epText = new Map(ready.map((ep) => [ep, endpointString(ep)]));
  const sepNames = new Map(ready.map((ep) => [ep, endpointChain(name, proto, epText.get(ep)!)]));
  const nameComment = comment(name); // the same on every endpoint chain rule
  const balance = (c: string, eps: typeof ready, masq: boolean) => {
    const rules: string[] = [];
    if (masq && sp.clusterIP) rules.push(`-A ${c} ${comment(`${name} cluster IP`)} ${match} -d ${sp.clusterIP} --dport ${sp.port} ! -s ${cfg.clusterCIDR} -j KUBE-MARK-MASQ`);
    if (sp.affinitySeconds !== undefined) {
      for (const ep of eps) {
        const sep = sepNames.get(ep)!;
        rules.push(`-A ${c} ${comment(`${name} -> ${epText.get(ep)}`)} -m recent --name ${sep} --rcheck --seconds ${sp.affinitySeconds} --reap -j ${sep}`);
      }
    }
    eps.forEach((ep, i) => {
      const sep = sepNames.get(ep)!;
      const random = i < eps.length - 1 ? ` -m statistic --mode random --probability ${probability(1 / (eps.length - i))}` : '';
      rules.push(`-A ${c} ${comment(`${name} -> ${epText.get(ep)}`)}${random} -j ${sep}`);
    });
    chain(c, rules);
  };
  if (usesSvc) balance(svcChain, ready, true);
  if (usesSvl) balance(svlChain, local, false);

  for (const ep of usesSvc ? ready : local) {
    const sep = sepNames.get(ep)!;
    const affinity = sp.affinitySeconds !== undefined ? ` -m recent --name ${sep} --set` : '';
    chain(sep, [
      `-A ${sep} ${nameComment} -s ${ep.ip} -j KUBE-MARK-MASQ`,
      `-A ${sep} ${nameComment}${affinity} ${match} -j DNAT --to-destination ${epText.get(ep)}`,
    ]);
  }
  return out;
}

/**
 * Builds the ruleset: the top-level chains whole, and the per-Service chains of the ports
 * whose key is in `only` (all without it). With `memo`, a port object seen before reuses
 * what was kept of it: the proxier hands over the very same object while a Service is
 * unchanged, so a partial sync at 10k Services generates text for the changed ones only,
 * and the per-Service chains' text (most of the ruleset) is not held between syncs.
 */
export function buildRules(ports: ServicePortInfo[], cfg: IptablesConfig, memo?: WeakMap<ServicePortInfo, KeptRules>, only?: ReadonlySet<string>): RuleSet {
  const mark = `0x${(1 << (cfg.masqueradeBit ?? 14)).toString(16)}`;
  const filterRules: string[] = [];
  const externalRules: string[] = [];
  const natServices: string[] = [];
  const natNodePorts: string[] = [];
  const serviceChains = new Map<string, string[][]>();
  const chainNames = new Map<string, string[]>();
  let serviceRules = 0;

  for (const sp of ports) {
    const owner = ownerKey(sp);
    const wanted = !only || only.has(owner);
    let r: KeptRules | undefined = wanted ? undefined : memo?.get(sp);
    if (!r) {
      const full = portRules(sp, cfg);
      const { chains, ...rest } = full;
      r = { ...rest, chainNames: chains.map((c) => chainOf(c[0]!)), chainRules: chains.reduce((n, c) => n + c.length - 1, 0) };
      memo?.set(sp, r);
      if (wanted && chains.length) serviceChains.set(owner, [...(serviceChains.get(owner) ?? []), ...chains]);
    }
    for (const l of r.filter) filterRules.push(l);
    for (const l of r.external) externalRules.push(l);
    for (const l of r.natServices) natServices.push(l);
    for (const l of r.natNodePorts) natNodePorts.push(l);
    serviceRules += r.chainRules;
    if (!r.chainNames.length) continue;
    const before = chainNames.get(owner); // two ports with one name and protocol: an invalid Service, kept as before
    chainNames.set(owner, before ? [...before, ...r.chainNames] : r.chainNames);
  }

  natServices.push(`-A KUBE-SERVICES ${comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`);
  const filter = [
    ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`),
    ...filterRules,
    ...externalRules,
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A KUBE-FORWARD ${comment('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`,
    `-A KUBE-FORWARD ${comment('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  ];
  const natTop = [
    ...NAT_CHAINS.map((c) => `:${c} - [0:0]`),
    ...natServices,
    ...natNodePorts,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`,
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    `-A KUBE-POSTROUTING ${comment('kubernetes service traffic requiring SNAT')} -j MASQUERADE`,
  ];
  return { filter, natTop, chainNames, serviceChains, serviceRules };
}

export interface RestoreExtras {
  /** Chains to declare in both tables (the canary). */
  declare?: string[];
  /** Rules after all declarations, per table (the jumps from built-in chains, as -I). */
  filter?: string[];
  nat?: string[];
}

/**
 * The iptables-restore input: the filter table and nat's top-level chains whole, the given
 * per-Service chain blocks, and `stale` chains flushed and deleted.
 */
function render(rules: RuleSet, blocks: string[][], stale: string[], extras: RestoreExtras): string {
  const natTop = rules.natTop;
  const declare = (extras.declare ?? []).map((c) => `:${c} - [0:0]`);
  return [
    '*filter',
    ...declare,
    ...rules.filter.filter((l) => l.startsWith(':')),
    ...(extras.filter ?? []),
    ...rules.filter.filter((l) => !l.startsWith(':')),
    'COMMIT',
    '*nat',
    ...declare,
    ...natTop.filter((l) => l.startsWith(':')),
    ...blocks.map((b) => b[0]!),
    ...stale.map((c) => `:${c} - [0:0]`),
    ...(extras.nat ?? []),
    ...natTop.filter((l) => !l.startsWith(':')),
    ...blocks.flatMap((b) => b.slice(1)),
    ...stale.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}

/** A full sync: every chain, and `staleChains` (found in the kernel, not in `rules`: the caller picks them) deleted. */
export function restoreText(rules: RuleSet, staleChains: string[], extras: RestoreExtras = {}): string {
  return render(rules, [...rules.serviceChains.values()].flat(), staleChains, extras);
}

/**
 * A partial sync (KEP-3453): the top-level chains whole (one rule per Service port, cheap),
 * but of the per-Service chains only those of `changed` Service ports; chains they no longer
 * have (and those of removed ports) are deleted. The rest stays as the kernel holds it.
 */
export function partialRestoreText(rules: RuleSet, changed: ReadonlySet<string>, previous: ReadonlyMap<string, string[]>, extras: RestoreExtras = {}): string {
  const blocks = [...changed].flatMap((k) => rules.serviceChains.get(k) ?? []);
  const stale = [...changed].flatMap((k) => (previous.get(k) ?? []).filter((c) => !rules.chainNames.get(k)?.includes(c)));
  return render(rules, blocks, stale, extras);
}
