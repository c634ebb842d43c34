// The cluster as the DNS server sees it: Services and EndpointSlices kept by informers over
// the daemon's API (as CoreDNS's `kubernetes` plugin keeps client-go caches), with the
// indexes its answers need. Every change bumps `generation`, which empties the answer cache.

import { resourceOfKind } from '../api/resources.ts';
import type { EndpointSlice, Service } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { contains, tryParseIP, tryParsePrefix, type Prefix } from '../netaddr/ip.ts';
import { endpointName, isHeadless, publishedEndpoints, type ClusterView } from './records.ts';

const SERVICES = resourceOfKind('Service');
const SLICES = resourceOfKind('EndpointSlice');
const SERVICE_LABEL = 'kubernetes.io/service-name';

export class InformerView implements ClusterView {
  private readonly services: Informer<Service>;
  private readonly slicesOf: Informer<EndpointSlice>;
  private readonly ranges: Prefix[];
  /** Indexes rebuilt lazily after a change. */
  private index?: { byClusterIP: Map<string, Service>; byEndpointIP: Map<string, Array<{ service: Service; hostname: string }>>; namespaces: Set<string> };
  generation = 0;

  constructor(client: ObjectClient, readonly zone: string, ranges: string[], log: (l: string) => void, onChange: () => void = () => {}) {
    this.ranges = ranges.map((r) => tryParsePrefix(r)).filter((p): p is Prefix => p !== undefined);
    const changed = () => {
      this.generation++;
      this.index = undefined;
      onChange();
    };
    this.services = new Informer<Service>(client, SERVICES, changed, log);
    this.slicesOf = new Informer<EndpointSlice>(client, SLICES, changed, log, (s) => `${s.metadata.namespace}/${s.metadata.labels?.[SERVICE_LABEL] ?? ''}`);
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

  service(namespace: string, name: string): Service | undefined {
    return this.services.items.get(`${namespace}/${name}`);
  }

  slices(namespace: string, service: string): EndpointSlice[] {
    return this.slicesOf.byIndex(`${namespace}/${service}`);
  }

  private built() {
    if (this.index) return this.index;
    const byClusterIP = new Map<string, Service>();
    const byEndpointIP = new Map<string, Array<{ service: Service; hostname: string }>>();
    const namespaces = new Set<string>();
    for (const svc of this.services.items.values()) {
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
