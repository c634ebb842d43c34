// Builds and removes a cluster's network on the real kernel: the underlay namespace (a
// bridge for the L2 segment, and the router on it), one namespace per node (eth0 on the
// underlay, forwarding on, its CNI configuration and plugins), and the external client.
// Nothing is added to the machine's root namespace: every link is created inside a lab
// namespace, with its peer sent straight into another.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { installPlugins } from '../cni/install.ts';
import { writeConfListAtomically } from '../cni/runtime/conflist.ts';
import { transaction } from '../dataplane/iptables-text.ts';
import type { Dataplane, IptablesBackend, Netns, NetOp } from '../dataplane/port.ts';
import { fabricBase, fabricOps, netnsPrefix, nodeMAC, nodeRoutes, podMTU, routerRoutes, underlayMAC, UNDERLAY, VPC, vpcSnatLines, vxlanOps, type ClusterPlan, type NodePlan } from './plan.ts';

const UNDERLAY_BITS = UNDERLAY.subnet.split('/')[1];

export interface NodeFiles {
  binDir: string;
  confDir: string;
  ipamDir: string;
  cacheDir: string;
}

export function nodeFiles(stateDir: string, node: NodePlan): NodeFiles {
  const root = join(stateDir, 'nodes', node.name);
  return { binDir: join(root, 'cni', 'bin'), confDir: join(root, 'cni', 'net.d'), ipamDir: join(root, 'cni', 'networks'), cacheDir: join(root, 'cni', 'cache') };
}

/**
 * The iptables a cluster's nodes use when `up --iptables-backend` does not say: legacy where
 * the kernel has it (probed inside a node's namespace: nothing of the host's is touched),
 * because kube-proxy's rules at scale load an order of magnitude faster through it
 * (2,000 Services x 10 endpoints: 1.3 s against 31 s through nft); nft otherwise.
 */
export async function chooseIptablesBackend(node: Netns): Promise<IptablesBackend> {
  return (await node.iptablesUsable('legacy')) ? 'legacy' : 'nft';
}

/** Where the daemon's CNI plugin server listens: the nodes' shims reach it by a link in their bin directory. */
export function cniServerSocket(clusterDir: string): string {
  return join(clusterDir, 'cni.sock');
}

/** Where a node's ipamd (vpc mode) listens for the `vpc` IPAM plugin. */
export function ipamdSocket(files: NodeFiles): string {
  return join(files.confDir, '..', 'ipamd.sock');
}

/** Where a node's ipamd checkpoints its pool (which address is whose). */
export function ipamdCheckpoint(files: NodeFiles): string {
  return join(files.confDir, '..', 'ipamd.json');
}

/** The node's CNI network in vpc mode: a ptp pair per pod with an address from the node's pool (the `vpc` IPAM asks its ipamd), portmap. */
export function vpcConflist(files: NodeFiles, iptables?: IptablesBackend): object {
  return {
    cniVersion: '1.1.0',
    name: 'kubewire',
    plugins: [
      // ipMasq off: the node's SNAT (vpcSnatLines) decides what leaves the VPC with the node's address.
      { type: 'ptp', ipMasq: false, ipam: { type: 'vpc', socket: ipamdSocket(files) } },
      { type: 'portmap', capabilities: { portMappings: true }, ...(iptables ? { iptablesBackend: iptables } : {}) },
    ],
  };
}

/** The node's CNI network: bridge cni0 as the pods' gateway, host-local on the node's podCIDR, portmap. */
export function nodeConflist(node: NodePlan, files: NodeFiles, iptables?: IptablesBackend, mtu?: number): object {
  return {
    cniVersion: '1.1.0',
    name: 'kubewire',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        isDefaultGateway: true,
        hairpinMode: true,
        // Under an overlay, pod packets leave room for what wraps them (vxlan: 1450).
        ...(mtu ? { mtu } : {}),
        // No ipMasq: pod traffic to other nodes' pods must keep the pod's own address.
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: node.podCIDR! }]], dataDir: files.ipamDir },
      },
      // iptablesBackend: kubewire's portmap goes through the same iptables as the node's other rules.
      { type: 'portmap', capabilities: { portMappings: true }, ...(iptables ? { iptablesBackend: iptables } : {}) },
    ],
  };
}

/** Node kernel settings: forwarding, bridged traffic through iptables (for Services), loose rp_filter, no redirects. */
export const NODE_SYSCTLS: Record<string, string> = {
  'net/ipv4/ip_forward': '1',
  'net/bridge/bridge-nf-call-iptables': '1',
  'net/ipv4/conf/all/rp_filter': '2',
  'net/ipv4/conf/default/rp_filter': '2',
  'net/ipv4/conf/all/accept_redirects': '0',
};

