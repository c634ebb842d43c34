// NetworkPolicy (networking.k8s.io/v1) as a pure model: from the policies, pods and
// namespaces it says (a) which pods are isolated for ingress and egress and by which
// policies, (b) per node, what each local isolated pod allows, compiled to address sets,
// CIDR intervals and port ranges that the kernel backends (nftables, iptables + ipset) only
// render, and (c) whether one connection is allowed: the truth tables upstream's e2e and
// Cyclonus compute. No I/O; every decision here is tested on data (test/netpol-model.test.ts).
//
// Semantics (../shared/reference/network-policy.md §1): isolation is per pod and direction;
// allowed = union of every rule of every policy selecting the pod; a connection needs the
// source's egress and the destination's ingress; missing `from`/`to`/`ports` = any; ipBlock
// matches by address (pod IPs included), except = holes; named ports resolve on the
// destination pod; hostNetwork pods are node traffic (never selected, never matched by
// selectors); traffic from a pod's own node is always allowed in.

import { matches } from '../api/labels.ts';
import type { ContainerPort, IPBlock, Namespace, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, Pod } from '../api/types.ts';
import { firstIP, formatIP, lastIP, parsePrefix, tryParseIP, type IP } from '../netaddr/ip.ts';

// --- networking.k8s.io/v1 shapes: the API's own (src/api/types.ts), under the model's names ---

export type { IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort };
export type Protocol = NonNullable<NetworkPolicyPort['protocol']>;
export type NetworkPolicySpec = NetworkPolicy['spec'];
export type NetworkPolicyObject = NetworkPolicy;

export type Direction = 'ingress' | 'egress';

/** The policy types as upstream defaults them: [Ingress], plus Egress when there are egress rules. */
export function policyTypes(spec: NetworkPolicySpec): Set<Direction> {
  let types = typesMemo.get(spec);
  if (!types) {
    types = spec.policyTypes?.length ? new Set(spec.policyTypes.map((t) => (t === 'Egress' ? 'egress' : 'ingress'))) : new Set<Direction>(spec.egress?.length ? ['ingress', 'egress'] : ['ingress']);
    typesMemo.set(spec, types);
  }
  return types;
}

/** Policy objects are not changed in place (informers replace them), so a spec's types are computed once. */
const typesMemo = new WeakMap<NetworkPolicySpec, Set<Direction>>();

// --- the world the model reads ---

/** A pod as policy sees it: identity, labels, address, node and declared ports. */
export interface PodInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  node?: string;
  ports: ContainerPort[];
}

/** An end of a connection: a pod, or an address outside the pod network (a node, the world). */
export type Endpoint = { pod: PodInfo } | { ip: string };

export interface PolicyWorld {
  policies: NetworkPolicyObject[];
  pods: PodInfo[];
  /** Namespace name -> labels (kubernetes.io/metadata.name is added when missing, as the API server sets it). */
  namespaces: Map<string, Record<string, string>>;
}

/** Pods with an address that policy can see (hostNetwork pods are node traffic; pods without an IP have no packets). */
export function podInfo(pod: Pod): PodInfo | undefined {
  const ip = pod.status?.podIP;
  if (!ip || pod.spec.hostNetwork === true) return undefined;
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return undefined;
  return {
    namespace: pod.metadata.namespace ?? 'default',
    name: pod.metadata.name,
    labels: pod.metadata.labels ?? {},
    ip,
    node: pod.spec.nodeName,
    ports: pod.spec.containers.flatMap((c) => c.ports ?? []),
  };
}

export function worldOf(policies: NetworkPolicyObject[], pods: Pod[], namespaces: Namespace[]): PolicyWorld {
  return {
    policies,
    pods: pods.map(podInfo).filter((p): p is PodInfo => !!p),
    namespaces: new Map(namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}])),
  };
}

function namespaceLabels(world: PolicyWorld, ns: string): Record<string, string> {
  return { 'kubernetes.io/metadata.name': ns, ...(world.namespaces.get(ns) ?? {}) };
}

export const policyKey = (p: NetworkPolicyObject): string => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;

/** Whether `policy` selects `pod` (same namespace, podSelector matches; `{}` selects all). */
export function selects(policy: NetworkPolicyObject, pod: PodInfo): boolean {
  return (policy.metadata.namespace ?? 'default') === pod.namespace && matches(policy.spec.podSelector ?? {}, pod.labels);
}

