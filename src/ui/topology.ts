// The cluster network as a graph for the page (pure): the seed's picture in elements. The
// underlay is a segment (its bridge) with the router, which holds a route per node podCIDR
// (routed mode), and the external client; each node is a box holding its eth0 (on the
// segment) and its bridge cni0 (the pods' gateway), and its pods, each joined to cni0 by its
// veth pair; Services are virtual IPs with an edge to each endpoint pod; Ingresses lead to
// Services. Ids are stable (kind/namespace/name), so the page applies changes as a diff.

import type { EndpointSlice, Ingress, NetworkPolicy, Node, Pod, Service } from '../api/types.ts';
import { routerRoutes, UNDERLAY, VPC, VXLAN, vtep, type ClusterPlan } from '../cluster/plan.ts';
import { policyKey, policyTypes, selects, type Direction } from '../netpol/model.ts';
import type { PodRecordBase } from '../node/records.ts';
import type { GraphElement } from './graph.ts';

export type { GraphElement } from './graph.ts';

export interface ClusterObjects {
  plan: ClusterPlan;
  nodes: Node[];
  pods: Pod[];
  services: Service[];
  slices: EndpointSlice[];
  ingresses: Ingress[];
  /** node name → its pods' attachments. */
  attachments: Map<string, Array<Pick<PodRecordBase, 'namespace' | 'name' | 'hostVeth' | 'mac'>>>;
  /** NetworkPolicies: a pod some of them isolate is marked, and names them. */
  policies?: NetworkPolicy[];
}

/**
 * The policies that isolate a pod, per direction (empty: none), from the policies of its
 * namespace only (a page of 1,000 pods and 1,000 policies is rebuilt every 100 ms at most).
 */
export function podIsolation(pod: Pod, byNamespace: Map<string, NetworkPolicy[]>): Record<Direction, string[]> {
  const info = { namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name, labels: pod.metadata.labels ?? {}, ip: '', ports: [] };
  const of = (dir: Direction) => (byNamespace.get(info.namespace) ?? []).filter((p) => policyTypes(p.spec).has(dir) && selects(p, info)).map(policyKey).sort();
  return { ingress: of('ingress'), egress: of('egress') };
}

export const podId = (ns: string, name: string) => `pod/${ns}/${name}`;
export const serviceId = (ns: string, name: string) => `svc/${ns}/${name}`;

/** What the router says about pod routes in the modes where it holds none. */
const noPodRoutes: Partial<Record<string, string>> = {
  'host-gw': 'no pod routes: nodes route to each other (host-gw)',
  vxlan: `no pod routes: nodes wrap pod packets in VXLAN (UDP ${VXLAN.port}) between their own addresses`,
  vpc: 'no pod routes: pods hold VPC addresses, on the segment itself; the VPC answers ARP for each with its node\'s MAC',
};

