// `kubewire trace` against a cluster: FROM and TO resolved against its objects (pure), the
// namespaces a probe may cross, the kernel lookups the explanation asks for, and the matrix.

import type { Ingress, Namespace, Pod, Service } from '../api/types.ts';
import { nodeMAC, podNetnsName, podRange, UNDERLAY, VPC, VXLAN, vtep, type ClusterPlan } from '../cluster/plan.ts';
import { parseCheckRule, sourceDropReason } from '../vpc/source-check.ts';
import { contains, parsePrefix, tryParseIP } from '../netaddr/ip.ts';
import { netnsPath, type Dataplane } from '../dataplane/port.ts';
import { matches } from '../api/labels.ts';
import { explain, placeLabel, type Fabric, type Lookups, type Trace } from './explain.ts';
import { podInfo, verdict, worldOf, type NetworkPolicyObject, type PodInfo, type PolicyWorld } from '../netpol/model.ts';
import { allowanceReason, endpointOf, expectedMatrix, parsePolicyRule, policyProtocol, ruleNote, type ExpectedCell, type PolicyTarget } from './policy.ts';
import type { PacketHeader } from './events.ts';
import { observe, type Place, type Protocol, type ProbeSpec } from './observe.ts';

import { TraceError, type TraceRequest } from './input.ts';

export { parseTraceRequest, TraceError, type RawTraceRequest, type TraceRequest } from './input.ts';
export { Interrupted } from './observe.ts';

export interface ClusterView {
  plan: ClusterPlan;
  pods: Pod[];
  services: Service[];
  /** For traces through the ingress: the Services they lead to are the candidates. */
  ingresses?: Ingress[];
  /** NetworkPolicies and namespaces: a policy's drop is explained, and the matrix gets the expected table. */
  policies?: NetworkPolicyObject[];
  namespaces?: Namespace[];
}

/** What the policies are judged against; undefined when the view has no policies (nothing isolates anything). */
export function policyWorld(view: ClusterView): PolicyWorld | undefined {
  return view.policies?.length ? worldOf(view.policies, view.pods, view.namespaces ?? []) : undefined;
}

/** The places every trace watches: the underlay (its bridge and router), every node, the external client. */
export function infrastructure(plan: ClusterPlan): Place[] {
  return [
    { kind: 'network', name: 'network', netns: netnsPath(plan.networkNetns) },
    { kind: 'external', name: 'external', netns: netnsPath(plan.externalNetns) },
    ...plan.nodes.map((n): Place => ({ kind: 'node', name: n.name, netns: netnsPath(n.netns) })),
  ];
}

export function podPlace(plan: ClusterPlan, pod: Pod): Place | undefined {
  const node = plan.nodes.find((n) => n.name === pod.spec.nodeName);
  if (!node || pod.status?.phase !== 'Running' || !pod.status.podIP) return undefined;
  return { kind: 'pod', name: `${pod.metadata.namespace}/${pod.metadata.name}`, netns: netnsPath(podNetnsName(plan.spec.name, node.name, { namespace: pod.metadata.namespace!, name: pod.metadata.name })), node: node.name };
}

