// One client interface for the API, whichever side of the socket the caller is on: the CLI
// and the ingress controllers reach the daemon over its socket (ApiClient), components in the
// daemon (and tests) reach the same Api in process (LocalClient). Both fail with StatusErrors
// (status.ts), so callers ask isNotFound(e) and nothing else.

import type { ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { fieldSelectorMatcher, labelSelectorMatcher, type Api } from './api.ts';
import { StoreError } from './store.ts';

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
}

export type WatchQuery = ListQuery & { resourceVersion?: string; allowWatchBookmarks?: 'true' };

export interface ObjectClient {
  get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T>;
  list<T extends KubeObject>(rt: ResourceType, namespace?: string, q?: ListQuery): Promise<{ items: T[]; metadata: { resourceVersion: string } }>;
  create<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  update<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  /** Writes the object's status (the /status subresource). */
  updateStatus<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T>;
  delete(rt: ResourceType, namespace: string | undefined, name: string, gracePeriodSeconds?: number): Promise<KubeObject>;
  /** Events after `q.resourceVersion` until the returned function is called; `ended` if the stream ends from the other side. */
  watch(rt: ResourceType, namespace: string | undefined, q: WatchQuery, fn: (e: { type: string; object: KubeObject }) => void, ended?: () => void): Promise<() => void>;
}

/** The ObjectClient of an Api in this process: the same calls, the same answers, no socket. */
export class LocalClient implements ObjectClient {
  /**
   * `shareObjects`: lists hand out the store's own objects (frozen), uncopied, for consumers
   * that only read (each node's proxier: 10k Services and their slices copied per node were
   * 55 MB and seconds of a daemon's start).
   */
  constructor(private readonly api: Api, private readonly opts: { shareObjects?: boolean } = {}) {}

  async get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return structuredClone(this.api.get({ kind: rt.kind, namespace, name })) as T;
  }

  async list<T extends KubeObject>(rt: ResourceType, namespace?: string, q: ListQuery = {}): Promise<{ items: T[]; metadata: { resourceVersion: string } }> {
    const res = this.api.list(rt.kind, namespace, q);
    return { items: (this.opts.shareObjects ? res.items : structuredClone(res.items)) as T[], metadata: { resourceVersion: String(res.resourceVersion) } };
  }

  // Copies out, as a client over the socket gets its own parsed objects (the store's are frozen).
  async create<T extends KubeObject>(_rt: ResourceType, obj: T): Promise<T> {
    return structuredClone(this.api.create(obj));
  }

  async update<T extends KubeObject>(_rt: ResourceType, obj: T): Promise<T> {
    return structuredClone(this.api.update(obj));
  }

  async updateStatus<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    return structuredClone(this.api.updateStatus<T>({ kind: rt.kind, namespace: obj.metadata.namespace, name: obj.metadata.name }, obj.status, obj.metadata.resourceVersion));
  }

  async delete(rt: ResourceType, namespace: string | undefined, name: string, gracePeriodSeconds?: number): Promise<KubeObject> {
    return structuredClone(this.api.delete({ kind: rt.kind, namespace, name }, { gracePeriodSeconds }));
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
