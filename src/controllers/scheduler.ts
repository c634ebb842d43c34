// The scheduler: binds each pending pod to a node. Pods that name a node (spec.nodeName)
// are never touched here; the rest go to the ready node with room (fewer pods than its
// allocatable pods, the kubelet's maxPods) whose labels match the pod's nodeSelector, with
// the fewest pods of the same owner, then the fewest pods overall (spreading), ties broken by name. A pod no node can take stays
// Pending with a FailedScheduling event that says why, as kube-scheduler's does.

import { DEFAULT_MAX_PODS, type Node, type Pod } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateWithRetry } from '../apiserver/retry.ts';
import { isNotFound } from '../apiserver/status.ts';
import { lister, rt, type ControllerContext } from './context.ts';
import { matches } from '../api/labels.ts';

/**
 * Whether the node's pod network is up: its NetworkUnavailable condition says so (as a cloud
 * route controller or a CNI daemon posts it), or else it has its podCIDR (node IPAM's).
 */
export function networkAvailable(node: Node): boolean {
  const unavailable = node.status?.conditions?.find((c) => c.type === 'NetworkUnavailable')?.status;
  return unavailable === undefined ? Boolean(node.spec?.podCIDR) : unavailable === 'False';
}

export function isSchedulable(node: Node): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return ready && networkAvailable(node) && !node.spec?.unschedulable;
}

function ownerUid(pod: Pod): string | undefined {
  return (pod.metadata.ownerReferences as Array<{ uid: string; controller?: boolean }> | undefined)?.find((o) => o.controller)?.uid;
}

/** The pods a node takes (status.allocatable.pods; the kubelet's default maxPods when unset). */
export function podCapacity(node: Node): number {
  const n = Number(node.status?.allocatable?.pods ?? node.status?.capacity?.pods);
  return Number.isInteger(n) && n >= 0 ? n : DEFAULT_MAX_PODS;
}

/** The node for `pod` given the nodes and the pods already bound, or why there is none (pure). */
export function pickNode(pod: Pod, nodes: Node[], bound: Pod[]): string | { unschedulable: string } {
  const selector = pod.spec.nodeSelector;
  const selected = (n: Node) => !selector || matches({ matchLabels: selector }, n.metadata.labels);
  const mismatched = nodes.filter((n) => !selected(n)).length;
  const schedulable = nodes.filter((n) => isSchedulable(n) && selected(n));
  const owner = ownerUid(pod);
  const score = new Map(schedulable.map((n) => [n.metadata.name, { siblings: 0, total: 0 }]));
  for (const p of bound) {
    const s = score.get(p.spec.nodeName ?? '');
    if (!s || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    s.total++;
    if (owner && ownerUid(p) === owner) s.siblings++;
  }
  const candidates = schedulable.filter((n) => score.get(n.metadata.name)!.total < podCapacity(n)).map((n) => n.metadata.name).sort();
  if (!candidates.length) {
    const full = schedulable.length;
    const reasons = [full && `${full} Too many pods`, mismatched && `${mismatched} node(s) didn't match Pod's node affinity/selector`, nodes.length - full - mismatched && `${nodes.length - full - mismatched} node(s) were not ready or had no pod network`].filter(Boolean);
    return { unschedulable: `0/${nodes.length} nodes are available${reasons.length ? `: ${reasons.join(', ')}` : ''}.` };
  }
  return candidates.reduce((best, n) => {
    const a = score.get(n)!;
    const b = score.get(best)!;
    return a.siblings < b.siblings || (a.siblings === b.siblings && a.total < b.total) ? n : best;
  });
}

/** Bindings at most per pass (the rest in the next one): the API server shares this event loop. */
export const BIND_BATCH = 32;

/** Binds the unbound pods it can, oldest first, at most BIND_BATCH; returns how many it bound. */
export async function schedulePending(ctx: ControllerContext, events?: EventRecorder, batch = BIND_BATCH): Promise<number> {
  const pods = lister<Pod>(ctx, 'Pod');
  const pending = pods.indexed('unscheduled', '');
  if (!pending.length) return 0;
  const nodes = lister<Node>(ctx, 'Node').list().sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const bound = nodes.flatMap((n) => pods.indexed('nodeName', n.metadata.name));
  let n = 0;
  for (const pod of pending.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))) {
    if (n === batch) break;
    const node = pickNode(pod, nodes, bound);
    if (typeof node !== 'string') {
      events?.record(pod, 'Warning', 'FailedScheduling', node.unschedulable);
      continue;
    }
    let updated: Pod;
    try {
      updated = await updateWithRetry<Pod>(ctx.client, rt('Pod'), pod, (p) => (p.spec.nodeName ? undefined : { ...p, spec: { ...p.spec, nodeName: node } }));
    } catch (e) {
      if (isNotFound(e)) continue; // deleted while pending
      throw e;
    }
    bound.push(updated);
    events?.record(updated, 'Normal', 'Scheduled', `Successfully assigned ${updated.metadata.namespace}/${updated.metadata.name} to ${node}`);
    n++;
  }
  return n;
}
