// The Deployment controller: keeps spec.replicas pods of the current template, replacing
// pods of an older template as the rolling-update strategy allows (maxSurge,
// maxUnavailable, 25% each by default) or all at once (Recreate). Pods carry the label
// pod-template-hash and an ownerReference to their Deployment (kubewire has no
// ReplicaSet layer in between). Pods whose owner is gone are deleted (garbage collection).

import { createHash } from 'node:crypto';
import { safeEncode } from '../api/names.ts';
import type { Condition, Deployment, DeploymentStatus, ObjectMeta, OwnerReference, Pod, PodSpec, PodTemplateSpec } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { matches } from '../api/labels.ts';

export function templateHash(template: Deployment['spec']['template']): string {
  return safeEncode(createHash('sha256').update(JSON.stringify(template)).digest(), 10);
}

export function isReady(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

function resolve(v: number | string | undefined, fallback: string, total: number, roundUp: boolean): number {
  const value = v ?? fallback;
  if (typeof value === 'number') return value;
  const pct = Number(value.replace('%', '')) / 100;
  return roundUp ? Math.ceil(pct * total) : Math.floor(pct * total);
}

export interface ReplicaPlan {
  create: number;
  delete: Pod[];
  status: DeploymentStatus;
}

/** What to do next for a Deployment given the pods it owns (pure). */
export function planReplicas(d: Deployment, owned: Pod[]): ReplicaPlan {
  const desired = d.spec.replicas ?? 1;
  const hash = templateHash(d.spec.template);
  const live = owned.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded');
  const current = live.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash);
  const old = live.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);
  const ready = live.filter(isReady);
  // Pods that are not worth keeping first: failed ones, then unscheduled, not ready, newest.
  const byExpendability = (a: Pod, b: Pod) =>
    Number(isReady(a)) - Number(isReady(b)) || Number(Boolean(a.spec.nodeName)) - Number(Boolean(b.spec.nodeName)) || (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') || b.metadata.name.localeCompare(a.metadata.name);
  const toDelete: Pod[] = owned.filter((p) => !p.metadata.deletionTimestamp && (p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded'));
  let create = 0;

  if (d.spec.strategy?.type === 'Recreate') {
    if (old.length) toDelete.push(...old);
    else if (!owned.some((p) => p.metadata.deletionTimestamp && p.metadata.labels?.['pod-template-hash'] !== hash)) {
      create = Math.max(0, desired - current.length);
      if (current.length > desired) toDelete.push(...[...current].sort(byExpendability).slice(0, current.length - desired));
    }
  } else {
    const ru = d.spec.strategy?.rollingUpdate;
    const maxSurge = resolve(ru?.maxSurge, '25%', desired, true);
    let maxUnavailable = resolve(ru?.maxUnavailable, '25%', desired, false);
    if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    if (!old.length) {
      create = Math.max(0, desired - current.length);
      if (current.length > desired) toDelete.push(...[...current].sort(byExpendability).slice(0, current.length - desired));
    } else {
      create = Math.max(0, Math.min(desired - current.length, desired + maxSurge - live.length));
      // Old pods that are not ready cost no availability; ready ones go while enough stay ready.
      const oldSorted = [...old].sort(byExpendability);
      let canLose = ready.length - (desired - maxUnavailable);
      for (const p of oldSorted) {
        if (!isReady(p)) toDelete.push(p);
        else if (canLose > 0) {
          toDelete.push(p);
          canLose--;
        }
      }
    }
  }

  const readyCount = ready.length;
  const available: Condition = { type: 'Available', status: readyCount >= desired - resolve(d.spec.strategy?.rollingUpdate?.maxUnavailable, '25%', desired, false) ? 'True' : 'False', reason: readyCount >= desired ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable' };
  const progressing: Condition = { type: 'Progressing', status: 'True', reason: current.length === desired && !old.length && readyCount >= desired ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated' };
  return {
    create,
    delete: toDelete,
    status: {
      observedGeneration: d.metadata.generation,
      replicas: live.length,
      updatedReplicas: current.length,
      readyReplicas: readyCount,
      availableReplicas: readyCount,
      unavailableReplicas: Math.max(0, desired - readyCount),
      conditions: [available, progressing],
    },
  };
}

/**
 * A pod of a controller's template, ready to create (every workload controller's): the
 * template's metadata but its name, `name` or else `generateName` (the API server draws the
 * suffix and draws again on a collision), the controller's own labels over the template's,
 * its spec with `spec` over it, and the owner as its controller.
 */
export function podOfTemplate(
  owner: { apiVersion: string; kind: string; metadata: ObjectMeta },
  template: PodTemplateSpec,
  o: { name?: string; generateName?: string; labels: Record<string, string>; spec?: Partial<PodSpec> },
): Pod {
  const ref: OwnerReference = { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid!, controller: true, blockOwnerDeletion: true };
  const { name: _name, generateName: _generateName, ...templateMeta } = template.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...templateMeta,
      name: o.name ?? '',
      ...(o.name ? {} : { generateName: o.generateName }),
      namespace: owner.metadata.namespace,
      labels: { ...(template.metadata?.labels ?? {}), ...o.labels },
      ownerReferences: [ref],
    },
    spec: { ...structuredClone(template.spec), ...o.spec },
  };
}

/** The pod the Deployment's template describes, ready to create. */
export function podFromTemplate(d: Deployment): Pod {
  const hash = templateHash(d.spec.template);
  return podOfTemplate({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: d.metadata }, d.spec.template, { generateName: `${d.metadata.name}-${hash}-`, labels: { 'pod-template-hash': hash } });
}

export function controllerOf(obj: { metadata: ObjectMeta }): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((o) => o.controller);
}

/**
 * Pods created at most per sync (the ReplicaSet controller's burstReplicas, 500 upstream);
 * the rest come in later syncs. Smaller here: the API server shares the controllers' event
 * loop, and 32 creations (about 50 ms) is the longest it waits between two requests.
 */
export const BURST_REPLICAS = 32;

/**
 * The ReplicaSet controller's slowStartBatch: `count` calls in batches of 1, 2, 4, ...,
 * stopping at the first failure, so that a creation that cannot succeed (a quota, a bad
 * template) is tried once, not `count` times. Returns how many succeeded and the failure.
 */
export function slowStart(count: number, create: () => void): { done: number; error?: unknown } {
  let done = 0;
  for (let batch = 1; done < count; batch *= 2) {
    for (const end = Math.min(count, done + batch); done < end; ) {
      try {
        create();
        done++;
      } catch (error) {
        return { done, error };
      }
    }
  }
  return { done };
}

/** What the queue does with the key after a sync: nothing, again at once (more to create), or again after a back-off (creation failed). */
export type Requeue = 'now' | 'backoff' | undefined;

/** One reconcile of the Deployment namespace/name. */
export function syncDeployment(api: Api, namespace: string, name: string, events?: EventRecorder): Requeue {
  const d = api.tryGet<Deployment>({ kind: 'Deployment', namespace, name });
  if (!d || d.metadata.deletionTimestamp) return undefined;
  const ownedNow = () => api.store.byIndex('Pod', 'owner', d.metadata.uid!) as Pod[];
  const plan = planReplicas(d, ownedNow());
  for (const p of plan.delete) {
    api.delete({ kind: 'Pod', namespace, name: p.metadata.name });
    events?.record(d, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
  }
  const { done, error } = slowStart(Math.min(plan.create, BURST_REPLICAS), () => {
    const pod = api.create(podFromTemplate(d));
    events?.record(d, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
  });
  const failure = error === undefined ? undefined : `Error creating: ${error instanceof Error ? error.message : String(error)}`;
  if (failure) events?.record(d, 'Warning', 'FailedCreate', failure);
  if (done || plan.delete.length) {
    // The status reflects the pods as they are now.
    plan.status = planReplicas(d, ownedNow()).status;
  }
  // ReplicaFailure while pods cannot be created (a quota, the cluster's pod limit), as the ReplicaSet shows it.
  if (failure) plan.status.conditions!.push({ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure });
  const previous = d.status?.conditions ?? [];
  const stamp = now();
  plan.status.conditions = plan.status.conditions!.map((c) => {
    const old = previous.find((o) => o.type === c.type);
    return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : stamp };
  });
  api.updateStatus({ kind: 'Deployment', namespace, name }, plan.status);
  return failure ? 'backoff' : plan.create > done ? 'now' : undefined;
}

/** The kinds whose pods the garbage collector removes when their owner is gone. */
export const POD_OWNER_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];

/** Garbage collection: pods whose controlling Deployment, StatefulSet, DaemonSet or Job no longer exists. */
export function collectOrphans(api: Api): number {
  const uids = new Set(POD_OWNER_KINDS.flatMap((k) => api.store.list(k).items.map((d) => d.metadata.uid)));
  let n = 0;
  for (const owner of api.store.indexValues('Pod', 'owner').keys()) {
    if (uids.has(owner)) continue;
    for (const p of api.store.byIndex('Pod', 'owner', owner) as Pod[]) {
      if (POD_OWNER_KINDS.includes(controllerOf(p)?.kind ?? '') && !p.metadata.deletionTimestamp) {
        api.delete({ kind: 'Pod', namespace: p.metadata.namespace, name: p.metadata.name });
        n++;
      }
    }
  }
  return n;
}

/** Deployments in a namespace whose selector picks this pod (what to resync on a pod event). */
export function deploymentsFor(api: Api, pod: Pod): string[] {
  const owner = controllerOf(pod);
  if (owner?.kind === 'Deployment') return [owner.name];
  return (api.list('Deployment', pod.metadata.namespace).items as Deployment[]).filter((d) => matches(d.spec.selector, pod.metadata.labels)).map((d) => d.metadata.name);
}
