// The Deployment controller, as upstream: a ReplicaSet per template (NAME-HASH, labelled
// pod-template-hash, numbered by the deployment.kubernetes.io/revision annotation), scaled
// so that the current one grows and the old ones shrink as the rolling-update strategy
// allows (maxSurge, maxUnavailable, 25% each by default) or all at once (Recreate). The
// ReplicaSets make the pods (replicaset.ts); old ones are kept as history for rollbacks.
// Pods and ReplicaSets whose owner is gone are deleted (garbage collection).

import { createHash } from 'node:crypto';
import { safeEncode } from '../api/names.ts';
import type { Condition, Deployment, DeploymentStatus, ObjectMeta, OwnerReference, Pod, PodSpec, PodTemplateSpec, ReplicaSet } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateStatusWithRetry, updateWithRetry } from '../apiserver/retry.ts';
import { isNotFound } from '../apiserver/status.ts';
import { matches } from '../api/labels.ts';
import { lister, rt, type ControllerContext } from './context.ts';

export function templateHash(template: Deployment['spec']['template']): string {
  return safeEncode(createHash('sha256').update(JSON.stringify(template)).digest(), 10);
}

/** Pods that still count: not terminating and not run to completion. */
export function isLive(p: Pod): boolean {
  return !p.metadata.deletionTimestamp && p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded';
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

/** The annotation upstream keeps a ReplicaSet's place in its Deployment's history with. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';

/** A ReplicaSet the Deployment owns, with its pods (the live ones count). */
export interface OwnedReplicaSet {
  rs: ReplicaSet;
  pods: Pod[];
}

export interface RolloutPlan {
  /** The ReplicaSet of the current template, when there is none yet. */
  create?: ReplicaSet;
  /** New spec.replicas (and revision) of existing ReplicaSets, by name. */
  scale: Map<string, { replicas?: number; revision?: string }>;
  /** Old ReplicaSets beyond spec.revisionHistoryLimit, scaled to zero and without pods. */
  prune: string[];
  status: DeploymentStatus;
}

/** A ReplicaSet's place in its Deployment's history (0: none). */
export const revisionOf = (rs: ReplicaSet) => Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? 0) || 0;
const specReplicas = (rs: ReplicaSet) => rs.spec.replicas ?? 1;

