// The cluster view the answers read (records.ts's ClusterView) over stores someone else keeps:
// the informers (view.ts) on the main thread, the informers' changes sent as messages
// (mirror.ts) on the UDP thread. Every change bumps `generation`, which empties the answer
// cache, and drops the indexes, rebuilt when next asked.

import type { EndpointSlice, KubeObject, Service } from '../api/types.ts';
import { contains, tryParseIP, tryParsePrefix, type Prefix } from '../netaddr/ip.ts';
import { endpointName, isHeadless, publishedEndpoints, type ClusterView } from './records.ts';

export const SERVICE_LABEL = 'kubernetes.io/service-name';

/** The key a slice is found by: its namespace and its Service's name (pure). */
export const sliceKey = (s: EndpointSlice): string => `${s.metadata.namespace}/${s.metadata.labels?.[SERVICE_LABEL] ?? ''}`;

/** What a view reads: Services by namespace/name, and slices by sliceKey. */
export interface ViewStores {
  services: ReadonlyMap<string, Service>;
  slices(key: string): EndpointSlice[];
}

/** The answers' view over stores someone else keeps up to date, calling changed() after each change. */
export class StoreView implements ClusterView {
  private readonly ranges: Prefix[];
  /** Indexes rebuilt lazily after a change. */
  private index?: { byClusterIP: Map<string, Service>; byEndpointIP: Map<string, Array<{ service: Service; hostname: string }>>; namespaces: Set<string> };
  generation = 0;

  constructor(private readonly stores: ViewStores, readonly zone: string, ranges: string[]) {
    this.ranges = ranges.map((r) => tryParsePrefix(r)).filter((p): p is Prefix => p !== undefined);
  }

  /** After each change to the stores: the answer cache (generation) and the indexes go. */
  protected changed(): void {
    this.generation++;
    this.index = undefined;
  }

  service(namespace: string, name: string): Service | undefined {
    return this.stores.services.get(`${namespace}/${name}`);
  }

  slices(namespace: string, service: string): EndpointSlice[] {
    return this.stores.slices(`${namespace}/${service}`);
  }

  private built() {
    if (this.index) return this.index;
    const byClusterIP = new Map<string, Service>();
    const byEndpointIP = new Map<string, Array<{ service: Service; hostname: string }>>();
    const namespaces = new Set<string>();
    for (const svc of this.stores.services.values()) {
      namespaces.add(svc.metadata.namespace!);
      if (!isHeadless(svc)) {
        if (svc.spec.clusterIP) byClusterIP.set(svc.spec.clusterIP, svc);
        continue;
      }
      for (const e of publishedEndpoints(svc, this.slices(svc.metadata.namespace!, svc.metadata.name))) {
        const list = byEndpointIP.get(e.ip) ?? [];
        list.push({ service: svc, hostname: endpointName(e.hostname, e.ip) });
        byEndpointIP.set(e.ip, list);
      }
    }
    return (this.index = { byClusterIP, byEndpointIP, namespaces });
  }

  hasNamespace(namespace: string): boolean {
    return this.built().namespaces.has(namespace);
  }

  byClusterIP(ip: string): Service | undefined {
    return this.built().byClusterIP.get(ip);
  }

  byEndpointIP(ip: string): Array<{ service: Service; hostname: string }> {
    return this.built().byEndpointIP.get(ip) ?? [];
  }

  ownsAddress(ip: string): boolean {
    const parsed = tryParseIP(ip);
    return parsed !== undefined && this.ranges.some((r) => contains(r, parsed));
  }
}

/** A change as the informers heard it: an object stored or deleted; SYNC (after a list) carries every object of its kind. */
export type ViewEvent = { kind: 'Service' | 'EndpointSlice' } & ({ type: 'SYNC'; objects: KubeObject[] } | { type: 'PUT' | 'DELETED'; object: KubeObject });

