// A cluster's address plan and names, decided from its spec alone (pure): every node owns
// a podCIDR cut from one flat cluster range; nodes sit on an underlay segment whose router
// is their default gateway; everything lives in namespaces named after the cluster.

import { createHash } from 'node:crypto';
import type { NetOp } from '../dataplane/port.ts';
import { addToIP, contains, parseHostPort, firstIP, formatIP, formatPrefix, networkOf, overlaps, parseIP, tryParsePrefix, width, type Prefix } from '../netaddr/ip.ts';

export type RoutingMode = 'routed' | 'host-gw' | 'vxlan' | 'vpc';
export type ProxyMode = 'iptables' | 'nftables' | 'ipvs';

export interface ClusterSpec {
  name: string;
  nodes: number;
  mode: RoutingMode;
  podCIDR: string;
  nodeCIDRMask: number;
  serviceCIDR: string;
  /** How each node's service proxy programs the kernel (kube-proxy's --proxy-mode). */
  proxyMode?: ProxyMode;
  /** The ingress controllers trust clients' X-Forwarded-* headers (ingress-nginx's use-forwarded-headers): only behind another proxy. */
  ingressUseForwardedHeaders?: boolean;
  /** Worker processes of each node's ingress controller (nginx's worker_processes); default: one per two CPUs (see ingress/main.ts). */
  ingressWorkers?: number;
  /** Pods each node takes (the kubelet's --max-pods, 110 by default); the cluster takes this many times its nodes. */
  maxPods?: number;
  /** Where each node's service proxy serves /metrics (kube-proxy's --metrics-bind-address, 127.0.0.1:10249). */
  metricsBindAddress?: string;
  /** Nodes whose service proxy runs as a program of its own (`kubewire proxy` in the node's namespace): the daemon runs none there. */
  externalProxy?: string[];
  /** 'external': every node component (proxy, ingress, DNS) runs as its own program with only a kubeconfig (daemon/components.ts). */
  components?: 'external';
  /** Which iptables the nodes' rules go through (kube-proxy, masquerade, hostPorts); chosen by `up` when not given (topology.ts). */
  iptablesBackend?: 'legacy' | 'nft';
  /** The cluster's DNS zone (the kubelet's --cluster-domain), cluster.local by default. */
  clusterDomain?: string;
  /** The resolver the cluster DNS forwards other names to (ADDR or ADDR:PORT); none: it refuses them. */
  upstreamDns?: string;
  /** IPVS mode: the virtual servers' scheduler (kube-proxy's --ipvs-scheduler, rr by default). */
  ipvsScheduler?: string;
  /** IPVS mode: arp_ignore=1 and arp_announce=2 on the nodes, so that they do not answer ARP for the VIPs on kube-ipvs0 (kube-proxy's --ipvs-strict-arp). */
  ipvsStrictARP?: boolean;
  /** vpc mode: free addresses each node keeps in its pool beyond those in use (the AWS VPC CNI's WARM_IP_TARGET). */
  warmIPTarget?: number;
  /** vpc mode: addresses each node holds at least, used or not (MINIMUM_IP_TARGET). */
  minimumIPTarget?: number;
  /** vpc mode: pod traffic leaving the VPC keeps the pod's address, for a NAT outside to translate (AWS_VPC_K8S_CNI_EXTERNALSNAT). */
  externalSNAT?: boolean;
  /** vpc mode: seconds a freed address waits before another pod gets it (IP_COOLDOWN_PERIOD, 30). */
  ipCooldownSeconds?: number;
}

/** The schedulers kube-proxy's --ipvs-scheduler takes (the kernel's ip_vs_* modules). */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh'];

export const DEFAULT_SPEC: Omit<ClusterSpec, 'name'> = {
  nodes: 2,
  mode: 'routed',
  podCIDR: '10.244.0.0/16',
  nodeCIDRMask: 24,
  serviceCIDR: '10.96.0.0/12',
  proxyMode: 'iptables',
};

/** The underlay segment (kind's docker network range; private to the cluster's namespaces). */
export const UNDERLAY = { subnet: '172.18.0.0/16', router: '172.18.0.1', bridge: 'underlay', firstNodeHost: 11, external: '172.18.0.200' } as const;

export interface NodePlan {
  name: string; // kubewire-node-1
  netns: string; // namespace name: kw-<cluster>-node-1
  ip: string; // on the underlay
  /** Cut from the cluster's pod range; none in vpc mode, where pods take the VPC's addresses. */
  podCIDR?: string;
  /** The node's gateway on its bridge: the podCIDR's first address (none in vpc mode: no bridge). */
  bridgeIP?: string;
  /** Name of the underlay's port towards this node. */
  underlayPort: string;
}

