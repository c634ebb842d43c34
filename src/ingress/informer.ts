// A client-go style informer over the daemon's API: list, then watch from the list's
// resourceVersion, keeping a local copy of every object. When the stream ends (the daemon
// restarted) it lists again and replaces the copy, so deletions during the gap are seen.

import type { ResourceType } from '../api/resources.ts';
import { namespacedName, type KubeObject } from '../api/types.ts';
import type { ApiClient } from '../apiserver/client.ts';

export class Informer<T extends KubeObject> {
  readonly items = new Map<string, T>();
  private stopWatch?: () => void;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  /** True once the first list has arrived. */
  synced = false;
  /** Why the last attempt failed (logged once per outage, not at every retry). */
  private failing: string | undefined;

  constructor(private readonly client: ApiClient, private readonly rt: ResourceType, private readonly changed: () => void, private readonly log: (l: string) => void) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    try {
      const list = await this.client.list<T>(this.rt);
      this.items.clear();
      for (const o of list.items) this.items.set(namespacedName(o), { ...o, kind: this.rt.kind });
      this.synced = true;
      if (this.failing) this.log(`watching ${this.rt.plural} again`);
      this.failing = undefined;
      this.changed();
      this.stopWatch = await this.client.watch(this.rt, undefined, { resourceVersion: list.metadata.resourceVersion }, (e) => {
        const o = e.object as T;
        if (e.type === 'DELETED') this.items.delete(namespacedName(o));
        else this.items.set(namespacedName(o), o);
        this.changed();
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
