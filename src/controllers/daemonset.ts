// The DaemonSet controller: one pod on every node whose labels match the template's
// nodeSelector and whose pod network is up, bound to it directly (spec.nodeName; upstream
// pins it with node affinity and lets the scheduler bind it, to the same effect), whatever
// the node's schedulability (DaemonSet pods tolerate cordoned nodes). Pods on nodes that no
// longer match go; a failed one is replaced; a new template replaces them one node at a
// time, each once the rest are ready (RollingUpdate, maxUnavailable 1), or on deletion (OnDelete).

import { matches } from '../api/labels.ts';
import type { DaemonSet, DaemonSetStatus, Node, Pod } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateStatusWithRetry } from '../apiserver/retry.ts';
import { ignoreNotFound, isReady, podOfTemplate, templateHash, type Requeue } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';
import { networkAvailable } from './scheduler.ts';
import { REVISION_LABEL } from './statefulset.ts';

/** Whether the DaemonSet wants a pod on `node` (pure). */
export function nodeWanted(ds: DaemonSet, node: Node): boolean {
  const selector = ds.spec.template.spec.nodeSelector;
  return (!selector || matches({ matchLabels: selector }, node.metadata.labels)) && networkAvailable(node) && !node.metadata.deletionTimestamp;
}

/** The DaemonSet's pod for `node`. */
export function daemonPod(ds: DaemonSet, node: string): Pod {
  return podOfTemplate({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: ds.metadata }, ds.spec.template, { generateName: `${ds.metadata.name}-`, labels: { [REVISION_LABEL]: templateHash(ds.spec.template) }, spec: { nodeName: node } });
}

export interface DaemonPlan {
  /** Nodes to create a pod on. */
  create: string[];
  delete: Pod[];
  status: DaemonSetStatus;
}

const finished = (p: Pod) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded';

/** What to do next for a DaemonSet given the nodes and the pods it owns (pure). */
export function planDaemonSet(ds: DaemonSet, nodes: Node[], owned: Pod[]): DaemonPlan {
  const hash = templateHash(ds.spec.template);
  const wanted = new Set(nodes.filter((n) => nodeWanted(ds, n)).map((n) => n.metadata.name));
  const byNode = new Map<string, Pod[]>();
  for (const p of owned) {
    const list = byNode.get(p.spec.nodeName ?? '') ?? [];
    list.push(p);
    byNode.set(p.spec.nodeName ?? '', list);
  }
  const create: string[] = [];
  const del: Pod[] = [];
  let misscheduled = 0;
  for (const [node, pods] of byNode) {
    const alive = pods.filter((p) => !p.metadata.deletionTimestamp);
    if (!wanted.has(node)) {
      misscheduled += alive.length;
      del.push(...alive);
      continue;
    }
    del.push(...alive.filter(finished));
    // More than one on a node: the ready, oldest one stays.
    const keep = alive.filter((p) => !finished(p)).sort((a, b) => Number(isReady(b)) - Number(isReady(a)) || (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name));
    del.push(...keep.slice(1));
  }
  for (const node of [...wanted].sort()) {
    const pods = byNode.get(node) ?? [];
    // A node whose pod is going gets its new one once the old one is gone.
    if (!pods.some((p) => !p.metadata.deletionTimestamp && !finished(p)) && !pods.some((p) => p.metadata.deletionTimestamp)) create.push(node);
  }
  const current = [...wanted].map((n) => (byNode.get(n) ?? []).find((p) => !p.metadata.deletionTimestamp && !finished(p))).filter((p): p is Pod => Boolean(p));
  const ready = current.filter(isReady).length;
  if (ds.spec.updateStrategy?.type !== 'OnDelete' && !del.length && !create.length && ready === wanted.size) {
    const old = current.filter((p) => p.metadata.labels?.[REVISION_LABEL] !== hash).sort((a, b) => (a.spec.nodeName ?? '').localeCompare(b.spec.nodeName ?? ''));
    if (old.length) del.push(old[0]!);
  }
  return {
    create,
    delete: del,
    status: {
      observedGeneration: ds.metadata.generation,
      desiredNumberScheduled: wanted.size,
      currentNumberScheduled: current.length,
      numberMisscheduled: misscheduled,
      numberReady: ready,
      numberAvailable: ready,
      numberUnavailable: wanted.size - ready,
      updatedNumberScheduled: current.filter((p) => p.metadata.labels?.[REVISION_LABEL] === hash).length,
    },
  };
}

/** One reconcile of the DaemonSet namespace/name. */
export async function syncDaemonSet(ctx: ControllerContext, namespace: string, name: string, events?: EventRecorder): Promise<Requeue> {
  const ds = lister<DaemonSet>(ctx, 'DaemonSet').get(namespace, name);
  if (!ds || ds.metadata.deletionTimestamp) return undefined;
  const pods = lister<Pod>(ctx, 'Pod');
  const owned = () => pods.indexed('owner', ds.metadata.uid!);
  const nodes = lister<Node>(ctx, 'Node').list();
  const plan = planDaemonSet(ds, nodes, owned());
  for (const p of plan.delete) {
    await ignoreNotFound(ctx.client.delete(rt('Pod'), namespace, p.metadata.name));
    events?.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
  }
  let failure: string | undefined;
  for (const node of plan.create) {
    try {
      const pod = await ctx.client.create(rt('Pod'), daemonPod(ds, node));
      events?.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
    } catch (e) {
      failure = `Error creating: ${e instanceof Error ? e.message : String(e)}`;
      events?.record(ds, 'Warning', 'FailedCreate', failure);
      break;
    }
  }
  const status = plan.create.length || plan.delete.length ? planDaemonSet(ds, nodes, owned()).status : plan.status;
  if (JSON.stringify(status) !== JSON.stringify(ds.status)) await ignoreNotFound(updateStatusWithRetry(ctx.client, rt('DaemonSet'), ds, status)); // gone meanwhile: nothing to report
  return failure ? 'backoff' : undefined;
}
