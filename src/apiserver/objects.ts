// One client interface for the API (client-go's clientset), whichever side of the socket the
// caller is on: programs apart from the API server reach it over the Kubernetes REST API
// (client/rest.ts: HTTPS with a kubeconfig, or the daemon's unix socket), components in the
// daemon (controllers, scheduler, peers, proxiers, page) and tests reach the same Api in
// process (LocalClient). Every component reads through informers (informer.ts) and writes
// through this interface; only the API server (this folder) touches the store. All fail with
// StatusErrors (status.ts), so callers ask isNotFound(e) / isConflict(e) and nothing else.

import { resourceOfKind, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { fieldSelectorMatcher, labelSelectorMatcher, type Api } from './api.ts';
import { deleteWithOptions, finishIfFinalized, finalizeNamespace, type PropagationPolicy } from './deletion.ts';
import { StoreError } from './store.ts';
import { isNotFound } from './status.ts';

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
}

export type WatchQuery = ListQuery & { resourceVersion?: string; allowWatchBookmarks?: 'true' };

/** meta/v1 DeleteOptions, as a client sends them. */
export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: PropagationPolicy;
  /** 409 Conflict unless the object is still this one (the kubelet's uid, GC's uid). */
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ObjectClient {
  get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T>;
  list<T extends KubeObject>(rt: ResourceType, namespace?: string, q?: ListQuery): Promise<{ items: T[]; metadata: { resourceVersion: string } }>;
  create<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  update<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  /** Writes the object's status (the /status subresource). */
  updateStatus<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  /** DELETE; `opts` a number is gracePeriodSeconds. The answer is the object while it is still there, else a Status. */
  delete(rt: ResourceType, namespace: string | undefined, name: string, opts?: number | DeleteOptions): Promise<KubeObject>;
  /**
   * PUT namespaces/NAME/finalize: the namespace controller's last step, once the namespace is
   * empty (its spec.finalizers emptied; the API server then removes it).
   */
  finalizeNamespace(name: string, uid?: string): Promise<KubeObject>;
  /** Events after `q.resourceVersion` until the returned function is called; `ended` if the stream ends from the other side. */
  watch(rt: ResourceType, namespace: string | undefined, q: WatchQuery, fn: (e: { type: string; object: KubeObject }) => void, ended?: () => void): Promise<() => void>;
}

/** The ObjectClient of an Api in this process: the same calls, the same answers, no socket. */
export class LocalClient implements ObjectClient {
  /**
   * `shareObjects`: answers are the store's own objects (frozen), uncopied, for consumers
   * that only read what they get and copy what they change (each node's proxier: 10k Services
   * and their slices copied per node were 55 MB and seconds of a daemon's start; the
   * controllers' informers hold the store's objects, not a second copy of the cluster).
   *
   * Every call does its work before it returns its promise (no await inside): a write is in
   * the store, and in the informers over this client, once the call returns.
   */
  constructor(private readonly api: Api, private readonly opts: { shareObjects?: boolean } = {}) {}

  private out<T>(v: T): T {
    return this.opts.shareObjects ? v : structuredClone(v);
  }

  async get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.out(this.api.get({ kind: rt.kind, namespace, name })) as T;
  }

  async list<T extends KubeObject>(rt: ResourceType, namespace?: string, q: ListQuery = {}): Promise<{ items: T[]; metadata: { resourceVersion: string } }> {
    const res = this.api.list(rt.kind, namespace, q);
    return { items: (this.opts.shareObjects ? res.items : structuredClone(res.items)) as T[], metadata: { resourceVersion: String(res.resourceVersion) } };
  }

  // Copies out (unless shared), as a client over the socket gets its own parsed objects (the store's are frozen).
  async create<T extends KubeObject>(_rt: ResourceType, obj: T): Promise<T> {
    return this.out(this.api.create(obj));
  }

  /** PUT, as the REST adapter does it: an object being deleted whose last finalizer this removes goes. */
  async update<T extends KubeObject>(_rt: ResourceType, obj: T): Promise<T> {
    return this.out(
      this.api.store.write(() => {
        const updated = this.api.update(obj);
        return (finishIfFinalized(this.api, updated) ?? updated) as T;
      }),
    );
  }

  async updateStatus<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    return this.out(this.api.updateStatus<T>({ kind: rt.kind, namespace: obj.metadata.namespace, name: obj.metadata.name }, obj.status, obj.metadata.resourceVersion));
  }

  async delete(rt: ResourceType, namespace: string | undefined, name: string, opts?: number | DeleteOptions): Promise<KubeObject> {
    const o = typeof opts === 'number' ? { gracePeriodSeconds: opts } : (opts ?? {});
    const key = { kind: rt.kind, namespace, name };
    // Plain deletes keep the Api's path (no scan for dependents); options go through the REST adapter's.
    return this.out(o.propagationPolicy || o.preconditions ? deleteWithOptions(this.api, key, o).object : this.api.delete(key, o));
  }

  async finalizeNamespace(name: string, uid?: string): Promise<KubeObject> {
    return this.out(finalizeNamespace(this.api, name, uid));
  }

  async watch(rt: ResourceType, namespace: string | undefined, q: WatchQuery, fn: (e: { type: string; object: KubeObject }) => void): Promise<() => void> {
    const since = Number(q.resourceVersion ?? this.api.store.currentRV());
    if (!Number.isInteger(since)) throw new StoreError('Invalid', `resourceVersion ${JSON.stringify(q.resourceVersion)} is not a number`);
    const byLabel = labelSelectorMatcher(q.labelSelector);
    const byField = fieldSelectorMatcher(q.fieldSelector);
    return this.api.watch(rt.kind, namespace, since, (e) => {
      if (byLabel(e.object) && byField(e.object)) fn({ type: e.type, object: e.object });
    });
  }
}

/** Creates `obj` unless an object of its kind and name is there (kept as it is: a user may have edited it); true if it created it. */
export async function createIfMissing(client: ObjectClient, obj: KubeObject): Promise<boolean> {
  const rt = resourceOfKind(obj.kind);
  try {
    await client.get(rt, obj.metadata.namespace, obj.metadata.name);
    return false;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  await client.create(rt, obj);
  return true;
}
