// Node IPAM (kube-controller-manager's range allocator): each node gets a podCIDR cut
// from the cluster's range, the lowest free one, and keeps it for life.

import { nodeCIDR } from '../cluster/plan.ts';
import type { Node } from '../api/types.ts';
import { updateWithRetry } from '../apiserver/retry.ts';
import { lister, rt, type ControllerContext } from './context.ts';

/** podCIDRs for the nodes that have none, in the order given (pure). */
export function assignPodCIDRs(nodes: Array<{ name: string; podCIDR?: string }>, clusterCIDR: string, mask: number): Map<string, string> {
  const used = new Set(nodes.map((n) => n.podCIDR).filter(Boolean));
  const out = new Map<string, string>();
  let next = 0;
  for (const n of nodes) {
    if (n.podCIDR) continue;
    let cidr: string;
    do cidr = nodeCIDR(clusterCIDR, mask, next++); // throws when the range is full
    while (used.has(cidr));
    used.add(cidr);
    out.set(n.name, cidr);
  }
  return out;
}

export async function syncNodeCIDRs(ctx: ControllerContext, clusterCIDR: string, mask: number): Promise<void> {
  const nodes = lister<Node>(ctx, 'Node').list().sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  const assigned = assignPodCIDRs(nodes.map((n) => ({ name: n.metadata.name, podCIDR: n.spec?.podCIDR })), clusterCIDR, mask);
  for (const node of nodes) {
    const cidr = assigned.get(node.metadata.name);
    if (cidr) await updateWithRetry<Node>(ctx.client, rt('Node'), node, (n) => (n.spec?.podCIDR ? undefined : { ...n, spec: { ...n.spec, podCIDR: cidr, podCIDRs: [cidr] } }));
  }
}
