// The StatefulSet controller: pods NAME-0 ... NAME-(replicas-1), each with a stable name,
// `spec.hostname` its own name and `spec.subdomain` the set's serviceName, so that the
// headless Service of that name gives each one a DNS name (web-0.web.NS.svc.cluster.local).
// OrderedReady (the default): a pod is created only once every lower ordinal is Running and
// Ready, and scaling down removes the highest ordinal first, one at a time, while the rest
// are healthy. Parallel: all at once. A new template replaces pods from the highest ordinal
// down, one at a time (RollingUpdate), or when someone deletes them (OnDelete). Failed pods
// are deleted and made again under the same name.

import type { Pod, StatefulSet, StatefulSetStatus } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateStatusWithRetry } from '../apiserver/retry.ts';
import { ignoreNotFound, isReady, podOfTemplate, templateHash, type Requeue } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
export const REVISION_LABEL = 'controller-revision-hash';

/** The revision of the set's template, as the pods' controller-revision-hash label holds it. */
export function revisionOf(s: StatefulSet): string {
  return `${s.metadata.name}-${templateHash(s.spec.template)}`;
}

/** The ordinal of one of the set's pods (web-3 → 3), undefined for a name not of the set. */
export function ordinalOf(setName: string, podName: string): number | undefined {
  const m = podName.startsWith(`${setName}-`) ? /^(0|[1-9]\d{0,8})$/.exec(podName.slice(setName.length + 1)) : null;
  return m ? Number(m[1]) : undefined;
}

/** The pod of ordinal `i`, as the set's template describes it. */
export function statefulPod(s: StatefulSet, i: number): Pod {
  const name = `${s.metadata.name}-${i}`;
  return podOfTemplate({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: s.metadata }, s.spec.template, { name, labels: { [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(i), [REVISION_LABEL]: revisionOf(s) }, spec: { hostname: name, subdomain: s.spec.serviceName } });
}

const finished = (p: Pod) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded';

export interface StatefulPlan {
  /** Ordinals to create now. */
  create: number[];
  delete: Pod[];
  status: StatefulSetStatus;
}

/** What to do next for a StatefulSet given the pods it owns (pure). */
export function planStatefulSet(s: StatefulSet, owned: Pod[]): StatefulPlan {
  const replicas = s.spec.replicas ?? 1;
  const parallel = s.spec.podManagementPolicy === 'Parallel';
  const revision = revisionOf(s);
  const byOrdinal = new Map<number, Pod>();
  const del: Pod[] = [];
  const condemned: Pod[] = [];
  for (const p of owned) {
    const i = ordinalOf(s.metadata.name, p.metadata.name);
    if (i === undefined) {
      if (!p.metadata.deletionTimestamp) del.push(p); // not a name of the set: not one of its pods
    } else if (i >= replicas) condemned.push(p);
    else byOrdinal.set(i, p);
  }
  const create: number[] = [];
  let blocked = false; // OrderedReady: a lower ordinal is not Running and Ready yet
  for (let i = 0; i < replicas; i++) {
    const p = byOrdinal.get(i);
    if (!p) {
      if (!blocked) create.push(i);
      if (!parallel) blocked = true;
      continue;
    }
    if (p.metadata.deletionTimestamp) {
      if (!parallel) blocked = true;
      continue;
    }
    if (finished(p)) {
      del.push(p); // made again under its name once it is gone
      if (!parallel) blocked = true;
      continue;
    }
    if (!parallel && !isReady(p)) blocked = true;
  }
  // Scaling down: the highest ordinal first, one at a time, once the others are healthy (OrderedReady).
  const doomed = condemned.filter((p) => !p.metadata.deletionTimestamp).sort((a, b) => ordinalOf(s.metadata.name, b.metadata.name)! - ordinalOf(s.metadata.name, a.metadata.name)!);
  if (parallel) del.push(...doomed);
  else if (doomed.length && !blocked && !create.length && !condemned.some((p) => p.metadata.deletionTimestamp)) del.push(doomed[0]!);
  // A new template: the highest ordinal of an old revision goes, once every pod is up and ready.
  const inRange = [...byOrdinal.values()];
  const allHealthy = inRange.length === replicas && inRange.every((p) => !p.metadata.deletionTimestamp && isReady(p)) && !condemned.length;
  if (s.spec.updateStrategy?.type !== 'OnDelete' && allHealthy && !del.length) {
    const old = inRange.filter((p) => p.metadata.labels?.[REVISION_LABEL] !== revision).sort((a, b) => ordinalOf(s.metadata.name, b.metadata.name)! - ordinalOf(s.metadata.name, a.metadata.name)!);
    if (old.length) del.push(old[0]!);
  }
  const live = owned.filter((p) => !finished(p) && ordinalOf(s.metadata.name, p.metadata.name) !== undefined);
  const updated = live.filter((p) => p.metadata.labels?.[REVISION_LABEL] === revision).length;
  const ready = live.filter(isReady).length;
  const current = updated === live.length ? revision : (s.status?.currentRevision ?? revision);
  return {
    create,
    delete: del,
    status: {
      observedGeneration: s.metadata.generation,
      replicas: live.length,
      readyReplicas: ready,
      availableReplicas: ready,
      currentReplicas: live.filter((p) => p.metadata.labels?.[REVISION_LABEL] === current).length,
      updatedReplicas: updated,
      currentRevision: current,
      updateRevision: revision,
    },
  };
}

/** One reconcile of the StatefulSet namespace/name. */
export async function syncStatefulSet(ctx: ControllerContext, namespace: string, name: string, events?: EventRecorder): Promise<Requeue> {
  const s = lister<StatefulSet>(ctx, 'StatefulSet').get(namespace, name);
  if (!s || s.metadata.deletionTimestamp) return undefined;
  const pods = lister<Pod>(ctx, 'Pod');
  const owned = () => pods.indexed('owner', s.metadata.uid!);
  const plan = planStatefulSet(s, owned());
  for (const p of plan.delete) {
    await ignoreNotFound(ctx.client.delete(rt('Pod'), namespace, p.metadata.name));
    events?.record(s, 'Normal', 'SuccessfulDelete', `delete Pod ${p.metadata.name} in StatefulSet ${name} successful`);
  }
  let failure: string | undefined;
  for (const i of plan.create) {
    try {
      const pod = await ctx.client.create(rt('Pod'), statefulPod(s, i));
      events?.record(s, 'Normal', 'SuccessfulCreate', `create Pod ${pod.metadata.name} in StatefulSet ${name} successful`);
    } catch (e) {
      failure = `create Pod ${name}-${i} in StatefulSet ${name} failed error: ${e instanceof Error ? e.message : String(e)}`;
      events?.record(s, 'Warning', 'FailedCreate', failure);
      break;
    }
  }
  const status = plan.create.length || plan.delete.length ? planStatefulSet(s, owned()).status : plan.status;
  if (JSON.stringify(status) !== JSON.stringify(s.status)) await ignoreNotFound(updateStatusWithRetry(ctx.client, rt('StatefulSet'), s, status)); // gone meanwhile: nothing to report
  return failure ? 'backoff' : undefined;
}