/**
 * vpc mode: rp_filter as on an EKS node. The distribution's default is strict (Amazon Linux 2's
 * systemd sysctl.d/50-default.conf: all and default 1), and the AWS VPC CNI loosens only the
 * primary interface (aws-vpc-cni-init: "Configure rp_filter in loose mode",
 * net/ipv4/conf/eth0/rp_filter = 2), where NodePort answers may come back another way. A pod's
 * pair is thus strict: a packet from a pod with any source but its own address dies on its node,
 * even another pod's of the same node, which the VPC's source check (the ENI's) lets through.
 */
export const VPC_NODE_SYSCTLS: Record<string, string> = {
  ...NODE_SYSCTLS,
  'net/ipv4/conf/all/rp_filter': '1',
  'net/ipv4/conf/default/rp_filter': '1',
  'net/ipv4/conf/eth0/rp_filter': '2',
};

/** The router forwards between nodes and must not redirect them to each other: the seed's path goes through it. */
export const ROUTER_SYSCTLS: Record<string, string> = {
  'net/ipv4/ip_forward': '1',
  'net/ipv4/conf/all/send_redirects': '0',
  'net/ipv4/conf/default/send_redirects': '0',
};

/**
 * The node's masquerade for pod traffic leaving the cluster (what kindnet and ip-masq-agent
 * do): pod-to-pod traffic keeps the pod's address, anything else leaves with the node's.
 */
export function nodeMasqueradeLines(podCIDR: string): string[] {
  return [
    ':KUBEWIRE-POSTROUTING - [0:0]',
    '-A POSTROUTING -m comment --comment "kubewire: masquerade pod traffic leaving the cluster" -j KUBEWIRE-POSTROUTING',
    `-A KUBEWIRE-POSTROUTING -d ${podCIDR} -j RETURN`,
    `-A KUBEWIRE-POSTROUTING -s ${podCIDR} -j MASQUERADE`,
  ];
}

/** A namespace's usual start: lo up, eth0 on the underlay with its address, the default route via the router. */
function onUnderlay(ip: string, extraRoutes: Array<{ dst: string; via: string }> = []): NetOp[] {
  return [
    { op: 'link-set', name: 'lo', up: true },
    { op: 'addr-add', dev: 'eth0', address: `${ip}/${UNDERLAY_BITS}` },
    { op: 'link-set', name: 'eth0', up: true },
    { op: 'route-add', dst: 'default', via: UNDERLAY.router },
    ...extraRoutes.map((r): NetOp => ({ op: 'route-add', dst: r.dst, via: r.via })),
  ];
}

