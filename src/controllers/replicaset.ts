// The ReplicaSet controller: keeps spec.replicas pods of its template, each labelled as the
// template says and owned by the ReplicaSet. Deployments own ReplicaSets (deployment.ts) and
// roll by scaling them; pods are made here, as upstream, so the events of pod creation
// (SuccessfulCreate, FailedCreate) belong to the ReplicaSet.

import type { Condition, Pod, ReplicaSet, ReplicaSetStatus } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateStatusWithRetry } from '../apiserver/retry.ts';
import { BURST_REPLICAS, ignoreNotFound, isLive, isReady, podOfTemplate, slowStart, type Requeue } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

/** Which pods to remove first (the ReplicaSet controller's ActivePods ordering): unscheduled, not ready, newest. */
export function byExpendability(a: Pod, b: Pod): number {
  return (
    Number(Boolean(a.spec.nodeName)) - Number(Boolean(b.spec.nodeName)) ||
    Number(isReady(a)) - Number(isReady(b)) ||
    (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') ||
    b.metadata.name.localeCompare(a.metadata.name)
  );
}

export interface ReplicaSetPlan {
  create: number;
  delete: Pod[];
  status: ReplicaSetStatus;
}

/** What to do next for a ReplicaSet given the pods it owns (pure). */
export function planReplicaSet(rs: ReplicaSet, owned: Pod[]): ReplicaSetPlan {
  const desired = rs.spec.replicas ?? 1;
  const live = owned.filter(isLive);
  // Pods that ran to completion hold a place on their node until removed (kubewire removes them; upstream's pod GC does later).
  const finished = owned.filter((p) => !p.metadata.deletionTimestamp && !isLive(p));
  const excess = live.length > desired ? [...live].sort(byExpendability).slice(0, live.length - desired) : [];
  return { create: Math.max(0, desired - live.length), delete: [...finished, ...excess], status: statusOf(rs, live) };
}

function statusOf(rs: ReplicaSet, live: Pod[]): ReplicaSetStatus {
  const labels = rs.spec.template.metadata?.labels ?? {};
  const ready = live.filter(isReady).length;
  return {
    replicas: live.length,
    fullyLabeledReplicas: live.filter((p) => Object.entries(labels).every(([k, v]) => p.metadata.labels?.[k] === v)).length,
    readyReplicas: ready,
    availableReplicas: ready,
    observedGeneration: rs.metadata.generation,
  };
}

/** The pod the ReplicaSet's template describes: named after the ReplicaSet, with a drawn suffix. */
export function podOfReplicaSet(rs: ReplicaSet): Pod {
  return podOfTemplate({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: rs.metadata }, rs.spec.template, { generateName: `${rs.metadata.name}-`, labels: {} });
}

/** One reconcile of the ReplicaSet namespace/name. */
export async function syncReplicaSet(ctx: ControllerContext, namespace: string, name: string, events?: EventRecorder): Promise<Requeue> {
  const rs = lister<ReplicaSet>(ctx, 'ReplicaSet').get(namespace, name);
  if (!rs || rs.metadata.deletionTimestamp) return undefined;
  const pods = lister<Pod>(ctx, 'Pod');
  const ownedNow = () => pods.indexed('owner', rs.metadata.uid!);
  const plan = planReplicaSet(rs, ownedNow());
  for (const p of plan.delete) {
    await ignoreNotFound(ctx.client.delete(rt('Pod'), namespace, p.metadata.name));
    events?.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
  }
  const { done, error } = await slowStart(Math.min(plan.create, BURST_REPLICAS), async () => {
    const pod = await ctx.client.create(rt('Pod'), podOfReplicaSet(rs));
    events?.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
  });
  const failure = error === undefined ? undefined : `Error creating: ${error instanceof Error ? error.message : String(error)}`;
  if (failure) events?.record(rs, 'Warning', 'FailedCreate', failure);
  const status = done || plan.delete.length ? planReplicaSet(rs, ownedNow()).status : plan.status;
  // ReplicaFailure while pods cannot be created (a quota, the cluster's pod limit); the Deployment shows it too.
  const previous = rs.status?.conditions?.find((c) => c.type === 'ReplicaFailure');
  const conditions: Condition[] = failure ? [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure, lastTransitionTime: previous?.lastTransitionTime ?? now() }] : [];
  if (conditions.length) status.conditions = conditions;
  if (JSON.stringify(status) !== JSON.stringify(rs.status)) await ignoreNotFound(updateStatusWithRetry(ctx.client, rt('ReplicaSet'), rs, status)); // gone meanwhile: nothing to report
  return failure ? 'backoff' : plan.create > done ? 'now' : undefined;
}
