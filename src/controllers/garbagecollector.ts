// The garbage collector for ownerReferences of any kind (the controllers' own cascade,
// collectOrphans in deployment.ts, keeps removing their pods and ReplicaSets):
// - Background: an object all of whose owners are gone is deleted;
// - Foreground: an owner marked with the foregroundDeletion finalizer has its dependents
//   deleted (in the foreground too), and goes once none is left.
// Decisions are pure (planCollection); collectGarbage applies them.

import type { KubeObject } from '../api/types.ts';
import { RESOURCES } from '../api/resources.ts';
import type { Api } from '../apiserver/api.ts';
import { deleteWithOptions, FOREGROUND } from '../apiserver/deletion.ts';
import { StoreError } from '../apiserver/store.ts';

export interface CollectionPlan {
  /** Dependents to delete, with the policy to delete them with. */
  delete: Array<{ object: KubeObject; policy: 'Background' | 'Foreground' }>;
  /** Owners in foreground deletion whose dependents are all gone: their finalizer comes off. */
  finish: KubeObject[];
  /** Owners still waiting for dependents. */
  waiting: number;
}

const finalizersOf = (o: KubeObject) => (o.metadata.finalizers as string[] | undefined) ?? [];

/** What to do, given every object of the cluster. */
export function planCollection(objects: KubeObject[]): CollectionPlan {
  const byUid = new Map(objects.map((o) => [o.metadata.uid, o]));
  const dependents = new Map<string, KubeObject[]>();
  for (const o of objects) for (const r of o.metadata.ownerReferences ?? []) dependents.set(r.uid, [...(dependents.get(r.uid) ?? []), o]);
  const plan: CollectionPlan = { delete: [], finish: [], waiting: 0 };
  const planned = new Set<string | undefined>();
  for (const owner of objects) {
    if (!owner.metadata.deletionTimestamp || !finalizersOf(owner).includes(FOREGROUND)) continue;
    const deps = dependents.get(owner.metadata.uid!) ?? [];
    // Upstream waits only for dependents that block their owner's deletion; the others are deleted all the same.
    const blocking = deps.filter((d) => (d.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid && r.blockOwnerDeletion));
    for (const d of deps) {
      if (d.metadata.deletionTimestamp || planned.has(d.metadata.uid)) continue;
      planned.add(d.metadata.uid);
      plan.delete.push({ object: d, policy: 'Foreground' });
    }
    if (blocking.length) plan.waiting++;
    else plan.finish.push(owner);
  }
  for (const o of objects) {
    const refs = o.metadata.ownerReferences ?? [];
    if (!refs.length || o.metadata.deletionTimestamp || planned.has(o.metadata.uid)) continue;
    if (refs.every((r) => !byUid.has(r.uid))) {
      planned.add(o.metadata.uid);
      plan.delete.push({ object: o, policy: 'Background' });
    }
  }
  return plan;
}

/** One pass; returns the number of owners still waiting for their dependents. */
export function collectGarbage(api: Api): number {
  const objects = RESOURCES.filter((rt) => rt.kind !== 'Event').flatMap((rt) => api.store.list(rt.kind).items);
  const plan = planCollection(objects);
  for (const { object: o, policy } of plan.delete) {
    try {
      deleteWithOptions(api, { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name }, { propagationPolicy: policy, preconditions: { uid: o.metadata.uid } });
    } catch (e) {
      if (!(e instanceof StoreError)) throw e; // gone meanwhile, or replaced by another of that name
    }
  }
  for (const owner of plan.finish) {
    api.store.write(() => {
      const current = api.tryGet({ kind: owner.kind, namespace: owner.metadata.namespace, name: owner.metadata.name });
      if (!current || current.metadata.uid !== owner.metadata.uid) return;
      const rest = finalizersOf(current).filter((f) => f !== FOREGROUND);
      if (rest.length) api.store.update({ ...current, metadata: { ...current.metadata, finalizers: rest, resourceVersion: undefined } });
      else api.store.delete({ kind: current.kind, namespace: current.metadata.namespace, name: current.metadata.name });
    });
  }
  return plan.waiting;
}

/** Runs the collector on every deletion and every object marked for foreground deletion; returns the stop. */
export function startGarbageCollector(api: Api, log: (line: string) => void, intervalMs = 1000): () => void {
  let timer: NodeJS.Timeout | undefined;
  let waiting = false;
  const run = () => {
    timer = undefined;
    try {
      waiting = collectGarbage(api) > 0;
    } catch (e) {
      log(`garbage-collector: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (waiting) schedule(intervalMs); // dependents still terminating (pods wait for their node agent)
  };
  const schedule = (ms = 20) => {
    if (!timer) timer = setTimeout(run, ms);
    timer.unref?.();
  };
  const stops = RESOURCES.filter((rt) => rt.kind !== 'Event').map((rt) =>
    api.watch(rt.kind, undefined, api.store.currentRV(), (e) => {
      if (e.type === 'DELETED' || finalizersOf(e.object).includes(FOREGROUND)) schedule();
    }),
  );
  schedule();
  return () => {
    clearTimeout(timer);
    for (const s of stops) s();
  };
}
