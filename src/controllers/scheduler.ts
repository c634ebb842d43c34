// The scheduler: binds each pending pod to a node. Pods that name a node (spec.nodeName)
// are never touched here; the rest go to the ready node with the fewest pods of the same
// owner, then the fewest pods overall (spreading), ties broken by name.

import type { Node, Pod } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import type { EventRecorder } from '../apiserver/events.ts';

export function isSchedulable(node: Node): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return ready && Boolean(node.spec?.podCIDR) && !node.spec?.unschedulable;
}

function ownerUid(pod: Pod): string | undefined {
  return (pod.metadata.ownerReferences as Array<{ uid: string; controller?: boolean }> | undefined)?.find((o) => o.controller)?.uid;
}

/** The node for `pod` given the nodes and the pods already bound (pure). */
export function pickNode(pod: Pod, nodes: Node[], bound: Pod[]): string | undefined {
  const candidates = nodes.filter(isSchedulable).map((n) => n.metadata.name).sort();
  if (!candidates.length) return undefined;
  const owner = ownerUid(pod);
  const score = new Map(candidates.map((n) => [n, { siblings: 0, total: 0 }]));
  for (const p of bound) {
    const s = score.get(p.spec.nodeName ?? '');
    if (!s || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    s.total++;
    if (owner && ownerUid(p) === owner) s.siblings++;
  }
  return candidates.reduce((best, n) => {
    const a = score.get(n)!;
    const b = score.get(best)!;
    return a.siblings < b.siblings || (a.siblings === b.siblings && a.total < b.total) ? n : best;
  });
}

/** Binds every unbound pod it can; returns how many it bound. */
export function schedulePending(api: Api, events?: EventRecorder): number {
  const pods = api.list('Pod').items as Pod[];
  const pending = pods.filter((p) => !p.spec.nodeName && !p.metadata.deletionTimestamp);
  if (!pending.length) return 0;
  const nodes = api.list('Node').items as Node[];
  const bound = pods.filter((p) => p.spec.nodeName);
  let n = 0;
  for (const pod of pending.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))) {
    const node = pickNode(pod, nodes, bound);
    if (!node) break;
    const updated = api.mutate<Pod>({ kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name }, (p) => (p.spec.nodeName ? undefined : { ...p, spec: { ...p.spec, nodeName: node } }));
    bound.push(updated);
    events?.record(updated, 'Normal', 'Scheduled', `Successfully assigned ${updated.metadata.namespace}/${updated.metadata.name} to ${node}`);
    n++;
  }
  return n;
}