export interface ClusterPlan {
  spec: ClusterSpec;
  networkNetns: string;
  externalNetns: string;
  nodes: NodePlan[];
}

export class SpecError extends Error {
  override name = 'SpecError';
}

const CLUSTER_NAME = /^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$/;

/** Namespace names start kw_<cluster>_: cluster names have no '_', so clusters never collide. */
export function netnsPrefix(cluster: string): string {
  return `kw_${cluster}_`;
}

/** The prefix of the namespaces of a node's pods. */
export function podNetnsPrefix(cluster: string, node: string): string {
  return `${netnsPrefix(cluster)}pod_${node}_`;
}

/** A pod's namespace name: readable when short enough, hashed otherwise (names are DNS labels, so '_' separates safely). */
export function podNetnsName(cluster: string, node: string, pod: { namespace: string; name: string }): string {
  const prefix = podNetnsPrefix(cluster, node);
  const readable = `${prefix}${pod.namespace}_${pod.name}`;
  return readable.length <= 120 ? readable : `${prefix}${createHash('sha256').update(`${pod.namespace}/${pod.name}`).digest('hex').slice(0, 16)}`;
}

export function validateSpec(spec: ClusterSpec): void {
  if (!CLUSTER_NAME.test(spec.name)) throw new SpecError(`--cluster ${JSON.stringify(spec.name)}: a cluster name is a DNS label of at most 20 characters (lowercase letters, digits, '-')`);
  if (!Number.isInteger(spec.nodes) || spec.nodes < 1 || spec.nodes > 50) throw new SpecError(`--nodes ${spec.nodes}: must be a whole number from 1 to 50`);
  if (!['routed', 'host-gw', 'vxlan', 'vpc'].includes(spec.mode)) throw new SpecError(`--mode ${JSON.stringify(spec.mode)}: must be routed, host-gw, vxlan or vpc`);
  for (const [flag, v] of [['--warm-ip-target', spec.warmIPTarget], ['--minimum-ip-target', spec.minimumIPTarget], ['--ip-cooldown-period', spec.ipCooldownSeconds]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 1000)) throw new SpecError(`${flag} ${v}: must be a whole number from 0 to 1000`);
  }
  if ((spec.warmIPTarget !== undefined || spec.minimumIPTarget !== undefined || spec.ipCooldownSeconds !== undefined || spec.externalSNAT) && spec.mode !== 'vpc') throw new SpecError('--warm-ip-target, --minimum-ip-target, --ip-cooldown-period and --external-snat need --mode vpc');
  const proxy = spec.proxyMode ?? 'iptables';
  if (!['iptables', 'nftables', 'ipvs'].includes(proxy)) throw new SpecError(`--proxy-mode ${JSON.stringify(proxy)}: must be iptables, nftables or ipvs`);
  if (spec.iptablesBackend !== undefined && spec.iptablesBackend !== 'legacy' && spec.iptablesBackend !== 'nft') throw new SpecError(`--iptables-backend ${JSON.stringify(spec.iptablesBackend)}: must be legacy or nft`);
  if (spec.ipvsScheduler !== undefined && !IPVS_SCHEDULERS.includes(spec.ipvsScheduler)) throw new SpecError(`--ipvs-scheduler ${JSON.stringify(spec.ipvsScheduler)}: must be one of ${IPVS_SCHEDULERS.join(', ')}`);
  if ((spec.ipvsScheduler !== undefined || spec.ipvsStrictARP) && proxy !== 'ipvs') throw new SpecError('--ipvs-scheduler and --ipvs-strict-arp need --proxy-mode ipvs');
  if (spec.clusterDomain !== undefined && !/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(spec.clusterDomain)) throw new SpecError(`--cluster-domain ${JSON.stringify(spec.clusterDomain)}: must be a DNS name (lowercase labels separated by dots), e.g. cluster.local`);
  if (spec.upstreamDns !== undefined && !parseHostPort(spec.upstreamDns, 53)) throw new SpecError(`--upstream-dns ${JSON.stringify(spec.upstreamDns)}: must be an IP address, optionally with :PORT`);
  if (spec.maxPods !== undefined && (!Number.isInteger(spec.maxPods) || spec.maxPods < 1 || spec.maxPods > 10_000)) throw new SpecError(`--max-pods ${spec.maxPods}: must be a whole number from 1 to 10000`);
  if (spec.metricsBindAddress !== undefined && !parseHostPort(spec.metricsBindAddress, 10249)) throw new SpecError(`--metrics-bind-address ${JSON.stringify(spec.metricsBindAddress)}: must be IP:PORT, e.g. 0.0.0.0:10249 for every address`);
  for (const node of spec.externalProxy ?? []) {
    const i = node.startsWith(`${spec.name}-node-`) ? Number(node.slice(`${spec.name}-node-`.length)) : NaN;
    if (!Number.isInteger(i) || i < 1 || i > spec.nodes) throw new SpecError(`--external-proxy ${JSON.stringify(node)}: not a node of this cluster (${spec.name}-node-1 to ${spec.name}-node-${spec.nodes})`);
  }
  if (spec.components !== undefined && spec.components !== 'external') throw new SpecError(`--components ${JSON.stringify(spec.components)}: must be internal or external`);
  const workers = spec.ingressWorkers;
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 64)) throw new SpecError(`--ingress-workers ${workers}: must be a whole number from 1 to 64`);
  const pods = cidr(spec.podCIDR, '--pod-cidr');
  const services = cidr(spec.serviceCIDR, '--service-cidr');
  if (pods.ip.family !== 4 || services.ip.family !== 4) throw new SpecError('--pod-cidr and --service-cidr must be IPv4 ranges (dual-stack clusters come later)');
  if (!Number.isInteger(spec.nodeCIDRMask) || spec.nodeCIDRMask < pods.bits || spec.nodeCIDRMask > 28) {
    throw new SpecError(`--node-cidr-mask ${spec.nodeCIDRMask}: must be between the pod CIDR's prefix (${pods.bits}) and 28`);
  }
  const capacity = 2 ** (spec.nodeCIDRMask - pods.bits);
  if (spec.nodes > capacity) throw new SpecError(`--pod-cidr ${spec.podCIDR} holds only ${capacity} node CIDRs of /${spec.nodeCIDRMask}, not ${spec.nodes}`);
  const underlay = tryParsePrefix(UNDERLAY.subnet)!;
  for (const [flag, p] of [['--pod-cidr', pods], ['--service-cidr', services]] as const) {
    if (overlaps(p, underlay)) throw new SpecError(`${flag} ${formatPrefix(p)} overlaps the node network ${UNDERLAY.subnet}`);
  }
  if (overlaps(pods, services)) throw new SpecError(`--pod-cidr ${spec.podCIDR} and --service-cidr ${spec.serviceCIDR} overlap`);
}