/** Where a place's devices lead (the cluster's shape: pods on their node's cni0, nodes and the client on the underlay). */
export function clusterFabric(plan: ClusterPlan, world?: PolicyWorld): Fabric {
  const [network] = infrastructure(plan);
  return {
    segment(place, dev) {
      // vpc mode: a pod's eth0 is one end of a point-to-point pair, with no bridge between.
      if (place.kind === 'pod' && dev === 'eth0' && plan.spec.mode !== 'vpc') {
        const node = plan.nodes.find((n) => n.name === place.node)!;
        return { place: { kind: 'node', name: node.name, netns: netnsPath(node.netns) }, bridge: 'cni0' };
      }
      if ((place.kind === 'node' || place.kind === 'external') && dev === 'eth0') return { place: network!, bridge: 'underlay' };
      if ((place.kind === 'node' && dev === 'cni0') || (place.kind === 'network' && dev === 'underlay')) return { place, bridge: dev };
      return undefined;
    },
    tunnel(place, dev, mac) {
      if (place.kind !== 'node' || dev !== VXLAN.device) return undefined;
      const peer = plan.nodes.find((n) => vtep(plan, n).mac === mac.toLowerCase());
      const self = plan.nodes.find((n) => n.name === place.name);
      return peer ? `VXLAN ${dev}: ${mac} is the VTEP of ${peer.name}: the frame goes wrapped in UDP ${self?.ip ?? ''} → ${peer.ip}:${VXLAN.port} (VNI ${VXLAN.vni}) over the underlay, which sees no pod address` : `VXLAN ${dev}: no VTEP has ${mac}`;
    },
    // vpc mode: the VPC's source check, in its own words (which source, whose interface it is not).
    dropReason(place, rule, packet, seen) {
      const check = plan.spec.mode === 'vpc' && place.kind === 'network' ? parseCheckRule(rule) : undefined;
      const node = check && plan.nodes.find((n) => n.underlayPort === check.port);
      if (check && node) return sourceDropReason({ node: node.name, mac: nodeMAC(plan, node), port: check.port }, check.cause, { ip: packet.saddr, mac: packet.etherSaddr });
      return policyDropReason(place, rule, seen ?? packet, world);
    },
  };
}

/** A NetworkPolicy's drop in the model's words (which policies isolate which pod, what no rule allows), at the place it happened; undefined for any other rule. */
export function policyDropReason(place: Place, rule: string, pkt: PacketHeader, world: PolicyWorld | undefined): string | undefined {
  const r = parsePolicyRule(rule);
  if (r?.kind !== 'drop') return undefined;
  const proto = policyProtocol(pkt.protocol);
  const at = ` on ${placeLabel(place)}`;
  if (!world || !pkt.saddr || !pkt.daddr || !proto || pkt.dport === undefined) return `dropped by NetworkPolicy ${r.policies.join(', ')} (${r.pod} is isolated for ${r.dir}; no rule allows it)${at}`;
  const src = endpointOf(world, pkt.saddr);
  const dst = endpointOf(world, pkt.daddr);
  return `${ruleNote(r, verdict(world, src, dst, pkt.dport, proto), src, dst, pkt.dport, proto)}${at}`;
}

/**
 * A trace with its policy rules named: each hop through a policy's allow clause says which
 * policy rule let it through (checked against the model), and a delivered probe's reason says
 * which rules allowed it.
 */
export function withPolicyNotes(t: Trace, world: PolicyWorld | undefined, fromIP: string | undefined): Trace {
  if (!world || !fromIP) return t;
  const proto = policyProtocol(t.probe.protocol);
  // Policy judges the backend after DNAT: where the probe arrived, else the last destination NAT on its way.
  const nat = t.hops.flatMap((h) => (h.nat ?? []).filter((n) => n.kind === 'destination' || n.kind === 'DNAT').map((n) => /^([\d.]+):(\d+)$/.exec(n.to)).filter((m) => m !== null)).at(-1);
  const dstIP = t.destination?.ip ?? nat?.[1] ?? t.probe.dst;
  const port = t.destination?.port ?? (nat ? Number(nat[2]) : t.probe.dport);
  if (!proto || port === undefined) return t;
  const src = endpointOf(world, fromIP);
  const dst = endpointOf(world, dstIP);
  const v = verdict(world, src, dst, port, proto);
  const hops = t.hops.map((h) => {
    const r = h.kind === 'netfilter' ? parsePolicyRule(h.rule) : undefined;
    return r?.kind === 'allow' ? { ...h, detail: `${h.detail}: ${ruleNote(r, v, src, dst, port, proto)}` } : h;
  });
  const allowedBy = t.verdict === 'delivered' ? allowanceReason(v, src, dst) : undefined;
  return { ...t, hops, ...(allowedBy ? { reason: `${t.reason}; ${allowedBy}` } : {}) };
}

/** The kernel's own answers, asked in the place's namespace; one session's same questions are asked once (a matrix repeats them). */
export function kernelLookups(dp: Dataplane): Lookups {
  const asked = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, ask: () => Promise<T>): Promise<T> => {
    if (!asked.has(key)) asked.set(key, ask());
    return asked.get(key) as Promise<T>;
  };
  const kernel = answers(dp);
  return {
    route: (netns, dst, from, iif) => once(`route ${netns} ${dst} ${from} ${iif}`, () => kernel.route(netns, dst, from, iif)),
    listeners: (netns, protocol, port) => once(`listen ${netns} ${protocol} ${port}`, () => kernel.listeners(netns, protocol, port)),
  };
}