// --- addresses as intervals (ipBlock with excepts) ---

/** An inclusive range of IPv4/IPv6 addresses of one family. */
export interface Interval {
  family: 4 | 6;
  first: bigint;
  last: bigint;
}

/** `cidr` minus its excepts, as disjoint sorted intervals. */
export function blockIntervals(block: IPBlock): Interval[] {
  const p = parsePrefix(block.cidr);
  let out: Interval[] = [{ family: p.ip.family, first: firstIP(p).value, last: lastIP(p).value }];
  for (const e of block.except ?? []) {
    const x = parsePrefix(e);
    if (x.ip.family !== p.ip.family) continue;
    const [a, b] = [firstIP(x).value, lastIP(x).value];
    out = out.flatMap((iv) => {
      if (b < iv.first || a > iv.last) return [iv];
      const parts: Interval[] = [];
      if (a > iv.first) parts.push({ ...iv, last: a - 1n });
      if (b < iv.last) parts.push({ ...iv, first: b + 1n });
      return parts;
    });
  }
  return out;
}

/** Sorted, with overlapping or adjacent intervals merged. */
export function mergeIntervals(ivs: Interval[]): Interval[] {
  const sorted = [...ivs].sort((a, b) => a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.family === iv.family && iv.first <= prev.last + 1n) {
      if (iv.last > prev.last) prev.last = iv.last;
    } else out.push({ ...iv });
  }
  return out;
}

export function formatInterval(iv: Interval): string {
  const f = (v: bigint) => formatIP({ family: iv.family, value: v } as IP);
  return iv.first === iv.last ? f(iv.first) : `${f(iv.first)}-${f(iv.last)}`;
}

/** Elements by a compiled rule's (shared) address lists: a policy's peers are rendered once, not once per pod it selects. */
const elementMemo = new WeakMap<string[], WeakMap<Interval[], string[]>>();

/** A peer set's IPv4 addresses as merged interval strings ("10.0.0.1", "10.0.0.0-10.0.0.127"), what both backends' sets hold. */
export function ipv4Elements(ips: string[], intervals: Interval[]): string[] {
  let byIntervals = elementMemo.get(ips);
  if (!byIntervals) elementMemo.set(ips, (byIntervals = new WeakMap()));
  let hit = byIntervals.get(intervals);
  if (!hit) {
    const all: Interval[] = [...intervals];
    for (const ip of ips) {
      const a = tryParseIP(ip);
      if (a) all.push({ family: a.family, first: a.value, last: a.value });
    }
    byIntervals.set(intervals, (hit = mergeIntervals(all.filter((iv) => iv.family === 4)).map(formatInterval)));
  }
  return hit;
}

function inBlock(block: IPBlock, ip: string): boolean {
  const a = tryParseIP(ip);
  if (!a) return false;
  return blockIntervals(block).some((iv) => iv.family === a.family && a.value >= iv.first && a.value <= iv.last);
}

// --- peers and ports ---

/** Whether one peer item matches the endpoint, for a policy in namespace `policyNs`. */
export function peerMatches(world: PolicyWorld, peer: NetworkPolicyPeer, policyNs: string, end: Endpoint): boolean {
  if (peer.ipBlock) return inBlock(peer.ipBlock, 'pod' in end ? end.pod.ip : end.ip);
  if (!peer.podSelector && !peer.namespaceSelector) return false; // invalid (validation refuses it)
  if (!('pod' in end)) return false; // selectors only ever match pods
  const pod = end.pod;
  if (peer.namespaceSelector) {
    if (!matches(peer.namespaceSelector, namespaceLabels(world, pod.namespace))) return false;
  } else if (pod.namespace !== policyNs) return false;
  return !peer.podSelector || matches(peer.podSelector, pod.labels);
}

/** A port range of one protocol; first/last undefined: every port of it. */
export interface PortRange {
  protocol: Protocol;
  first?: number;
  last?: number;
}

