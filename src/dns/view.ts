// The cluster as the DNS server sees it: Services and EndpointSlices kept by informers over
// the daemon's API (as CoreDNS's `kubernetes` plugin keeps client-go caches), with the
// indexes its answers need (store-view.ts). Its changes also go to the UDP thread's copy
// (mirror.ts, udp-thread.ts).

import { resourceOfKind } from '../api/resources.ts';
import { namespacedName, type EndpointSlice, type Service } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { sliceKey, StoreView, type ViewEvent } from './store-view.ts';

export type { ViewEvent } from './store-view.ts';

const SERVICES = resourceOfKind('Service');
const SLICES = resourceOfKind('EndpointSlice');

export class InformerView extends StoreView {
  private readonly services: Informer<Service>;
  private readonly slicesOf: Informer<EndpointSlice>;
  private readonly relays: Array<(e: ViewEvent) => void> = [];

  constructor(client: ObjectClient, zone: string, ranges: string[], log: (l: string) => void, onChange: () => void = () => {}) {
    let view: InformerView | undefined;
    /** An informer's change (the object; none after a list): indexes and cache go, the relays hear it. */
    const changed = <T extends Service | EndpointSlice>(kind: ViewEvent['kind'], informer: () => Informer<T>) => (obj?: T) => {
      view?.changed();
      onChange();
      if (!view?.relays.length) return;
      const items = informer().items;
      const e: ViewEvent = !obj ? { kind, type: 'SYNC', objects: [...items.values()] } : { kind, type: items.has(namespacedName(obj)) ? 'PUT' : 'DELETED', object: obj };
      for (const fn of view.relays) fn(e);
    };
    const services: Informer<Service> = new Informer<Service>(client, SERVICES, changed('Service', () => services), log);
    const slicesOf: Informer<EndpointSlice> = new Informer<EndpointSlice>(client, SLICES, changed('EndpointSlice', () => slicesOf), log, sliceKey);
    super({ services: services.items, slices: (key) => slicesOf.byIndex(key) }, zone, ranges);
    view = this;
    this.services = services;
    this.slicesOf = slicesOf;
  }

  async start(): Promise<void> {
    await Promise.all([this.services.start(), this.slicesOf.start()]);
  }

  get synced(): boolean {
    return this.services.synced && this.slicesOf.synced;
  }

  stop(): void {
    this.services.stop();
    this.slicesOf.stop();
  }

  /** Each change from now on, for a copy of this view elsewhere (mirror.ts); each (re)list as SYNC with every object. */
  onEvent(fn: (e: ViewEvent) => void): void {
    this.relays.push(fn);
  }
}
