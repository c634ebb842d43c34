// DELETE with DeleteOptions, as the API server takes them: preconditions (uid,
// resourceVersion: 409 when the object is not that one), gracePeriodSeconds, and
// propagationPolicy: Background (the object goes now, the garbage collector removes its
// dependents), Foreground (the object stays, marked with deletionTimestamp and the
// foregroundDeletion finalizer, until the garbage collector has removed its dependents),
// Orphan (its dependents lose their ownerReference to it, then it goes). An object with
// finalizers of its own is only marked. The answer is the object while it is still there
// (and always for pods), else a Status Success naming it.

import { resourceOfKind } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { now } from '../api/types.ts';
import { RESOURCES } from '../api/resources.ts';
import type { Api } from './api.ts';
import { StoreError, type Key } from './store.ts';

export const FOREGROUND = 'foregroundDeletion';
export const ORPHAN = 'orphan';
export type PropagationPolicy = 'Foreground' | 'Background' | 'Orphan';
const POLICIES: readonly PropagationPolicy[] = ['Foreground', 'Background', 'Orphan'];

export interface DeleteRequest {
  gracePeriodSeconds?: number;
  propagationPolicy?: PropagationPolicy;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

function invalid(message: string): StoreError {
  return new StoreError('Invalid', message);
}

/** DeleteOptions from the body and the query (the query's take precedence, as upstream's decoding does). */
export function parseDeleteOptions(body: unknown, q: URLSearchParams): DeleteRequest {
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) throw invalid(`DeleteOptions: the body must be an object, not ${JSON.stringify(body)}`);
  const b = (body ?? {}) as Record<string, unknown>;
  const out: DeleteRequest = {};
  const grace = q.get('gracePeriodSeconds') ?? b.gracePeriodSeconds;
  if (grace !== undefined && grace !== null) {
    const n = Number(grace);
    if (!Number.isInteger(n)) throw invalid(`DeleteOptions.gracePeriodSeconds: Invalid value: ${JSON.stringify(grace)}: must be an integer`);
    out.gracePeriodSeconds = Math.max(0, n);
  }
  const orphan = q.get('orphanDependents') ?? b.orphanDependents;
  const policy = q.get('propagationPolicy') ?? b.propagationPolicy;
  if (policy !== undefined && policy !== null) {
    if (!POLICIES.includes(policy as PropagationPolicy)) throw invalid(`DeleteOptions.propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`);
    if (orphan !== undefined && orphan !== null) throw invalid('DeleteOptions.propagationPolicy: Invalid value: both orphanDependents and propagationPolicy are set: set only propagationPolicy');
    out.propagationPolicy = policy as PropagationPolicy;
  } else if (orphan !== undefined && orphan !== null) out.propagationPolicy = orphan === true || orphan === 'true' ? 'Orphan' : 'Background';
  const pre = b.preconditions;
  if (pre !== undefined && pre !== null) {
    if (typeof pre !== 'object' || Array.isArray(pre)) throw invalid('DeleteOptions.preconditions: must be an object with uid and/or resourceVersion');
    const { uid, resourceVersion } = pre as Record<string, unknown>;
    out.preconditions = { ...(typeof uid === 'string' && uid ? { uid } : {}), ...(typeof resourceVersion === 'string' && resourceVersion ? { resourceVersion } : {}) };
  }
  const dry = q.getAll('dryRun');
  if (dry.includes('All') || (Array.isArray(b.dryRun) && b.dryRun.includes('All'))) out.dryRun = true;
  return out;
}

/** "deployments.apps" / "pods": upstream's name of a resource in messages. */
function groupResource(kind: string): string {
  const rt = resourceOfKind(kind);
  return rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
}

/** The 409 of a precondition that does not hold, in upstream's words; undefined when it holds. */
export function preconditionFailure(current: KubeObject, pre: DeleteRequest['preconditions']): string | undefined {
  const what = `Operation cannot be fulfilled on ${groupResource(current.kind)} ${JSON.stringify(current.metadata.name)}: Precondition failed`;
  if (pre?.uid && pre.uid !== current.metadata.uid) return `${what}: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`;
  if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) return `${what}: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`;
  return undefined;
}

const ownedBy = (o: KubeObject, uid: string | undefined) => Boolean(uid) && (o.metadata.ownerReferences ?? []).some((r) => r.uid === uid);

