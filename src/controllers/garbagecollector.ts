// The garbage collector for ownerReferences of any kind (the controllers' own cascade,
// collectOrphans in deployment.ts, keeps removing their pods and ReplicaSets):
// - Background: an object all of whose owners are gone is deleted;
// - Foreground: an owner marked with the foregroundDeletion finalizer has its dependents
//   deleted (in the foreground too), and goes once none is left.
// Decisions are pure (planCollection); collectGarbage applies them.

import type { KubeObject } from '../api/types.ts';
import { retryOnConflict } from '../apiserver/retry.ts';
import { isNotFound, StatusError } from '../apiserver/status.ts';
import { INFORMED_KINDS, lister, rt, type ControllerContext } from './context.ts';

/** The finalizer of an owner in foreground deletion (apiserver/deletion.ts sets it). */
export const FOREGROUND = 'foregroundDeletion';

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

/** One pass over the informers' objects; returns the number of owners still waiting for their dependents. */
export async function collectGarbage(ctx: ControllerContext): Promise<number> {
  const objects = INFORMED_KINDS.flatMap((kind) => lister(ctx, kind).list());
  const plan = planCollection(objects);
  for (const { object: o, policy } of plan.delete) {
    try {
      await ctx.client.delete(rt(o.kind), o.metadata.namespace, o.metadata.name, { propagationPolicy: policy, preconditions: { uid: o.metadata.uid } });
    } catch (e) {
      if (!(e instanceof StatusError)) throw e; // gone meanwhile, or replaced by another of that name
    }
  }
  for (const owner of plan.finish) {
    // The finalizer comes off; the API server removes an object marked for deletion once it has none.
    await retryOnConflict(async (attempt) => {
      const current = attempt === 0 ? owner : await ctx.client.get(rt(owner.kind), owner.metadata.namespace, owner.metadata.name);
      if (current.metadata.uid !== owner.metadata.uid) return;
      await ctx.client.update(rt(owner.kind), { ...current, metadata: { ...current.metadata, finalizers: finalizersOf(current).filter((f) => f !== FOREGROUND) } });
    }).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
  return plan.waiting;
}

/** Runs the collector on every deletion and every object marked for foreground deletion; returns the stop. */
export function startGarbageCollector(ctx: ControllerContext, log: (line: string) => void, intervalMs = 1000): () => void {
  let timer: NodeJS.Timeout | undefined;
  let waiting = false;
  let stopped = false;
  let running = false;
  /** A deletion heard during a pass: another pass after it. */
  let again = false;
  const run = async () => {
    timer = undefined;
    running = true;
    try {
      waiting = (await collectGarbage(ctx)) > 0;
    } catch (e) {
      log(`garbage-collector: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      schedule();
    } else if (waiting) schedule(intervalMs); // dependents still terminating (pods wait for their node agent)
  };
  const schedule = (ms = 20) => {
    if (stopped) return;
    if (running) again = true;
    else if (!timer) {
      timer = setTimeout(() => void run(), ms);
      timer.unref?.();
    }
  };
  for (const kind of INFORMED_KINDS) {
    lister(ctx, kind).addHandler((type, o) => {
      if (type === 'DELETED' || type === 'SYNC' || (o && finalizersOf(o).includes(FOREGROUND))) schedule();
    });
  }
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
