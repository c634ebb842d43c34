// client-go's informers and listers over any ObjectClient (in process or over the REST API):
// list, then watch from the list's resourceVersion, keeping a local, indexed copy of every
// object (cache.ts's ObjectCache, the store's own indexer: pods by node and by owner, slices
// by Service...). When the stream ends (the server restarted, 410 Gone) it lists again and
// replaces the copy, so deletions during the gap are seen. Each change is told with the
// object that changed; a relist is told as SYNC (consumers resync everything).
// SharedInformers holds one informer per kind for all the components of a process, as
// client-go's SharedInformerFactory: the controllers share one watch of pods, not ten.

import { resourceOfKind, type ResourceType } from '../api/resources.ts';
import { namespacedName, type KubeObject } from '../api/types.ts';
import { ObjectCache, type IndexDefs, type IndexFn } from './cache.ts';

export type { IndexDefs, IndexFn };
import { INDEXES } from './indexes.ts';
import type { ObjectClient } from './objects.ts';

export type InformerEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
/** Hears each change (with the object as it is now, or as it was when DELETED), and SYNC after each (re)list. */
export type InformerHandler<T> = (type: InformerEventType | 'SYNC', obj?: T) => void;

/** The index that the constructor's `indexBy` defines (byIndex). */
const BY = '';

export class Informer<T extends KubeObject> {
  /** Every object by namespace/name. */
  readonly items = new Map<string, T>();
  /** The same objects, by namespace and by the indexes (not copied, not frozen). */
  private readonly cache: ObjectCache;
  private readonly handlers: Array<InformerHandler<T>> = [];
  private stopWatch?: () => void;
  private stopped = false;
  private started = false;
  private retry?: NodeJS.Timeout;
  /** True once the first list has arrived. */
  synced = false;
  /** Why the last attempt failed (logged once per outage, not at every retry). */
  private failing: string | undefined;

  /**
   * `changed` hears of each change (the object; nothing after a relist). `indexBy`: one index,
   * read with byIndex(value); `indexes`: named ones, read with indexed(name, value).
   */
  constructor(
    private readonly client: ObjectClient,
    readonly rt: ResourceType,
    private readonly changed: (obj?: T) => void = () => {},
    private readonly log: (l: string) => void = () => {},
    indexBy?: (obj: T) => string | undefined,
    indexes: Record<string, IndexFn> = {},
  ) {
    const defs: Record<string, IndexFn> = { ...indexes };
    if (indexBy) {
      defs[BY] = (o) => {
        const v = indexBy(o as T);
        return v === undefined ? [] : [v];
      };
    }
    this.cache = new ObjectCache({ [rt.kind]: defs }, { freeze: false });
  }

  /** Objects the constructor's index holds under `value`. */
  byIndex(value: string): T[] {
    return this.cache.byIndex(this.rt.kind, BY, value) as T[];
  }

  /** Objects the named index holds under `value` (client-go's Indexer.ByIndex). */
  indexed(index: string, value: string): T[] {
    return this.cache.byIndex(this.rt.kind, index, value) as T[];
  }

  /** The values the named index holds (client-go's ListIndexFuncValues). */
  indexValues(index: string): string[] {
    return [...this.cache.indexValues(this.rt.kind, index).keys()];
  }

  /** The lister's Get: the object, or undefined. */
  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(this.rt.kind, namespace ?? '', name) as T | undefined;
  }

  /** The lister's List: every object, or those of one namespace, in no particular order. */
  list(namespace?: string): T[] {
    return this.cache.list(this.rt.kind, namespace) as T[];
  }

  /** Another consumer of this informer's changes (a shared informer's event handler). */
  addHandler(h: InformerHandler<T>): void {
    this.handlers.push(h);
  }

  private put(key: string, obj: T | undefined, gone?: T): void {
    if (obj) this.items.set(key, obj);
    else this.items.delete(key);
    const o = obj ?? gone!;
    this.cache.set(this.rt.kind, o.metadata.namespace ?? '', o.metadata.name, obj, false);
  }

  private tell(type: InformerEventType | 'SYNC', obj?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj);
      } catch (e) {
        this.log(`${this.rt.plural} handler: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    this.started = true;
    try {
      const list = await this.client.list<T>(this.rt);
      this.items.clear();
      this.cache.clear(this.rt.kind);
      // Items of a REST list carry no kind; the in-process ones are the store's own, kept as they are.
      for (const o of list.items) this.put(namespacedName(o), o.kind ? o : { ...o, kind: this.rt.kind });
      this.synced = true;
      if (this.failing) this.log(`watching ${this.rt.plural} again`);
      this.failing = undefined;
      this.changed();
      this.tell('SYNC');
      this.stopWatch = await this.client.watch(this.rt, undefined, { resourceVersion: list.metadata.resourceVersion }, (e) => {
        const o = e.object as T;
        const deleted = e.type === 'DELETED';
        this.put(namespacedName(o), deleted ? undefined : o, o);
        this.changed(o);
        this.tell(e.type as InformerEventType, o);
      }, () => this.again());
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (why !== this.failing) this.log(`watching ${this.rt.plural}: ${why}; retrying every 0.5 s`);
      this.failing = why;
      this.again();
    }
  }

  private again(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.start();
    }, 500);
  }

  /** Whether start() has been called (a shared informer asked for late starts at once). */
  get running(): boolean {
    return this.started && !this.stopped;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stopWatch?.();
  }
}

/**
 * One informer per kind, shared by every component of a process (client-go's
 * SharedInformerFactory), each with the indexes of indexes.ts (pods by node, by owner,
 * unscheduled; ReplicaSets by owner; slices by Service; Services selecting pods by namespace).
 */
export class SharedInformers {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private started = false;

  constructor(
    readonly client: ObjectClient,
    private readonly log: (l: string) => void = () => {},
    private readonly indexes: IndexDefs = INDEXES,
  ) {}

  /** The informer of `kind`, made on first ask; asked after start(), it starts at once. */
  of<T extends KubeObject>(kind: string): Informer<T> {
    let i = this.informers.get(kind);
    if (!i) {
      i = new Informer<KubeObject>(this.client, resourceOfKind(kind), undefined, this.log, undefined, this.indexes[kind]);
      this.informers.set(kind, i);
      if (this.started) void i.start();
    }
    return i as unknown as Informer<T>;
  }

  /** Starts every informer asked for so far; resolves once each has listed (or failed once and retries). */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all([...this.informers.values()].filter((i) => !i.running).map((i) => i.start()));
  }

  /** Whether every informer has listed at least once. */
  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.synced);
  }

  stop(): void {
    for (const i of this.informers.values()) i.stop();
  }
}
