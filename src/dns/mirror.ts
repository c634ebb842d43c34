// The cluster view of the UDP thread (udp-thread.ts): a copy of the main thread's informers'
// Services and EndpointSlices, kept by the changes they hear (InformerView.onEvent), sent as
// messages. No second watch of the API: the thread sees what the main thread's informers see,
// a message later.

import { namespacedName as keyOf, type EndpointSlice, type Service } from '../api/types.ts';
import { sliceKey, StoreView, type ViewEvent } from './store-view.ts';

export class MirrorView extends StoreView {
  private readonly services: Map<string, Service>;
  /** Slices by sliceKey, each by its own namespace/name. */
  private readonly slicesBy: Map<string, Map<string, EndpointSlice>>;
  /** Each slice's sliceKey when it was stored (a label change moves it). */
  private readonly keyOfSlice = new Map<string, string>();
  /** Kinds listed at least once. */
  private readonly listed = new Set<ViewEvent['kind']>();

  constructor(zone: string, ranges: string[]) {
    const services = new Map<string, Service>();
    const slicesBy = new Map<string, Map<string, EndpointSlice>>();
    super({ services, slices: (key) => [...(slicesBy.get(key)?.values() ?? [])] }, zone, ranges);
    this.services = services;
    this.slicesBy = slicesBy;
  }

  /** Whether both kinds have been listed (the main thread's informers had synced). */
  get synced(): boolean {
    return this.listed.size === 2;
  }

  apply(e: ViewEvent): void {
    const all = 'objects' in e ? e.objects : undefined;
    const one = 'object' in e ? e.object : undefined;
    if (e.kind === 'Service') {
      if (all) {
        this.services.clear();
        for (const o of all) this.services.set(keyOf(o), o as Service);
      } else if (e.type === 'DELETED') this.services.delete(keyOf(one!));
      else this.services.set(keyOf(one!), one as Service);
    } else if (all) {
      this.slicesBy.clear();
      this.keyOfSlice.clear();
      for (const o of all) this.putSlice(o as EndpointSlice);
    } else if (e.type === 'DELETED') this.dropSlice(keyOf(one!));
    else this.putSlice(one as EndpointSlice);
    if (all) this.listed.add(e.kind);
    this.changed();
  }

  private putSlice(s: EndpointSlice): void {
    const name = keyOf(s);
    this.dropSlice(name);
    const key = sliceKey(s);
    const list = this.slicesBy.get(key) ?? this.slicesBy.set(key, new Map()).get(key)!;
    list.set(name, s);
    this.keyOfSlice.set(name, key);
  }

  private dropSlice(name: string): void {
    const key = this.keyOfSlice.get(name);
    if (key === undefined) return;
    this.keyOfSlice.delete(name);
    const list = this.slicesBy.get(key)!;
    list.delete(name);
    if (!list.size) this.slicesBy.delete(key);
  }
}