function cidr(text: string, flag: string): Prefix {
  const p = tryParsePrefix(text);
  if (!p) throw new SpecError(`${flag} ${JSON.stringify(text)} is not a CIDR such as 10.244.0.0/16`);
  if (networkOf(p).ip.value !== p.ip.value) throw new SpecError(`${flag} ${text} has host bits set; did you mean ${formatPrefix(networkOf(p))}?`);
  return p;
}

/** The i-th /mask of the range (i from 0), as the node IPAM's range allocator hands them out. */
export function nodeCIDR(podCIDR: string, mask: number, index: number): string {
  const range = tryParsePrefix(podCIDR)!;
  const size = 1n << BigInt(width(range.ip.family) - mask);
  const ip = addToIP(firstIP(range), size * BigInt(index));
  if (!contains(range, ip)) throw new SpecError(`node CIDR ${index} does not fit in ${podCIDR}`);
  return formatPrefix({ ip, bits: mask });
}

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/** The cluster DNS Service's address: the service range's 10th (10.96.0.10 by default), as kubeadm picks it. */
/** The kubernetes Service's ClusterIP: the service range's first address (as kube-apiserver picks it). */
export function apiServiceIP(spec: Pick<ClusterSpec, 'serviceCIDR'>): string {
  return formatIP(addToIP(firstIP(tryParsePrefix(spec.serviceCIDR)!), 1n));
}

export function dnsServiceIP(spec: Pick<ClusterSpec, 'serviceCIDR'>): string {
  return formatIP(addToIP(firstIP(tryParsePrefix(spec.serviceCIDR)!), 10n));
}