/** The ReplicaSet a Deployment's template makes: named NAME-HASH, its selector and labels narrowed by the hash. */
export function replicaSetOf(d: Deployment, replicas: number, revision: number): ReplicaSet {
  const hash = templateHash(d.spec.template);
  const labels = { ...(d.spec.template.metadata?.labels ?? {}), 'pod-template-hash': hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${d.metadata.name}-${hash}`,
      namespace: d.metadata.namespace,
      labels,
      annotations: { [REVISION_ANNOTATION]: String(revision), 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas ?? 1) },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid!, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      replicas,
      selector: { ...d.spec.selector, matchLabels: { ...(d.spec.selector.matchLabels ?? {}), 'pod-template-hash': hash } },
      template: { ...d.spec.template, metadata: { ...d.spec.template.metadata, labels } },
    },
  };
}

/**
 * What to do next for a Deployment given the ReplicaSets it owns (pure): upstream's rolling
 * update (new ReplicaSet up to replicas+maxSurge pods in all, old ones down while at least
 * replicas-maxUnavailable stay available) or Recreate (old to zero, new up once their pods are
 * gone), the revision history and the status.
 */
export function planRollout(d: Deployment, owned: OwnedReplicaSet[]): RolloutPlan {
  const desired = d.spec.replicas ?? 1;
  const hash = templateHash(d.spec.template);
  const scale: RolloutPlan['scale'] = new Map();
  const byAge = [...owned].sort((a, b) => (a.rs.metadata.creationTimestamp ?? '').localeCompare(b.rs.metadata.creationTimestamp ?? '') || a.rs.metadata.name.localeCompare(b.rs.metadata.name));
  const current = byAge.find((o) => o.rs.metadata.labels?.['pod-template-hash'] === hash);
  const olds = byAge.filter((o) => o !== current);
  const maxOldRevision = Math.max(0, ...olds.map((o) => revisionOf(o.rs)));
  const live = (o: OwnedReplicaSet) => o.pods.filter(isLive);
  const ready = (o: OwnedReplicaSet) => live(o).filter(isReady).length;
  // Replica counts as this sync leaves them: what the plan says, else the spec.
  const target = new Map(owned.map((o) => [o.rs.metadata.name, specReplicas(o.rs)]));
  const set = (o: OwnedReplicaSet | undefined, replicas: number) => {
    if (!o) return;
    target.set(o.rs.metadata.name, replicas);
    if (replicas !== specReplicas(o.rs)) scale.set(o.rs.metadata.name, { ...scale.get(o.rs.metadata.name), replicas });
  };
  let newReplicas = current ? specReplicas(current.rs) : 0;

  if (d.spec.strategy?.type === 'Recreate') {
    for (const o of olds) set(o, 0);
    const oldPodsLeft = olds.some((o) => o.pods.some((p) => p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded'));
    if (!oldPodsLeft) newReplicas = desired;
  } else {
    const maxSurge = resolve(d.spec.strategy?.rollingUpdate?.maxSurge, '25%', desired, true);
    let maxUnavailable = resolve(d.spec.strategy?.rollingUpdate?.maxUnavailable, '25%', desired, false);
    if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    const oldTotal = olds.reduce((n, o) => n + target.get(o.rs.metadata.name)!, 0);
    if (oldTotal === 0 || newReplicas > desired) newReplicas = desired;
    else {
      const room = desired + maxSurge - (oldTotal + newReplicas);
      if (room > 0) newReplicas += Math.min(room, desired - newReplicas);
    }
    // Old ReplicaSets go down: first their pods that are not available (they cost nothing), then available ones while enough stay.
    const minAvailable = desired - maxUnavailable;
    const newUnavailable = Math.max(0, newReplicas - (current ? ready(current) : 0));
    let canScaleDown = oldTotal + newReplicas - minAvailable - newUnavailable;
    for (const o of olds) {
      if (canScaleDown <= 0) break;
      const spec = target.get(o.rs.metadata.name)!;
      const unhealthy = Math.min(canScaleDown, Math.max(0, spec - ready(o)));
      if (unhealthy > 0) {
        set(o, spec - unhealthy);
        canScaleDown -= unhealthy;
      }
    }
    let available = owned.reduce((n, o) => n + Math.min(ready(o), target.get(o.rs.metadata.name)!), 0);
    for (const o of olds) {
      if (available <= minAvailable) break;
      const spec = target.get(o.rs.metadata.name)!;
      const down = Math.min(spec, available - minAvailable);
      if (down > 0) {
        set(o, spec - down);
        available -= down;
      }
    }
  }

  let create: ReplicaSet | undefined;
  if (!current) create = replicaSetOf(d, newReplicas, maxOldRevision + 1);
  else {
    set(current, newReplicas);
    // A template seen before (a rollback) becomes the newest revision again.
    if (revisionOf(current.rs) <= maxOldRevision) scale.set(current.rs.metadata.name, { ...scale.get(current.rs.metadata.name), revision: String(maxOldRevision + 1) });
  }

  // History: old ReplicaSets at zero with no pods left, beyond the limit (10 by default), oldest first.
  const limit = typeof d.spec.revisionHistoryLimit === 'number' ? d.spec.revisionHistoryLimit : 10;
  const idle = olds.filter((o) => target.get(o.rs.metadata.name) === 0 && !o.pods.some((p) => !p.metadata.deletionTimestamp)).sort((a, b) => revisionOf(a.rs) - revisionOf(b.rs));
  const prune = idle.slice(0, Math.max(0, idle.length - limit)).map((o) => o.rs.metadata.name);

  const allLive = owned.flatMap(live);
  const readyCount = owned.reduce((n, o) => n + ready(o), 0);
  const updated = current ? live(current).length : 0;
  const newName = current?.rs.metadata.name ?? create!.metadata.name;
  const complete = updated === desired && allLive.length === desired && readyCount >= desired;
  const maxUnavailable = resolve(d.spec.strategy?.rollingUpdate?.maxUnavailable, '25%', desired, false);
  const available: Condition = readyCount >= desired - (d.spec.strategy?.type === 'Recreate' ? 0 : maxUnavailable)
    ? { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }
    : { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' };
  const progressing: Condition = complete
    ? { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${newName}" has successfully progressed.` }
    : { type: 'Progressing', status: 'True', reason: current ? 'ReplicaSetUpdated' : 'NewReplicaSetCreated', message: current ? `ReplicaSet "${newName}" is progressing.` : `Created new replica set "${newName}"` };
  return {
    create,
    scale,
    prune,
    status: {
      observedGeneration: d.metadata.generation,
      replicas: allLive.length,
      updatedReplicas: updated,
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
export async function slowStart(count: number, create: () => Promise<unknown> | void): Promise<{ done: number; error?: unknown }> {
  let done = 0;
  for (let batch = 1; done < count; batch *= 2) {
    for (const end = Math.min(count, done + batch); done < end; ) {
      try {
        await create();
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

/** One reconcile of the Deployment namespace/name: its ReplicaSets created, scaled and pruned; its status. */
export async function syncDeployment(ctx: ControllerContext, namespace: string, name: string, events?: EventRecorder): Promise<Requeue> {
  const d = lister<Deployment>(ctx, 'Deployment').get(namespace, name);
  if (!d || d.metadata.deletionTimestamp) return undefined;
  const replicaSets = lister<ReplicaSet>(ctx, 'ReplicaSet');
  const pods = lister<Pod>(ctx, 'Pod');
  const owned = (): OwnedReplicaSet[] => replicaSets.indexed('owner', d.metadata.uid!).filter((rs) => !rs.metadata.deletionTimestamp).map((rs) => ({ rs, pods: pods.indexed('owner', rs.metadata.uid!) }));
  const before = owned();
  const plan = planRollout(d, before);
  if (plan.create) {
    const rs = await ctx.client.create(rt('ReplicaSet'), plan.create);
    events?.record(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${rs.metadata.name} from 0 to ${rs.spec.replicas}`);
  }
  for (const [rsName, change] of plan.scale) {
    const was = before.find((o) => o.rs.metadata.name === rsName)!.rs;
    await updateWithRetry<ReplicaSet>(ctx.client, rt('ReplicaSet'), was, (rs) => ({
      ...rs,
      metadata: { ...rs.metadata, annotations: { ...rs.metadata.annotations, ...(change.revision ? { [REVISION_ANNOTATION]: change.revision } : {}), 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas ?? 1) } },
      spec: { ...rs.spec, replicas: change.replicas ?? rs.spec.replicas },
    }));
    if (change.replicas !== undefined) {
      const from = was.spec.replicas ?? 1;
      events?.record(d, 'Normal', 'ScalingReplicaSet', `Scaled ${change.replicas > from ? 'up' : 'down'} replica set ${rsName} from ${from} to ${change.replicas}`);
    }
  }
  for (const rsName of plan.prune) await ignoreNotFound(ctx.client.delete(rt('ReplicaSet'), namespace, rsName));
  const status = plan.create || plan.scale.size ? planRollout(d, owned()).status : plan.status;
  // A ReplicaSet that cannot create its pods (a quota, the cluster's pod limit) says so on the Deployment too.
  const failure = owned().map((o) => o.rs.status?.conditions?.find((c) => c.type === 'ReplicaFailure')).find(Boolean);
  if (failure) status.conditions!.push({ type: 'ReplicaFailure', status: 'True', reason: failure.reason, message: failure.message });
  const previous = d.status?.conditions ?? [];
  const stamp = now();
  status.conditions = status.conditions!.map((c) => {
    const old = previous.find((o) => o.type === c.type);
    return { ...c, lastUpdateTime: old && old.status === c.status && old.reason === c.reason ? (old as { lastUpdateTime?: string }).lastUpdateTime ?? stamp : stamp, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : stamp };
  });
  if (JSON.stringify(status) !== JSON.stringify(d.status)) await ignoreNotFound(updateStatusWithRetry(ctx.client, rt('Deployment'), d, status)); // gone meanwhile: nothing to report
  return undefined;
}

/** A delete whose object is gone already is done. */
export async function ignoreNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The kinds whose pods the garbage collector removes when their owner is gone. */
export const POD_OWNER_KINDS = ['ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job'];

/** Garbage collection: ReplicaSets whose Deployment, and pods whose ReplicaSet, StatefulSet, DaemonSet or Job no longer exists. */
export async function collectOrphans(ctx: ControllerContext): Promise<number> {
  let n = 0;
  const deployments = new Set(lister(ctx, 'Deployment').list().map((d) => d.metadata.uid));
  for (const rs of lister<ReplicaSet>(ctx, 'ReplicaSet').list()) {
    const owner = controllerOf(rs);
    if (owner?.kind === 'Deployment' && !deployments.has(owner.uid) && !rs.metadata.deletionTimestamp) {
      await ignoreNotFound(ctx.client.delete(rt('ReplicaSet'), rs.metadata.namespace, rs.metadata.name));
      n++;
    }
  }
  const uids = new Set(POD_OWNER_KINDS.flatMap((k) => lister(ctx, k).list().filter((o) => !o.metadata.deletionTimestamp).map((o) => o.metadata.uid)));
  const pods = lister<Pod>(ctx, 'Pod');
  for (const owner of pods.indexValues('owner')) {
    if (uids.has(owner)) continue;
    for (const p of pods.indexed('owner', owner)) {
      if (POD_OWNER_KINDS.includes(controllerOf(p)?.kind ?? '') && !p.metadata.deletionTimestamp) {
        await ignoreNotFound(ctx.client.delete(rt('Pod'), p.metadata.namespace, p.metadata.name));
        n++;
      }
    }
  }
  return n;
}

/** The Deployments to resync on a pod's or a ReplicaSet's event: its owner's owner, else those whose selector picks it. */
export function deploymentsFor(ctx: ControllerContext, obj: Pod | ReplicaSet): string[] {
  const owner = controllerOf(obj);
  if (owner?.kind === 'Deployment') return [owner.name];
  if (owner?.kind === 'ReplicaSet') {
    const rs = lister<ReplicaSet>(ctx, 'ReplicaSet').get(obj.metadata.namespace, owner.name);
    const d = rs && controllerOf(rs);
    return d?.kind === 'Deployment' ? [d.name] : [];
  }
  return lister<Deployment>(ctx, 'Deployment').list(obj.metadata.namespace ?? '').filter((d) => matches(d.spec.selector, obj.metadata.labels)).map((d) => d.metadata.name);
}
