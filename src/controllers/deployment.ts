// The Deployment controller: keeps spec.replicas pods of the current template, replacing
// pods of an older template as the rolling-update strategy allows (maxSurge,
// maxUnavailable, 25% each by default) or all at once (Recreate). Pods carry the label
// pod-template-hash and an ownerReference to their Deployment (kubewire has no
// ReplicaSet layer in between). Pods whose owner is gone are deleted (garbage collection).

import { createHash, randomBytes } from 'node:crypto';
import type { Condition, Deployment, DeploymentStatus, ObjectMeta, OwnerReference, Pod } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { matches } from '../api/labels.ts';

// Kubernetes' SafeEncodeString alphabet: no vowels, no look-alikes, so names never spell words.
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function safeEncode(bytes: Buffer, length: number): string {
  return Array.from(bytes.subarray(0, length), (b) => ALPHABET[b % ALPHABET.length]).join('');
}

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

/** The pod the Deployment's template describes, ready to create. */
export function podFromTemplate(d: Deployment): Pod {
  const hash = templateHash(d.spec.template);
  const owner: OwnerReference = { apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid!, controller: true, blockOwnerDeletion: true };
  const suffix = safeEncode(randomBytes(5), 5);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(d.spec.template.metadata ?? {}),
      name: `${d.metadata.name}-${hash}-${suffix}`,
      namespace: d.metadata.namespace,
      labels: { ...(d.spec.template.metadata?.labels ?? {}), 'pod-template-hash': hash },
      ownerReferences: [owner],
    },
    spec: structuredClone(d.spec.template.spec),
  };
}

export function controllerOf(obj: { metadata: ObjectMeta }): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((o) => o.controller);
}

/** One reconcile of the Deployment namespace/name. */
export function syncDeployment(api: Api, namespace: string, name: string, events?: EventRecorder): void {
  const d = api.tryGet<Deployment>({ kind: 'Deployment', namespace, name });
  if (!d || d.metadata.deletionTimestamp) return;
  const pods = api.list('Pod', namespace).items as Pod[];
  const owned = pods.filter((p) => controllerOf(p)?.uid === d.metadata.uid);
  const plan = planReplicas(d, owned);
  for (const p of plan.delete) {
    api.delete({ kind: 'Pod', namespace, name: p.metadata.name });
    events?.record(d, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
  }
  for (let i = 0; i < plan.create; i++) {
    const pod = api.create(podFromTemplate(d));
    events?.record(d, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
  }
  if (plan.create || plan.delete.length) {
    // The status reflects the pods as they are now.
    const after = (api.list('Pod', namespace).items as Pod[]).filter((p) => controllerOf(p)?.uid === d.metadata.uid);
    plan.status = planReplicas(d, after).status;
  }
  const previous = d.status?.conditions ?? [];
  const stamp = now();
  plan.status.conditions = plan.status.conditions!.map((c) => {
    const old = previous.find((o) => o.type === c.type);
    return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : stamp };
  });
  api.updateStatus({ kind: 'Deployment', namespace, name }, plan.status);
}

/** Garbage collection: pods whose controlling Deployment no longer exists. */
export function collectOrphans(api: Api): number {
  const uids = new Set(api.list('Deployment').items.map((d) => d.metadata.uid));
  let n = 0;
  for (const p of api.list('Pod').items as Pod[]) {
    const owner = controllerOf(p);
    if (owner?.kind === 'Deployment' && !uids.has(owner.uid) && !p.metadata.deletionTimestamp) {
      api.delete({ kind: 'Pod', namespace: p.metadata.namespace, name: p.metadata.name });
      n++;
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