export function topology(o: ClusterObjects): GraphElement[] {
  const el: GraphElement[] = [];
  const node = (data: GraphElement['data'], classes?: string) => el.push({ group: 'nodes', data, ...(classes ? { classes } : {}) });
  const edge = (data: Omit<GraphElement['data'], 'id'> & { source: string; target: string; id?: string }, classes?: string) => el.push({ group: 'edges', data: { id: data.id ?? `${data.kind}:${data.source}->${data.target}`, ...data }, ...(classes ? { classes } : {}) });
  const routes = routerRoutes(o.plan);
  node({ id: 'underlay', kind: 'segment', label: `underlay ${UNDERLAY.subnet}`, facts: [`bridge ${UNDERLAY.bridge} in namespace ${o.plan.networkNetns}`, `mode ${o.plan.spec.mode}`] });
  node({ id: 'router', kind: 'router', label: `router ${UNDERLAY.router}`, ip: UNDERLAY.router, facts: routes.length ? routes.map((r) => `route ${r.dst} via ${r.via}`) : [noPodRoutes[o.plan.spec.mode] ?? ''] });
  edge({ kind: 'link', source: 'router', target: 'underlay', label: UNDERLAY.bridge });
  node({ id: 'external', kind: 'external', label: `external ${UNDERLAY.external}`, ip: UNDERLAY.external, facts: ['a client outside the cluster', `default via ${UNDERLAY.router}`] });
  edge({ kind: 'link', source: 'external', target: 'underlay', label: 'eth0 ↔ external' });
  const planned = new Map(o.plan.nodes.map((n) => [n.name, n]));
  for (const n of o.nodes) {
    const p = planned.get(n.metadata.name);
    const name = n.metadata.name;
    const ip = p?.ip ?? n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const vpc = o.plan.spec.mode === 'vpc';
    const cidr = vpc ? 'pods take VPC addresses' : `podCIDR ${n.spec?.podCIDR ?? p?.podCIDR ?? '?'}`;
    node({ id: `node/${name}`, kind: 'node', label: `${name}  ${cidr}`, ip, facts: [cidr, ready ? 'Ready' : 'NotReady'] }, ready ? undefined : 'notready');
    const tunnel = p && o.plan.spec.mode === 'vxlan' ? vtep(o.plan, p) : undefined;
    node({ id: `eth0/${name}`, kind: 'eth0', parent: `node/${name}`, label: `eth0 ${ip ?? ''}`, ip, facts: [`port ${p?.underlayPort ?? '?'} on the underlay`, ...(tunnel ? [`VTEP ${VXLAN.device} ${tunnel.ip} (${tunnel.mac}), VNI ${VXLAN.vni}, UDP ${VXLAN.port}`] : [])] });
    edge({ kind: 'link', source: `eth0/${name}`, target: 'underlay', label: p?.underlayPort ?? '' });
    // vpc mode has no bridge: each pod's pair ends on the node, which routes to it by a /32 host route.
    if (vpc) continue;
    node({ id: `cni0/${name}`, kind: 'bridge', parent: `node/${name}`, label: `cni0 ${p?.bridgeIP ?? ''}`, ip: p?.bridgeIP, facts: ["the pods' gateway", 'learns MACs, answers ARP for the gateway'] });
    edge({ kind: 'link', source: `cni0/${name}`, target: `eth0/${name}`, label: 'routed' }, 'internal');
  }
  const known = new Set(o.nodes.map((n) => n.metadata.name));
  const policiesByNs = new Map<string, NetworkPolicy[]>();
  for (const p of o.policies ?? []) {
    const ns = p.metadata.namespace ?? 'default';
    policiesByNs.set(ns, [...(policiesByNs.get(ns) ?? []), p]);
  }
  for (const pod of o.pods) {
    const ns = pod.metadata.namespace ?? 'default';
    const nodeName = pod.spec.nodeName;
    if (!nodeName || !known.has(nodeName) || pod.spec.hostNetwork) continue;
    const id = podId(ns, pod.metadata.name);
    const phase = pod.metadata.deletionTimestamp ? 'Terminating' : (pod.status?.phase ?? 'Pending');
    const attachment = o.attachments.get(nodeName)?.find((a) => a.namespace === ns && a.name === pod.metadata.name);
    const ip = pod.status?.podIP;
    // Its box names its veth pair too: the line to the bridge is too short for a label.
    const pair = attachment?.hostVeth ? `\neth0 ↔ ${attachment.hostVeth}` : '';
    // Isolated by NetworkPolicy: marked (a red border), and the policies that do it named.
    const iso = podIsolation(pod, policiesByNs);
    const isolated = (['ingress', 'egress'] as const).filter((d) => iso[d].length).map((d) => `isolated for ${d} by ${iso[d].join(', ')}`);
    node({ id, kind: 'pod', parent: `node/${nodeName}`, label: `${pod.metadata.name}\n${ip ?? phase}${pair}`, namespace: ns, labels: pod.metadata.labels ?? {}, ip, phase, facts: [`${phase}${ip ? ` at ${ip}` : ''}`, ...(attachment?.mac ? [`eth0 ${attachment.mac}`] : []), ...isolated] }, `${phase.toLowerCase()}${isolated.length ? ' isolated' : ''}`);
    const vpc = o.plan.spec.mode === 'vpc';
    edge({ kind: 'veth', source: id, target: vpc ? `eth0/${nodeName}` : `cni0/${nodeName}`, label: `eth0 ↔ ${attachment?.hostVeth ?? 'veth'}${vpc ? ` (ptp, gateway ${VPC.podGateway})` : ''}`, namespace: ns });
  }
  const pods = new Set(el.filter((e) => e.data.kind === 'pod').map((e) => e.data.id));
  for (const svc of o.services) {
    const ns = svc.metadata.namespace ?? 'default';
    const id = serviceId(ns, svc.metadata.name);
    const vip = svc.spec.clusterIP && svc.spec.clusterIP !== 'None' ? svc.spec.clusterIP : undefined;
    const ports = (svc.spec.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(', ');
    node({ id, kind: 'service', label: `${svc.metadata.name}\n${vip ?? (svc.spec.type === 'ExternalName' ? svc.spec.externalName : 'headless')} ${ports}`, namespace: ns, labels: svc.metadata.labels ?? {}, ...(vip ? { ip: vip } : {}), facts: [`type ${svc.spec.type ?? 'ClusterIP'}`, `ports ${ports || 'none'}`] });
    const slices = o.slices.filter((s) => s.metadata.namespace === ns && s.metadata.labels?.['kubernetes.io/service-name'] === svc.metadata.name);
    for (const ep of slices.flatMap((s) => s.endpoints)) {
      const target = ep.targetRef?.kind === 'Pod' ? podId(ep.targetRef.namespace ?? ns, ep.targetRef.name) : undefined;
      if (target && pods.has(target)) edge({ kind: 'endpoint', source: id, target, label: ep.conditions.ready === false ? 'not ready' : '', namespace: ns }, ep.conditions.ready === false ? 'notready' : undefined);
    }
  }
  const services = new Set(el.filter((e) => e.data.kind === 'service').map((e) => e.data.id));
  for (const ing of o.ingresses) {
    const ns = ing.metadata.namespace ?? 'default';
    const id = `ing/${ns}/${ing.metadata.name}`;
    const rules = (ing.spec.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => ({ host: r.host ?? '*', path: p.path ?? '/', service: p.backend.service?.name })));
    node({ id, kind: 'ingress', label: `ingress ${ing.metadata.name}\n${[...new Set(rules.map((r) => r.host))].join(', ')}`, namespace: ns, labels: ing.metadata.labels ?? {}, facts: rules.map((r) => `${r.host}${r.path} → ${r.service ?? '?'}`) });
    for (const target of new Set([...rules.map((r) => r.service), ing.spec.defaultBackend?.service?.name].filter((s): s is string => Boolean(s)))) {
      if (services.has(serviceId(ns, target))) edge({ kind: 'backend', source: id, target: serviceId(ns, target), namespace: ns });
    }
  }
  return el;
}