/** The numeric port (range) a policy port means on `dst`'s pod; undefined when a named port does not resolve there. */
export function resolvePort(pp: NetworkPolicyPort, dst: PodInfo | undefined): PortRange | undefined {
  const protocol = pp.protocol ?? 'TCP';
  if (pp.port === undefined) return { protocol };
  if (typeof pp.port === 'number') return { protocol, first: pp.port, last: pp.endPort ?? pp.port };
  if (/^[0-9]+$/.test(pp.port)) return { protocol, first: Number(pp.port), last: pp.endPort ?? Number(pp.port) };
  const cp = dst?.ports.find((c) => c.name === pp.port && (c.protocol ?? 'TCP') === protocol);
  return cp ? { protocol, first: cp.containerPort, last: cp.containerPort } : undefined;
}

function portMatches(ports: NetworkPolicyPort[] | undefined, dst: PodInfo | undefined, port: number, proto: Protocol): boolean {
  if (!ports?.length) return true;
  return ports.some((pp) => {
    const r = resolvePort(pp, dst);
    return !!r && r.protocol === proto && (r.first === undefined || (port >= r.first && port <= r.last!));
  });
}

// --- isolation and verdicts ---

/** The policies (ns/name) that isolate `pod` in `dir`; empty: not isolated. */
export function isolatedBy(world: PolicyWorld, pod: PodInfo, dir: Direction): string[] {
  return world.policies.filter((p) => policyTypes(p.spec).has(dir) && selects(p, pod)).map(policyKey).sort();
}

/** One direction's answer for a connection: allowed or not, and why. */
export interface DirectionVerdict {
  /** Policies isolating the pod in this direction (empty: not isolated, so allowed). */
  isolatedBy: string[];
  allowed: boolean;
  /** The first rule that allows it: "ns/policy", its index in ingress/egress. */
  allowedBy?: { policy: string; rule: number };
}

export interface Verdict {
  allowed: boolean;
  /** The source pod's egress (undefined when the source is not a pod). */
  egress?: DirectionVerdict;
  /** The destination pod's ingress (undefined when the destination is not a pod). */
  ingress?: DirectionVerdict;
}

function directionVerdict(world: PolicyWorld, self: PodInfo, dir: Direction, peer: Endpoint, port: number, proto: Protocol): DirectionVerdict {
  const isolating = world.policies.filter((p) => policyTypes(p.spec).has(dir) && selects(p, self)).sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
  if (!isolating.length) return { isolatedBy: [], allowed: true };
  const dst = dir === 'ingress' ? self : 'pod' in peer ? peer.pod : undefined;
  for (const p of isolating) {
    const ns = p.metadata.namespace ?? 'default';
    const rules = dir === 'ingress' ? (p.spec.ingress ?? []).map((r) => ({ ports: r.ports, peers: r.from })) : (p.spec.egress ?? []).map((r) => ({ ports: r.ports, peers: r.to }));
    for (const [i, r] of rules.entries()) {
      const peerOk = !r.peers?.length || r.peers.some((x) => peerMatches(world, x, ns, peer));
      if (peerOk && portMatches(r.ports, dst, port, proto)) return { isolatedBy: isolating.map(policyKey), allowed: true, allowedBy: { policy: policyKey(p), rule: i } };
    }
  }
  return { isolatedBy: isolating.map(policyKey), allowed: false };
}

/**
 * Whether a new connection from `src` to `dst` on `port`/`proto` is allowed (after DNAT:
 * `dst` is the backend pod and `port` its target port). `fromOwnNode`: the source is the
 * destination pod's own node (always allowed in).
 */
export function verdict(world: PolicyWorld, src: Endpoint, dst: Endpoint, port: number, proto: Protocol, fromOwnNode = false): Verdict {
  const egress = 'pod' in src ? directionVerdict(world, src.pod, 'egress', dst, port, proto) : undefined;
  const ingress = 'pod' in dst && !fromOwnNode ? directionVerdict(world, dst.pod, 'ingress', src, port, proto) : undefined;
  return { allowed: (egress?.allowed ?? true) && (ingress?.allowed ?? true), egress, ingress };
}

export function allowed(world: PolicyWorld, src: Endpoint, dst: Endpoint, port: number, proto: Protocol = 'TCP'): boolean {
  return verdict(world, src, dst, port, proto).allowed;
}

// --- the compiled form the backends render ---

/** Addresses a rule admits: every address, or pod IPs and intervals. */
export type PeerSet = { any: true } | { any: false; ips: string[]; intervals: Interval[] };