function answers(dp: Dataplane): Lookups {
  return {
    async route(netns, dst, from, iif) {
      try {
        return { route: await dp.at(netns).routeGet(dst, { ...(from ? { from } : {}), ...(iif ? { iif } : {}) }) };
      } catch (e) {
        return { error: (e as Error).message };
      }
    },
    async listeners(netns, protocol, port) {
      const sockets = await dp.at(netns).listeners(protocol, port).catch(() => []);
      const found = new Set(sockets.flatMap((s) => s.processes.map((p) => `${p.name} (pid ${p.pid})`)));
      // A socket without a process (the kernel's, or one whose owner is not visible) still listens.
      if (!found.size && sockets.length) found.add('a socket');
      return [...found];
    },
  };
}

/** FROM (pod/NAME, node/NAME, external) as a place. */
export function resolveFrom(view: ClusterView, from: string, namespace: string): Place {
  if (from === 'external') return infrastructure(view.plan)[1]!;
  const [kind, name] = splitRef(from, 'FROM');
  if (kind === 'node') {
    const node = view.plan.nodes.find((n) => n.name === name);
    if (!node) throw new TraceError(`FROM ${from}: no node ${JSON.stringify(name)} (nodes: ${view.plan.nodes.map((n) => n.name).join(', ')})`);
    return { kind: 'node', name: node.name, netns: netnsPath(node.netns) };
  }
  if (kind === 'pod') return podPlaceNamed(view, name, namespace, 'FROM');
  throw new TraceError(`FROM ${from}: expected pod/NAME, node/NAME or external`);
}

function podPlaceNamed(view: ClusterView, name: string, namespace: string, what: string): Place {
  const pod = view.pods.find((p) => p.metadata.name === name && p.metadata.namespace === namespace);
  if (!pod) throw new TraceError(`${what} pod/${name}: no such pod in namespace ${namespace}`);
  const place = podPlace(view.plan, pod);
  if (!place) throw new TraceError(`${what} pod/${name}: the pod is not running (${pod.status?.phase ?? 'Pending'})`);
  return place;
}

function splitRef(ref: string, what: string): [string, string] {
  const m = /^(pod|pods|po|node|nodes|no|service|services|svc)\/(.+)$/.exec(ref);
  if (!m) throw new TraceError(`${what} ${JSON.stringify(ref)}: expected KIND/NAME (pod/web, node/NAME, service/web), an IP, IP:PORT or http://HOST/PATH`);
  const kind = m[1]!.startsWith('po') ? 'pod' : m[1]!.startsWith('no') ? 'node' : 'service';
  return [kind, m[2]!];
}

/** Why an address is none of the cluster's (its pods', Services', underlay's), or undefined when it is. */
export function outsideCluster(view: ClusterView, ip: string): string | undefined {
  const addr = tryParseIP(ip);
  if (!addr) return `${ip} is not an IPv4 address`;
  const ranges = [podRange(view.plan), view.plan.spec.serviceCIDR, UNDERLAY.subnet];
  if (ranges.some((r) => contains(parsePrefix(r), addr)) || (view.plan.spec.mode === 'vpc' && ip === VPC.outside)) return undefined;
  if (view.services.some((s) => s.spec.externalIPs?.includes(ip))) return undefined;
  return `${ip} is outside cluster ${view.plan.spec.name} (pods ${podRange(view.plan)}, Services ${view.plan.spec.serviceCIDR}, nodes on ${UNDERLAY.subnet}): the lab has no way out, so nothing could answer; trace a pod, a Service, a node address or a NodePort`;
}

