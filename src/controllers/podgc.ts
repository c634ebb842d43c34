// The pod garbage collector, as kube-controller-manager's PodGC does it for pods bound to a
// node that does not exist: nobody will ever run them, nor finish their deletion. A
// terminating one goes at once; any other after 40 s (a node being registered gets the time
// to appear), with a Warning before, so that `describe pod` says why it never started.

import type { Pod } from '../api/types.ts';
import { lister, rt, type ControllerContext } from './context.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { nameKey } from '../apiserver/workqueue.ts';

/** How long a pod of a missing node is kept (PodGC's quarantine). */
export const ORPHAN_QUARANTINE_MS = 40_000;

export interface OrphanDecision {
  /** Pods to remove now. */
  remove: Pod[];
  /** Pods seen orphaned for the first time. */
  found: Pod[];
  /** When to look again, if some are waiting out the quarantine. */
  recheckInMs?: number;
}

/** What to do with pods whose node is not among `nodes`; `since` holds when each was first seen so (pure but for `since`). */
export function orphanedPods(pods: Pod[], nodes: Set<string>, since: Map<string, number>, now: number): OrphanDecision {
  const out: OrphanDecision = { remove: [], found: [] };
  const orphans = new Set<string>();
  for (const p of pods) {
    const node = p.spec.nodeName;
    if (!node || nodes.has(node)) continue;
    const uid = p.metadata.uid ?? nameKey(p.metadata.namespace, p.metadata.name);
    orphans.add(uid);
    const first = since.get(uid) ?? (since.set(uid, now), out.found.push(p), now);
    const left = ORPHAN_QUARANTINE_MS - (now - first);
    if (p.metadata.deletionTimestamp || left <= 0) out.remove.push(p);
    else out.recheckInMs = Math.min(out.recheckInMs ?? Infinity, left);
  }
  for (const uid of since.keys()) if (!orphans.has(uid)) since.delete(uid);
  return out;
}

/** One pass of the collector; returns when to look again, if at all. */
export async function collectPodsOfMissingNodes(ctx: ControllerContext, since: Map<string, number>, events?: EventRecorder, now = Date.now()): Promise<number | undefined> {
  const nodes = new Set(lister(ctx, 'Node').list().map((n) => n.metadata.name));
  const d = orphanedPods(lister<Pod>(ctx, 'Pod').list(), nodes, since, now);
  for (const p of d.found) {
    if (!p.metadata.deletionTimestamp) events?.record(p, 'Warning', 'NodeNotFound', `node ${JSON.stringify(p.spec.nodeName)} does not exist: the pod cannot start, and is deleted in ${ORPHAN_QUARANTINE_MS / 1000} s (pod garbage collection)`);
  }
  for (const p of d.remove) {
    try {
      await ctx.client.delete(rt('Pod'), p.metadata.namespace, p.metadata.name, { gracePeriodSeconds: 0 });
    } catch {
      // deleted meanwhile
    }
  }
  return d.recheckInMs;
}