export function planCluster(spec: ClusterSpec): ClusterPlan {
  validateSpec(spec);
  const prefix = netnsPrefix(spec.name);
  const nodes = Array.from({ length: spec.nodes }, (_, i): NodePlan => {
    const podCIDR = spec.mode === 'vpc' ? undefined : nodeCIDR(spec.podCIDR, spec.nodeCIDRMask, i);
    return {
      name: `${spec.name}-node-${i + 1}`,
      netns: `${prefix}node-${i + 1}`,
      ip: formatIP(addToIP(parseIP(UNDERLAY.router), BigInt(UNDERLAY.firstNodeHost - 1 + i))),
      ...(podCIDR ? { podCIDR, bridgeIP: formatIP(addToIP(firstIP(tryParsePrefix(podCIDR)!), 1n)) } : {}),
      underlayPort: `node${i + 1}`,
    };
  });
  return { spec, networkNetns: `${prefix}network`, externalNetns: `${prefix}external`, nodes };
}

/** Where pods take their addresses: the cluster's pod range, or in vpc mode the VPC's own subnet (kube-proxy's --cluster-cidr). */
export function podRange(plan: Pick<ClusterPlan, 'spec'>): string {
  return plan.spec.mode === 'vpc' ? UNDERLAY.subnet : plan.spec.podCIDR;
}

/**
 * vpc mode, as the AWS VPC CNI: the underlay segment is the VPC. Each node holds secondary
 * addresses of its subnet, given by the VPC (the network namespace) a few at a time; pods
 * take them. The VPC knows where every address lives and answers every ARP itself, from
 * its own table; it floods nothing and learns nothing.
 */
export const VPC = {
  /** Secondary addresses come from past the segment's first /24 (the router, the nodes, the client). */
  firstSecondary: '172.18.1.1',
  lastSecondary: '172.18.255.254',
  /** Each pod's gateway: the host end of its pair (the AWS VPC CNI's 169.254.1.1). */
  podGateway: '169.254.1.1',
  /** A host outside the VPC (TEST-NET-3), on the external client: pod traffic to it is SNATed to the node. */
  outside: '203.0.113.10',
  /** Without --warm-ip-target / --minimum-ip-target: five free addresses per node. */
  warmIPTarget: 5,
  minimumIPTarget: 0,
  /** Without --ip-cooldown-period: a freed address waits 30 s before another pod gets it (IP_COOLDOWN_PERIOD). */
  ipCooldownSeconds: 30,
} as const;

/** An entry of the VPC's table: an address, the MAC of the interface that holds it, and the underlay port behind which it sits. */
export interface FabricEntry {
  ip: string;
  mac: string;
  port: string;
}

/** The MAC of a node's eth0 in vpc mode (the VPC must know it), from its place in the plan; the external client's is host 200's. */
export function underlayMAC(host: number): string {
  return `0a:6b:77:00:${((host >> 8) & 0xff).toString(16).padStart(2, '0')}:${(host & 0xff).toString(16).padStart(2, '0')}`;
}

export function nodeMAC(plan: ClusterPlan, node: NodePlan): string {
  return underlayMAC(plan.nodes.indexOf(node) + 1);
}

/** The VPC's table before any node holds a secondary address: every node's own address, and the external client's. */
export function fabricBase(plan: ClusterPlan): FabricEntry[] {
  return [
    ...plan.nodes.map((n) => ({ ip: n.ip, mac: nodeMAC(plan, n), port: n.underlayPort })),
    { ip: UNDERLAY.external, mac: underlayMAC(200), port: 'external' },
  ];
}

/** The secondary addresses a node holds, as VPC entries (they lead to the node's eth0). */
export function secondaryEntries(plan: ClusterPlan, node: NodePlan, addresses: string[]): FabricEntry[] {
  return addresses.map((ip) => ({ ip, mac: nodeMAC(plan, node), port: node.underlayPort }));
}

/** The network namespace's side of VPC entries: a permanent neighbour entry on the bridge (which it answers ARP from) and a static FDB entry per MAC. */
export function fabricOps(entries: FabricEntry[]): NetOp[] {
  const ports = new Map(entries.map((e) => [e.mac, e.port]));
  return [
    ...[...ports].map(([mac, port]): NetOp => ({ op: 'fdb-replace', dev: port, mac })),
    ...entries.map((e): NetOp => ({ op: 'neigh-replace', dev: UNDERLAY.bridge, ip: e.ip, mac: e.mac })),
  ];
}

/**
 * A node's NAT in vpc mode, as the AWS VPC CNI's AWS-SNAT-CHAIN: pod traffic that leaves the
 * VPC takes the node's address, unless --external-snat (a NAT gateway outside does it);
 * inside the VPC every address is kept.
 */