/** TO as where to send the probe, and the pods that may receive it (whose namespaces are watched too). */
export function resolveTo(view: ClusterView, req: TraceRequest): { dst: string; dport?: number; protocol: Protocol; candidates: Pod[]; label: string; http?: { host: string; path: string; tls: boolean } } {
  const wantProtocol = req.protocol;
  const namespace = req.toNamespace ?? req.namespace;
  if (/^https?:\/\//i.test(req.to)) {
    let url: URL;
    try {
      url = new URL(req.to);
    } catch {
      throw new TraceError(`TO ${req.to}: not a URL such as http://shop.example/cart`);
    }
    const tls = url.protocol === 'https:';
    if (url.protocol !== 'http:' && !tls) throw new TraceError(`TO ${req.to}: only http:// and https:// are traced through the ingress`);
    if (wantProtocol && wantProtocol !== 'tcp') throw new TraceError(`TO ${req.to}: a URL is traced over tcp, not ${wantProtocol}`);
    const node = req.node ? view.plan.nodes.find((n) => n.name === req.node) : view.plan.nodes[0];
    if (!node) throw new TraceError(`--node ${req.node}: no such node (nodes: ${view.plan.nodes.map((n) => n.name).join(', ')})`);
    const services = new Set<string>();
    for (const ing of view.ingresses ?? []) {
      const backends = [ing.spec.defaultBackend, ...(ing.spec.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => p.backend))];
      for (const b of backends) if (b?.service) services.add(`${ing.metadata.namespace}/${b.service.name}`);
    }
    const candidates = view.services.filter((s) => services.has(`${s.metadata.namespace}/${s.metadata.name}`)).flatMap((s) => selected(view, s));
    return { dst: node.ip, dport: Number(url.port || (tls ? 443 : 80)), protocol: 'tcp', candidates, label: req.to, http: { host: url.hostname, path: `${url.pathname}${url.search}`, tls } };
  }
  if (tryParseIP(req.to)) {
    const dst = req.to;
    const outside = outsideCluster(view, dst);
    if (outside) throw new TraceError(`TO ${req.to}: ${outside}`);
    const dport = req.port;
    const protocol = wantProtocol ?? (dport === undefined ? 'icmp' : 'tcp');
    // A NodePort, or any address: every pod a Service on that port could lead to, and the pod holding the address.
    const backing = dport === undefined ? [] : view.services.filter((s) => s.spec.ports?.some((p) => p.nodePort === dport || p.port === dport)).flatMap((s) => selected(view, s));
    return { dst, ...(dport !== undefined ? { dport } : {}), protocol, candidates: [...view.pods.filter((p) => p.status?.podIP === dst), ...backing], label: `${req.to}${dport !== undefined ? `:${dport}` : ''}` };
  }
  const [kind, name] = splitRef(req.to, 'TO');
  if (kind === 'pod') {
    const pod = view.pods.find((p) => p.metadata.name === name && p.metadata.namespace === namespace);
    if (!pod?.status?.podIP) throw new TraceError(`TO pod/${name}: no running pod of that name in namespace ${namespace}`);
    const first = pod.spec.containers.flatMap((c) => c.ports ?? [])[0];
    const dport = req.port ?? first?.containerPort;
    const protocol = wantProtocol ?? (dport === undefined ? 'icmp' : ((first?.protocol?.toLowerCase() as Protocol | undefined) ?? 'tcp'));
    return { dst: pod.status.podIP, ...(protocol !== 'icmp' && dport !== undefined ? { dport } : {}), protocol, candidates: [pod], label: `pod/${name}` };
  }
  if (kind === 'service') {
    const svc = view.services.find((s) => s.metadata.name === name && s.metadata.namespace === namespace);
    if (!svc) throw new TraceError(`TO service/${name}: no such Service in namespace ${namespace}`);
    if (!svc.spec.clusterIP || svc.spec.clusterIP === 'None') throw new TraceError(`TO service/${name}: a headless Service has no virtual IP; trace one of its pods`);
    const port = req.port !== undefined ? svc.spec.ports?.find((p) => p.port === req.port) : svc.spec.ports?.[0];
    if (!port) throw new TraceError(`TO service/${name}: it has no port ${req.port} (ports: ${svc.spec.ports?.map((p) => p.port).join(', ') || 'none'})`);
    return { dst: svc.spec.clusterIP, dport: port.port, protocol: wantProtocol ?? ((port.protocol?.toLowerCase() as Protocol | undefined) ?? 'tcp'), candidates: selected(view, svc), label: `service/${name}` };
  }
  throw new TraceError(`TO ${req.to}: a node is not a destination; trace its address (IP or IP:PORT)`);
}

