// What a service proxy programs, decided from Services and EndpointSlices alone (pure): one
// entry per Service port, with its virtual addresses and the endpoints that serve it, as
// kube-proxy's ServicePort and Endpoint views hold them.

import type { EndpointSlice, Service } from '../api/types.ts';
import { endpointString, portEndpoints, slicesByService } from '../api/endpointslices.ts';

export type Protocol = 'tcp' | 'udp' | 'sctp';

export interface ProxyEndpoint {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** On the node this proxy runs on. */
  local: boolean;
}

export interface ServicePortInfo {
  namespace: string;
  name: string;
  portName: string; // '' when the port has no name
  protocol: Protocol;
  clusterIP?: string;
  port: number;
  nodePort?: number;
  externalIPs: string[];
  /** Seconds of ClientIP affinity; undefined without affinity. */
  affinitySeconds?: number;
  externalLocal: boolean;
  internalLocal: boolean;
  endpoints: ProxyEndpoint[];
}

/** kube-proxy's ServicePortName: "ns/name:port", or "ns/name" for an unnamed port. */
export function servicePortName(sp: Pick<ServicePortInfo, 'namespace' | 'name' | 'portName'>): string {
  return `${sp.namespace}/${sp.name}${sp.portName ? `:${sp.portName}` : ''}`;
}

/** Services kube-proxy skips: headless, ExternalName, or handed to another proxy. */
export function skipService(svc: Service): boolean {
  const labels = svc.metadata.labels ?? {};
  return !svc.spec.clusterIP || svc.spec.clusterIP === 'None' || svc.spec.type === 'ExternalName' || 'service.kubernetes.io/service-proxy-name' in labels || 'service.kubernetes.io/headless' in labels;
}

/** The proxy's view of the cluster's Services for the node `nodeName` (pure). */
export function buildServicePorts(services: Service[], slices: EndpointSlice[], nodeName: string): ServicePortInfo[] {
  const bySvc = slicesByService(slices);
  const out: ServicePortInfo[] = [];
  for (const svc of services) {
    if (skipService(svc)) continue;
    const ns = svc.metadata.namespace ?? 'default';
    for (const p of svc.spec.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP').toLowerCase() as Protocol;
      const portName = p.name ?? '';
      const endpoints = portEndpoints(bySvc.get(`${ns}/${svc.metadata.name}`) ?? [], portName, p.protocol ?? 'TCP').map(({ ip, port, endpoint: ep }): ProxyEndpoint => ({
        ip,
        port,
        // An endpoint is ready unless it says otherwise (EndpointSlice semantics: nil means true).
        ready: ep.conditions?.ready !== false,
        serving: ep.conditions?.serving ?? ep.conditions?.ready !== false,
        terminating: ep.conditions?.terminating === true,
        local: ep.nodeName === nodeName,
      }));
      out.push({
        namespace: ns,
        name: svc.metadata.name,
        portName,
        protocol,
        clusterIP: svc.spec.clusterIP,
        port: p.port,
        nodePort: svc.spec.type === 'NodePort' || svc.spec.type === 'LoadBalancer' ? p.nodePort : undefined,
        externalIPs: svc.spec.externalIPs ?? [],
        affinitySeconds: svc.spec.sessionAffinity === 'ClientIP' ? (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : undefined,
        externalLocal: svc.spec.externalTrafficPolicy === 'Local',
        internalLocal: svc.spec.internalTrafficPolicy === 'Local',
        // Sorted as kube-proxy sorts them: by their "ip:port" string.
        endpoints: endpoints.sort((a, b) => endpointString(a).localeCompare(endpointString(b))),
      });
    }
  }
  return out.sort((a, b) => servicePortName(a).localeCompare(servicePortName(b)) || a.protocol.localeCompare(b.protocol));
}

/**
 * Which endpoints serve (kube-proxy's CategorizeEndpoints, KEP-1669): cluster traffic uses
 * the ready ones, or, when none is ready, those still serving while they terminate; local
 * traffic the same among the node's own.
 */
export function categorize(sp: ServicePortInfo): { cluster: ProxyEndpoint[]; local: ProxyEndpoint[] } {
  const pick = (eps: ProxyEndpoint[]) => {
    const ready = eps.filter((e) => e.ready);
    return ready.length ? ready : eps.filter((e) => e.serving && e.terminating);
  };
  return { cluster: pick(sp.endpoints), local: pick(sp.endpoints.filter((e) => e.local)) };
}
