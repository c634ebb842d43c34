// Reading EndpointSlices as their consumers do (the service proxy, the ingress controller):
// a Service's slices found by the kubernetes.io/service-name label, and the endpoints of one
// of its ports, by port name and protocol, each address once. Pure.

import type { Endpoint, EndpointSlice } from './types.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** An endpoint as "ip:port" ("[ip]:port" for IPv6): how kube-proxy and ingress-nginx name and sort endpoints. */
export function endpointString(ep: { ip: string; port: number }): string {
  return ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/** IPv4 slices by their Service, keyed "namespace/name". */
export function slicesByService(slices: EndpointSlice[]): Map<string, EndpointSlice[]> {
  const bySvc = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc || s.addressType !== 'IPv4') continue;
    const key = `${s.metadata.namespace}/${svc}`;
    bySvc.set(key, [...(bySvc.get(key) ?? []), s]);
  }
  return bySvc;
}

export interface PortEndpoint {
  ip: string;
  port: number;
  endpoint: Endpoint;
}

/** The endpoints of the Service port named `portName` ('' for an unnamed one) over `protocol`, each ip:port once (the last slice's word wins). */
export function portEndpoints(slices: EndpointSlice[], portName: string, protocol = 'TCP'): PortEndpoint[] {
  const seen = new Map<string, PortEndpoint>();
  for (const slice of slices) {
    const sp = (slice.ports ?? []).find((x) => (x.name ?? '') === portName && (x.protocol ?? 'TCP') === protocol);
    if (!sp?.port) continue;
    for (const endpoint of slice.endpoints) seen.set(`${endpoint.addresses[0]}:${sp.port}`, { ip: endpoint.addresses[0]!, port: sp.port, endpoint });
  }
  return [...seen.values()];
}