function selected(view: ClusterView, svc: Service): Pod[] {
  const sel = svc.spec.selector;
  if (!sel || !Object.keys(sel).length) return [];
  return view.pods.filter((p) => p.metadata.namespace === svc.metadata.namespace && matches({ matchLabels: sel }, p.metadata.labels ?? {}));
}

function uniquePlaces(places: Array<Place | undefined>): Place[] {
  const byNetns = new Map<string, Place>();
  for (const p of places) if (p && !byNetns.has(p.netns)) byNetns.set(p.netns, p);
  return [...byNetns.values()];
}

export interface RunOptions {
  timeoutSeconds?: number;
  /** Ends the trace early (Ctrl-C); what it put in place is removed all the same. */
  signal?: AbortSignal;
}

/** The addresses a node's masquerade gives a packet: its own on the underlay, its bridge and its VTEP. */
export function masqueraders(plan: ClusterPlan): string[] {
  return plan.nodes.flatMap((n) => [n.ip, ...(n.bridgeIP ? [n.bridgeIP] : []), ...(plan.spec.mode === 'vxlan' && n.podCIDR ? [vtep(plan, n).ip] : [])]);
}

/** One trace, end to end. */
export async function traceOne(dp: Dataplane, view: ClusterView, req: TraceRequest, opts: RunOptions = {}): Promise<Trace> {
  const from = resolveFrom(view, req.from, req.namespace);
  const to = resolveTo(view, req);
  if (to.protocol !== 'icmp' && to.dport === undefined) throw new TraceError(`TO ${req.to}: which port? give --port (or --protocol icmp)`);
  const places = uniquePlaces([...infrastructure(view.plan), from, ...to.candidates.map((p) => podPlace(view.plan, p))]);
  const spec: ProbeSpec = { from, protocol: to.protocol, dst: to.dst, ...(to.dport !== undefined ? { dport: to.dport } : {}), ...(to.http ? { http: to.http } : {}) };
  return (await traceMany(dp, view, places, [spec], opts))[0]!;
}

/** Probes sent together in one session (one set of observers), each explained. */
export async function traceMany(dp: Dataplane, view: ClusterView, places: Place[], specs: ProbeSpec[], opts: RunOptions = {}): Promise<Trace[]> {
  const legacy = new Set(view.plan.spec.iptablesBackend === 'legacy' ? places.filter((p) => p.kind === 'node').map((p) => p.netns) : []);
  const nodes = new Set(places.filter((p) => p.kind === 'node').map((p) => p.netns));
  const obs = await observe(dp, places, specs, { legacyIptables: legacy, conntrack: nodes, timeoutSeconds: opts.timeoutSeconds ?? 1, masqueraders: masqueraders(view.plan), ...(opts.signal ? { signal: opts.signal } : {}) });
  const world = policyWorld(view);
  const fabric = clusterFabric(view.plan, world);
  const lookups = kernelLookups(dp);
  const podOf = (p: Place) => (p.kind === 'pod' ? p.name : undefined);
  const ipOf = (p: Place) => view.pods.find((x) => p.kind === 'pod' && `${x.metadata.namespace}/${x.metadata.name}` === p.name)?.status?.podIP;
  return Promise.all(obs.probes.map(async (_, i) => withPolicyNotes(await explain(obs, i, fabric, lookups, podOf), world, ipOf(specs[i]!.from))));
}

export interface MatrixCell {
  from: string;
  to: string;
  verdict: Trace['verdict'];
  reason: string;
}

export interface Matrix {
  sources: string[];
  targets: string[];
  cells: MatrixCell[];
  /** What the policies say of each cell (the model's truth table), when the cluster has policies. */
  expected?: ExpectedCell[];
}

