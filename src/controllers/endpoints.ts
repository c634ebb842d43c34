// core/v1 Endpoints for older clients, mirrored from a Service's EndpointSlices (the
// EndpointSlices are the truth here, as they are for kube-proxy since 1.19): one subset per
// port set, ready addresses apart from not-ready ones, as the endpoints controller writes them.
// Terminating endpoints are left out, as upstream's Endpoints never carry them.

import type { EndpointSlice, KubeObject, Service } from '../api/types.ts';
import { ignoreNotFound } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

export interface EndpointAddress {
  ip: string;
  hostname?: string;
  nodeName?: string;
  targetRef?: { kind: string; namespace?: string; name: string; uid?: string };
}

export interface EndpointSubset {
  addresses?: EndpointAddress[];
  notReadyAddresses?: EndpointAddress[];
  ports?: Array<{ name?: string; port: number; protocol: string }>;
}

export interface Endpoints extends KubeObject {
  subsets?: EndpointSubset[];
}

const byIp = (a: EndpointAddress, b: EndpointAddress) => a.ip.localeCompare(b.ip, 'en', { numeric: true });

/** The Endpoints object of a Service from its slices (pure). */
export function endpointsOf(svc: Service, slices: EndpointSlice[]): Endpoints {
  const subsets = new Map<string, EndpointSubset>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const ports = (slice.ports ?? []).filter((p) => p.port !== undefined).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port!, protocol: p.protocol ?? 'TCP' }));
    const key = JSON.stringify(ports);
    const subset = subsets.get(key) ?? { ports };
    subsets.set(key, subset);
    for (const ep of slice.endpoints) {
      if (ep.conditions.terminating) continue;
      for (const ip of ep.addresses) {
        const address: EndpointAddress = { ip, ...(ep.hostname ? { hostname: ep.hostname } : {}), ...(ep.nodeName ? { nodeName: ep.nodeName } : {}), ...(ep.targetRef ? { targetRef: ep.targetRef } : {}) };
        const list = ep.conditions.ready === false ? (subset.notReadyAddresses ??= []) : (subset.addresses ??= []);
        list.push(address);
      }
    }
  }
  const nonEmpty = [...subsets.values()].filter((s) => s.addresses?.length || s.notReadyAddresses?.length);
  for (const s of nonEmpty) {
    s.addresses?.sort(byIp);
    s.notReadyAddresses?.sort(byIp);
  }
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: svc.metadata.name, namespace: svc.metadata.namespace, labels: { ...(svc.metadata.labels ?? {}) } },
    ...(nonEmpty.length ? { subsets: nonEmpty } : {}),
  };
}

/** Converges the Service's Endpoints on its slices; removes it with the Service. */
export async function syncEndpoints(ctx: ControllerContext, namespace: string, name: string): Promise<void> {
  const svc = lister<Service>(ctx, 'Service').get(namespace, name);
  const have = lister<Endpoints>(ctx, 'Endpoints').get(namespace, name);
  const endpoints = rt('Endpoints');
  // A Service without a selector keeps whatever Endpoints its owner wrote by hand.
  if (svc && (!svc.spec.selector || !Object.keys(svc.spec.selector).length)) return;
  if (!svc) {
    if (have) await ignoreNotFound(ctx.client.delete(endpoints, namespace, name));
    return;
  }
  const want = endpointsOf(svc, lister<EndpointSlice>(ctx, 'EndpointSlice').indexed('service', `${namespace}/${name}`));
  if (!have) await ctx.client.create(endpoints, want);
  else if (JSON.stringify([have.subsets, have.metadata.labels]) !== JSON.stringify([want.subsets, want.metadata.labels])) {
    await ctx.client.update(endpoints, { ...have, subsets: want.subsets, metadata: { ...have.metadata, labels: want.metadata.labels } } as Endpoints);
  }
}