/** One allow clause: a peer set and the ports (undefined: any port and protocol). */
export interface CompiledRule {
  /** "ns/policy rule N" (N its index in the policy's ingress or egress list). */
  comment: string;
  peers: PeerSet;
  ports?: PortRange[];
}

export interface CompiledDirection {
  isolatedBy: string[];
  rules: CompiledRule[];
}

export interface CompiledPod {
  namespace: string;
  name: string;
  ip: string;
  ingress?: CompiledDirection;
  egress?: CompiledDirection;
}

/** What one node enforces: its local pods that some policy isolates, in a stable order. */
export interface CompiledNode {
  pods: CompiledPod[];
}

interface Resolver {
  world: PolicyWorld;
  /** Memo of a peer list's pod IPs and intervals, keyed by policy namespace + JSON. */
  peers: Map<string, ResolvedPeers>;
  /** Pods by namespace: a podSelector alone looks at one namespace, not at every pod. */
  byNs: Map<string, PodInfo[]>;
}

function resolver(world: PolicyWorld): Resolver {
  const byNs = new Map<string, PodInfo[]>();
  for (const pod of world.pods) {
    let l = byNs.get(pod.namespace);
    if (!l) byNs.set(pod.namespace, (l = []));
    l.push(pod);
  }
  return { world, peers: new Map(), byNs };
}

/** The pods one selector peer matches: the namespaces first (the policy's own, or those its namespaceSelector picks), then their pods. */
function selectorPeerPods(rz: Resolver, peer: NetworkPolicyPeer, ns: string): PodInfo[] {
  const namespaces = peer.namespaceSelector ? [...rz.byNs.keys()].filter((n) => matches(peer.namespaceSelector, namespaceLabels(rz.world, n))) : [ns];
  return namespaces.flatMap((n) => (rz.byNs.get(n) ?? []).filter((pod) => !peer.podSelector || matches(peer.podSelector, pod.labels)));
}

/** A peer list resolved: its pods, their IPs sorted (once: every pod a policy selects shares them), its intervals. */
interface ResolvedPeers {
  pods: PodInfo[];
  ips: string[];
  intervals: Interval[];
}

function peerPods(rz: Resolver, peers: NetworkPolicyPeer[], ns: string): ResolvedPeers {
  const key = `${ns}\0${JSON.stringify(peers)}`;
  let hit = rz.peers.get(key);
  if (hit) return hit;
  const selectorPeers = peers.filter((p) => !p.ipBlock && (p.podSelector || p.namespaceSelector));
  const pods = [...new Set(selectorPeers.flatMap((p) => selectorPeerPods(rz, p, ns)))];
  const intervals = mergeIntervals(peers.flatMap((p) => (p.ipBlock ? blockIntervals(p.ipBlock) : [])));
  rz.peers.set(key, (hit = { pods, ips: sortIPs(pods.map((p) => p.ip)), intervals }));
  return hit;
}