/** The port a Service port leads to on one backend: its targetPort, a name looked up in the pod's container ports. */
function targetPortOn(pod: Pod, port: NonNullable<Service['spec']['ports']>[number]): number | undefined {
  const tp = port.targetPort ?? port.port;
  if (typeof tp === 'number') return tp;
  if (/^[0-9]+$/.test(tp)) return Number(tp);
  return pod.spec.containers.flatMap((c) => c.ports ?? []).find((c) => c.name === tp && (c.protocol ?? 'TCP') === (port.protocol ?? 'TCP'))?.containerPort;
}

/** A Service port as policy sees it: each ready backend pod and the port it is reached on there (after DNAT). */
export function servicePolicyTarget(view: ClusterView, svc: Service, port: NonNullable<Service['spec']['ports']>[number], label: string): PolicyTarget {
  const backends = selected(view, svc).flatMap((p) => {
    const info = podInfo(p);
    const n = targetPortOn(p, port);
    return info && n !== undefined ? [{ pod: info, port: n }] : [];
  });
  return { label, protocol: (port.protocol ?? 'TCP').toLowerCase(), backends };
}

/**
 * Every running pod of the namespaces to every pod (its first port) and every Service port.
 * `namespace` may list several (x,y,z: upstream's and Cyclonus's model); then labels carry
 * the namespace (pod/x/a, service/x/web:80).
 */
export async function traceMatrix(dp: Dataplane, view: ClusterView, namespace: string, opts: RunOptions = {}): Promise<Matrix> {
  const namespaces = namespace.split(',').map((n) => n.trim()).filter(Boolean);
  const qualified = namespaces.length > 1;
  const name = (o: { metadata: { namespace?: string; name: string } }) => (qualified ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);
  const inScope = (o: { metadata: { namespace?: string } }) => namespaces.includes(o.metadata.namespace ?? 'default');
  const pods = view.pods.filter((p) => inScope(p) && podPlace(view.plan, p));
  if (!pods.length) throw new TraceError(`no running pods in namespace ${namespaces.join(', ')}`);
  const targets: Array<{ label: string; dst: string; dport?: number; protocol: Protocol; policy: PolicyTarget }> = [];
  for (const p of pods) {
    const port = p.spec.containers.flatMap((c) => c.ports ?? [])[0];
    const label = `pod/${name(p)}`;
    const protocol = port ? ((port.protocol?.toLowerCase() as Protocol | undefined) ?? 'tcp') : 'icmp';
    const info = podInfo(p);
    targets.push({ label, dst: p.status!.podIP!, ...(port ? { dport: port.containerPort } : {}), protocol, policy: { label, protocol, backends: info && port ? [{ pod: info, port: port.containerPort }] : [] } });
  }
  for (const s of view.services.filter((s) => inScope(s) && s.spec.clusterIP && s.spec.clusterIP !== 'None')) {
    for (const port of s.spec.ports ?? []) {
      const label = `service/${name(s)}:${port.port}`;
      targets.push({ label, dst: s.spec.clusterIP!, dport: port.port, protocol: (port.protocol?.toLowerCase() as Protocol | undefined) ?? 'tcp', policy: servicePolicyTarget(view, s, port, label) });
    }
  }
  const places = uniquePlaces([...infrastructure(view.plan), ...pods.map((p) => podPlace(view.plan, p))]);
  const sources = pods.map((p) => podPlace(view.plan, p)!);
  const specs: ProbeSpec[] = sources.flatMap((from) => targets.map((t) => ({ from, protocol: t.protocol, dst: t.dst, ...(t.dport !== undefined ? { dport: t.dport } : {}) })));
  const traces = await traceMany(dp, view, places, specs, opts);
  const cells = traces.map((t, i): MatrixCell => ({ from: `pod/${name(pods[Math.floor(i / targets.length)]!)}`, to: targets[i % targets.length]!.label, verdict: t.verdict, reason: t.reason }));
  const world = policyWorld(view);
  const policySources = pods.flatMap((p) => {
    const info = podInfo(p);
    return info ? [{ label: `pod/${name(p)}`, pod: info }] : [];
  });
  const expected = world ? expectedMatrix(world, policySources, targets.map((t) => t.policy)) : undefined;
  return { sources: pods.map((p) => `pod/${name(p)}`), targets: targets.map((t) => t.label), cells, ...(expected ? { expected } : {}) };
}
