// A client-go style informer over the daemon's API: list, then watch from the list's
// resourceVersion, keeping a local copy of every object (and, if asked, an index of them).
// When the stream ends (the daemon restarted) it lists again and replaces the copy, so
// deletions during the gap are seen. Each change is told with the object that changed.

import type { ResourceType } from '../api/resources.ts';
import { namespacedName, type KubeObject } from '../api/types.ts';
import type { ObjectClient } from './objects.ts';

export class Informer<T extends KubeObject> {
  readonly items = new Map<string, T>();
  /** index value -> key -> object, for `indexBy`. */
  private readonly index = new Map<string, Map<string, T>>();
  private stopWatch?: () => void;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  /** True once the first list has arrived. */
  synced = false;
  /** Why the last attempt failed (logged once per outage, not at every retry). */
  private failing: string | undefined;

  /** `changed` hears of each change (the object; nothing after a relist). */
  constructor(private readonly client: ObjectClient, private readonly rt: ResourceType, private readonly changed: (obj?: T) => void, private readonly log: (l: string) => void, private readonly indexBy?: (obj: T) => string | undefined) {}

  /** Objects the index holds under `value`. */
  byIndex(value: string): T[] {
    return [...(this.index.get(value)?.values() ?? [])];
  }

  private put(key: string, obj: T | undefined): void {
    const before = this.items.get(key);
    const from = before && this.indexBy?.(before);
    if (from !== undefined) this.index.get(from)?.delete(key);
    if (obj) {
      this.items.set(key, obj);
      const to = this.indexBy?.(obj);
      if (to !== undefined) {
        let m = this.index.get(to);
        if (!m) this.index.set(to, (m = new Map()));
        m.set(key, obj);
      }
    } else this.items.delete(key);
  }

  async start(): Promise<void> {
    if (this.stopped) return;
    try {
      const list = await this.client.list<T>(this.rt);
      this.items.clear();
      this.index.clear();
      for (const o of list.items) this.put(namespacedName(o), { ...o, kind: this.rt.kind });
      this.synced = true;
      if (this.failing) this.log(`watching ${this.rt.plural} again`);
      this.failing = undefined;
      this.changed();
      this.stopWatch = await this.client.watch(this.rt, undefined, { resourceVersion: list.metadata.resourceVersion }, (e) => {
        const o = e.object as T;
        this.put(namespacedName(o), e.type === 'DELETED' ? undefined : o);
        this.changed(o);
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

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stopWatch?.();
  }
}