/** Creates everything; on failure removes what it made and rethrows. `progress` narrates. */
export async function buildCluster(dp: Dataplane, plan: ClusterPlan, stateDir: string, progress: (line: string) => void = () => {}): Promise<void> {
  try {
    progress(`creating namespaces: network, ${plan.nodes.map((n) => n.name).join(', ')}, external`);
    for (const ns of [plan.networkNetns, ...plan.nodes.map((n) => n.netns), plan.externalNetns]) await dp.createNetns(ns);
    const network = dp.at(dp.netnsPath(plan.networkNetns));
    const node = (n: { netns: string }) => dp.at(dp.netnsPath(n.netns));

    const vpc = plan.spec.mode === 'vpc';
    progress(`underlay ${UNDERLAY.subnet}: bridge and router ${UNDERLAY.router} (mode ${plan.spec.mode})${vpc ? '; as a VPC: it answers every ARP from its own table and floods nothing' : ''}`);
    // A VPC knows every interface on it: the ports answer ARP from the bridge's table (proxy_arp) and learn nothing.
    const port = (name: string): NetOp => ({ op: 'link-set', name, master: UNDERLAY.bridge, up: true, ...(vpc ? { proxyArp: true, learning: false } : {}) });
    await network.apply(
      [
        { op: 'link-set', name: 'lo', up: true },
        { op: 'link-add', name: UNDERLAY.bridge, kind: 'bridge' },
        { op: 'addr-add', dev: UNDERLAY.bridge, address: `${UNDERLAY.router}/${UNDERLAY_BITS}` },
        { op: 'link-set', name: UNDERLAY.bridge, up: true },
        ...plan.nodes.flatMap((n): NetOp[] => [
          { op: 'veth-add', name: n.underlayPort, peer: 'eth0', peerNetns: dp.netnsPath(n.netns), ...(vpc ? { peerMac: nodeMAC(plan, n) } : {}) },
          port(n.underlayPort),
        ]),
        { op: 'veth-add', name: 'external', peer: 'eth0', peerNetns: dp.netnsPath(plan.externalNetns), ...(vpc ? { peerMac: underlayMAC(200) } : {}) },
        port('external'),
        ...routerRoutes(plan).map((r): NetOp => ({ op: 'route-add', dst: r.dst, via: r.via })),
        ...(vpc ? [...fabricOps(fabricBase(plan)), { op: 'route-add', dst: `${VPC.outside}/32`, via: UNDERLAY.external } as const] : []),
      ],
      { sysctls: ROUTER_SYSCTLS },
    );

    const outward = vpc ? (plan.spec.externalSNAT ? 'no SNAT (--external-snat)' : 'SNAT of pod traffic leaving the VPC') : 'masquerade out of the cluster';
    progress(`nodes: eth0 on the underlay, default route to the router, forwarding, ${outward}, CNI config and plugins${plan.spec.mode === 'vxlan' ? ', the VXLAN overlay (flannel.1, VNI 1, UDP 8472)' : ''}${vpc ? ' (ptp + the vpc IPAM)' : ''}`);
    await Promise.all([
      ...plan.nodes.map(async (n) => {
        await node(n).apply([...onUnderlay(n.ip, nodeRoutes(plan, n)), ...vxlanOps(plan, n)], { sysctls: plan.spec.mode === 'vpc' ? VPC_NODE_SYSCTLS : NODE_SYSCTLS });
        // A node's eth0 merges what it receives (GRO), as a NIC does; a veth does not unless told.
        // Worth about 10% of VXLAN's throughput here (bench:modes); nothing measurable to the others.
        await node(n).apply([{ op: 'offload', dev: 'eth0', gro: true }]).catch(() => progress(`${n.name}: eth0 keeps GRO off (ethtool missing or refused)`));
      }),
      // In vpc mode the client also stands for the world outside the VPC (VPC.outside), where SNAT shows.
      dp.at(dp.netnsPath(plan.externalNetns)).apply([...onUnderlay(UNDERLAY.external), ...(plan.spec.mode === 'vpc' ? [{ op: 'addr-add', dev: 'eth0', address: `${VPC.outside}/32` } as const] : [])]),
    ]);
    plan.spec.iptablesBackend ??= await chooseIptablesBackend(node(plan.nodes[0]!));
    progress(`iptables: ${plan.spec.iptablesBackend}`);
    await Promise.all(plan.nodes.map((n) => {
      const nat = plan.spec.mode === 'vpc' ? vpcSnatLines(plan, n) : nodeMasqueradeLines(plan.spec.podCIDR);
      return nat.length ? node(n).iptablesRestore(transaction('nat', nat), 4, plan.spec.iptablesBackend) : undefined;
    }));
    for (const n of plan.nodes) {
      const files = nodeFiles(stateDir, n);
      for (const dir of Object.values(files)) mkdirSync(dir, { recursive: true });
      installPlugins({ dir: files.binDir, socket: cniServerSocket(stateDir) });
      const conflist = plan.spec.mode === 'vpc' ? vpcConflist(files, plan.spec.iptablesBackend) : nodeConflist(n, files, plan.spec.iptablesBackend, podMTU(plan));
      writeConfListAtomically(join(files.confDir, '10-kubewire.conflist'), conflist);
    }
  } catch (e) {
    // The build's own error is the one to report; a namespace that would not go is found
    // by the next `up` ("already exists") and removed by `down`.
    await removeClusterNetwork(dp, plan.spec.name).catch(() => undefined);
    rmSync(join(stateDir, 'nodes'), { recursive: true, force: true });
    throw e;
  }
}

/** The namespaces of a cluster, found by name (so that even a half-built cluster is found). */
export function clusterNamespaces(dp: Dataplane, cluster: string): Promise<string[]> {
  return dp.listNetns(netnsPrefix(cluster));
}

/** Deletes every namespace of the cluster (links inside go with them); tries all, then reports failures. */
export async function removeClusterNetwork(dp: Dataplane, cluster: string): Promise<string[]> {
  const namespaces = await clusterNamespaces(dp, cluster);
  const failures: string[] = [];
  // Processes left inside would keep a namespace alive: deleteNetns ends them first.
  for (const ns of namespaces) await dp.deleteNetns(ns).catch((e: Error) => failures.push(e.message));
  if (failures.length) throw new Error(`could not remove ${failures.length} namespace(s) of cluster ${cluster}: ${failures.join('; ')}`);
  return namespaces;
}