/** The objects (of any served kind) with an ownerReference to `uid`. */
export function dependentsOf(api: Api, uid: string | undefined): KubeObject[] {
  if (!uid) return [];
  return RESOURCES.flatMap((rt) => (rt.kind === 'Pod' ? [] : api.store.list(rt.kind).items)).concat(podsOwnedBy(api, uid)).filter((o) => ownedBy(o, uid));
}

function podsOwnedBy(api: Api, uid: string): KubeObject[] {
  // The controller's pods come from the index; pods with a plain (non-controller) ownerReference need the list.
  const indexed = api.store.byIndex('Pod', 'owner', uid);
  return indexed.length ? indexed : api.store.list('Pod').items;
}

export type DeleteAnswer = { object: KubeObject; gone: boolean };

/** Deletes `key` with `opts`, in one transaction. */
export function deleteWithOptions(api: Api, key: Key, opts: DeleteRequest): DeleteAnswer {
  const run = () =>
    api.store.write((): DeleteAnswer => {
      const current = api.get(key);
      const failed = preconditionFailure(current, opts.preconditions);
      if (failed) throw new StoreError('Conflict', failed);
      const policy = opts.propagationPolicy ?? 'Background';
      const marked = Boolean(current.metadata.deletionTimestamp);
      if (policy === 'Orphan') {
        for (const d of dependentsOf(api, current.metadata.uid)) {
          const refs = (d.metadata.ownerReferences ?? []).filter((r) => r.uid !== current.metadata.uid);
          api.store.update({ ...d, metadata: { ...d.metadata, ownerReferences: refs.length ? refs : undefined, resourceVersion: undefined } });
        }
      }
      const finalizers = (current.metadata.finalizers as string[] | undefined) ?? [];
      const foreground = policy === 'Foreground' && current.kind !== 'Namespace' && dependentsOf(api, current.metadata.uid).length > 0;
      if (!marked && (foreground || (finalizers.length && current.kind !== 'Namespace'))) {
        const next: KubeObject = { ...current, metadata: { ...current.metadata, deletionTimestamp: now(), deletionGracePeriodSeconds: 0, resourceVersion: undefined } };
        if (foreground && !finalizers.includes(FOREGROUND)) next.metadata.finalizers = [...finalizers, FOREGROUND];
        return { object: api.store.update(next), gone: false };
      }
      if (marked && finalizers.length && current.kind !== 'Pod' && current.kind !== 'Namespace') return { object: current, gone: false };
      const after = api.delete(key, { gracePeriodSeconds: opts.gracePeriodSeconds });
      return { object: after, gone: !api.tryGet(key) };
    });
  if (!opts.dryRun) return run();
  return api.dryRun(run);
}

/** What DELETE answers: the object while it is there (and a pod always), else Status Success. */
export function deleteAnswer(answer: DeleteAnswer): object {
  const o = answer.object;
  if (!answer.gone || o.kind === 'Pod') return o;
  const rt = resourceOfKind(o.kind);
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: o.metadata.name, ...(rt.group ? { group: rt.group } : {}), kind: rt.plural, uid: o.metadata.uid } };
}

/**
 * An object marked for deletion whose last finalizer was just removed goes (upstream's
 * update path). Pods and namespaces have their own finishers (the node agent, the namespace controller).
 */
export function finishIfFinalized(api: Api, obj: KubeObject): KubeObject | undefined {
  if (!obj.metadata.deletionTimestamp || obj.kind === 'Pod' || obj.kind === 'Namespace') return undefined;
  if (((obj.metadata.finalizers as string[] | undefined) ?? []).length) return undefined;
  return api.store.delete({ kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name });
}

/**
 * PUT namespaces/NAME/finalize: the namespace controller's word that a Terminating namespace
 * is empty; it goes (kubewire's namespaces carry no spec.finalizers of their own). A live
 * namespace is left as it is; `uid` guards against one of the same name made meanwhile.
 */
export function finalizeNamespace(api: Api, name: string, uid?: string): KubeObject {
  return api.store.write(() => {
    const current = api.get({ kind: 'Namespace', name });
    const failed = preconditionFailure(current, { uid });
    if (failed) throw new StoreError('Conflict', failed);
    if (current.metadata.deletionTimestamp) api.finalize({ kind: 'Namespace', name }, current.metadata.uid);
    return current;
  });
}