/** Distinct addresses in numeric order (each parsed once). */
function sortIPs(ips: Iterable<string>): string[] {
  const keyed = [...new Set(ips)].map((ip) => [tryParseIP(ip)?.value ?? 0n, ip] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return keyed.map((k) => k[1]);
}

const rangeKey = (r: PortRange): string => `${r.protocol}:${r.first ?? ''}-${r.last ?? ''}`;

/**
 * The clauses of one rule for `self`. Numeric ports apply to every peer; a named port
 * resolves on the destination: for ingress on `self`, for egress on each peer pod (so one
 * clause per resolved number, holding only the pods that resolve it, and never an ipBlock).
 */
function compileRule(rz: Resolver, self: PodInfo, dir: Direction, ns: string, comment: string, ports: NetworkPolicyPort[] | undefined, peers: NetworkPolicyPeer[] | undefined): CompiledRule[] {
  const anyPeer = !peers?.length;
  const resolved = anyPeer ? { pods: rz.world.pods, ips: [], intervals: [] } : peerPods(rz, peers, ns);
  const set = (pods: PodInfo[], withIntervals: boolean): PeerSet => {
    if (anyPeer && withIntervals) return { any: true };
    // The resolved list's own sorted IPs (shared by every pod the policy selects), or a named port's subset.
    return { any: false, ips: pods === resolved.pods && !anyPeer ? resolved.ips : sortIPs(pods.map((p) => p.ip)), intervals: withIntervals ? resolved.intervals : [] };
  };
  if (!ports?.length) return [{ comment, peers: set(resolved.pods, true) }];
  const named = (pp: NetworkPolicyPort) => typeof pp.port === 'string' && !/^[0-9]+$/.test(pp.port);
  const out: CompiledRule[] = [];
  const plain: PortRange[] = [];
  for (const pp of ports) {
    if (!named(pp)) plain.push(resolvePort(pp, undefined)!);
    else if (dir === 'ingress') {
      const r = resolvePort(pp, self);
      if (r) plain.push(r);
    }
  }
  if (plain.length) out.push({ comment, peers: set(resolved.pods, true), ports: dedupe(plain) });
  if (dir === 'egress') {
    // Group the peer pods by the number each named port resolves to on them.
    const byRange = new Map<string, { range: PortRange; pods: PodInfo[] }>();
    for (const pp of ports.filter(named)) {
      for (const pod of resolved.pods) {
        const r = resolvePort(pp, pod);
        if (!r) continue;
        const k = rangeKey(r);
        let g = byRange.get(k);
        if (!g) byRange.set(k, (g = { range: r, pods: [] }));
        g.pods.push(pod);
      }
    }
    for (const g of [...byRange.values()].sort((a, b) => rangeKey(a.range).localeCompare(rangeKey(b.range)))) out.push({ comment, peers: set(g.pods, false), ports: [g.range] });
  }
  return out;
}

function dedupe(ranges: PortRange[]): PortRange[] {
  const m = new Map(ranges.map((r) => [rangeKey(r), r]));
  return [...m.values()];
}

function compileDirection(rz: Resolver, pod: PodInfo, dir: Direction, policies: NetworkPolicyObject[]): CompiledDirection | undefined {
  const isolating = policies.filter((p) => policyTypes(p.spec).has(dir) && selects(p, pod)).sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
  if (!isolating.length) return undefined;
  const rules: CompiledRule[] = [];
  for (const p of isolating) {
    const ns = p.metadata.namespace ?? 'default';
    const list = dir === 'ingress' ? (p.spec.ingress ?? []).map((r) => [r.ports, r.from] as const) : (p.spec.egress ?? []).map((r) => [r.ports, r.to] as const);
    for (const [i, [ports, peers]] of list.entries()) rules.push(...compileRule(rz, pod, dir, ns, `${policyKey(p)} ${dir} rule ${i}`, ports, peers));
  }
  return { isolatedBy: isolating.map(policyKey), rules };
}

/** What `node` enforces (its pods isolated in some direction); every pod when `node` is undefined. */
export function compileNode(world: PolicyWorld, node: string | undefined): CompiledNode {
  const rz = resolver(world);
  const byNs = new Map<string, NetworkPolicyObject[]>();
  for (const p of world.policies) {
    const ns = p.metadata.namespace ?? 'default';
    let l = byNs.get(ns);
    if (!l) byNs.set(ns, (l = []));
    l.push(p);
  }
  const pods: CompiledPod[] = [];
  for (const pod of world.pods) {
    if (node !== undefined && pod.node !== node) continue;
    const policies = byNs.get(pod.namespace);
    if (!policies) continue;
    const ingress = compileDirection(rz, pod, 'ingress', policies);
    const egress = compileDirection(rz, pod, 'egress', policies);
    if (ingress || egress) pods.push({ namespace: pod.namespace, name: pod.name, ip: pod.ip, ingress, egress });
  }
  pods.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  return { pods };
}

/** Whether the compiled form allows a packet: what the rendered rules do, for tests of the compiler against `allowed`. */
export function compiledAllows(dir: CompiledDirection | undefined, peerIP: string, port: number, proto: Protocol): boolean {
  if (!dir) return true;
  const a = tryParseIP(peerIP);
  return dir.rules.some((r) => {
    const peerOk = r.peers.any || r.peers.ips.includes(peerIP) || (!!a && r.peers.intervals.some((iv) => iv.family === a.family && a.value >= iv.first && a.value <= iv.last));
    const portOk = !r.ports || r.ports.some((p) => p.protocol === proto && (p.first === undefined || (port >= p.first && port <= p.last!)));
    return peerOk && portOk;
  });
}