export function vpcSnatLines(plan: ClusterPlan, node: NodePlan): string[] {
  if (plan.spec.externalSNAT) return [];
  return [
    ':KUBEWIRE-POSTROUTING - [0:0]',
    '-A POSTROUTING -m comment --comment "kubewire: SNAT pod traffic leaving the VPC" -j KUBEWIRE-POSTROUTING',
    `-A KUBEWIRE-POSTROUTING -d ${UNDERLAY.subnet} -j RETURN`,
    `-A KUBEWIRE-POSTROUTING -m addrtype ! --dst-type LOCAL -j SNAT --to-source ${node.ip}`,
  ];
}

/** Routes each node needs to the other nodes' pods over the underlay: host-gw only (routed: the router has them; vxlan: the overlay). */
export function nodeRoutes(plan: ClusterPlan, node: NodePlan): Array<{ dst: string; via: string }> {
  if (plan.spec.mode !== 'host-gw') return [];
  return plan.nodes.filter((n) => n !== node).map((n) => ({ dst: n.podCIDR!, via: n.ip }));
}

/** Routes the underlay's router holds: one per node podCIDR when routed ("the network routes by CIDR"); none otherwise. */
export function routerRoutes(plan: ClusterPlan): Array<{ dst: string; via: string }> {
  if (plan.spec.mode !== 'routed') return [];
  return plan.nodes.map((n) => ({ dst: n.podCIDR!, via: n.ip }));
}

/** flannel's vxlan backend: VNI 1 on UDP 8472, the device flannel.1, 50 bytes of VXLAN/UDP/IP/Ethernet overhead. */
export const VXLAN = { device: 'flannel.1', vni: 1, port: 8472, overhead: 50 } as const;

/** The pods' MTU: the underlay's, less what the overlay wraps around each packet in vxlan mode. */
export function podMTU(plan: ClusterPlan): number | undefined {
  return plan.spec.mode === 'vxlan' ? 1500 - VXLAN.overhead : undefined;
}

/** A node's VTEP: the address of its flannel.1 (its podCIDR's network address, /32, as flannel gives it) and its MAC (from its place in the plan). */
export function vtep(plan: ClusterPlan, node: NodePlan): { ip: string; mac: string } {
  const i = plan.nodes.indexOf(node) + 1;
  return { ip: vtepIP(node.podCIDR!), mac: `0e:6b:77:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` };
}

/**
 * A node's overlay, as flannel's vxlan backend programs it: its VXLAN device (learning off),
 * and for each other node a route to its podCIDR via that node's VTEP address `onlink`, a
 * neighbour entry for the address → the VTEP's MAC, and an FDB entry for the MAC → the node's
 * underlay IP (where the wrapped packet goes).
 */
export function vxlanOps(plan: ClusterPlan, node: NodePlan): NetOp[] {
  if (plan.spec.mode !== 'vxlan') return [];
  const own = vtep(plan, node);
  const dev = VXLAN.device;
  return [
    { op: 'vxlan-add', name: dev, id: VXLAN.vni, port: VXLAN.port, local: node.ip, dev: 'eth0', learning: false, mtu: 1500 - VXLAN.overhead, mac: own.mac },
    { op: 'addr-add', dev, address: `${own.ip}/32` },
    { op: 'link-set', name: dev, up: true },
    ...plan.nodes.filter((n) => n !== node).flatMap((n) => overlayPeerOps({ ip: n.ip, podCIDR: n.podCIDR!, vtepMAC: vtep(plan, n).mac })),
  ];
}

/** Another node as the routes to its pods need it: its underlay address, its podCIDR and (vxlan) its VTEP's MAC. */
export interface Peer {
  ip: string;
  podCIDR: string;
  vtepMAC?: string;
}

/** The VTEP address of a podCIDR: its network address (flannel's choice). */
export function vtepIP(podCIDR: string): string {
  return formatIP(firstIP(tryParsePrefix(podCIDR)!));
}

/** What a node holds for one peer over the overlay: the neighbour entry for its VTEP, the FDB entry to its address, the route onlink. */
export function overlayPeerOps(peer: Peer): NetOp[] {
  const dev = VXLAN.device;
  const ip = vtepIP(peer.podCIDR);
  return [
    { op: 'neigh-replace', dev, ip, mac: peer.vtepMAC! },
    { op: 'fdb-replace', dev, mac: peer.vtepMAC!, dst: peer.ip },
    { op: 'route-add', dst: peer.podCIDR, via: ip, dev, onlink: true, replace: true },
  ];
}
