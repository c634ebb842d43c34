// The API server's own Service, as kube-apiserver keeps it on every cluster: default/kubernetes
// at the service range's first address, port 443 named https, no selector, and its endpoints
// (an EndpointSlice and, for older clients, Endpoints) written by the API server itself
// (the "master endpoint reconciler"), here every node's
// underlay address at 6443 where node-api.ts serves the API. Pods reach it at its ClusterIP
// (kubernetes.default.svc, KUBERNETES_SERVICE_HOST) through the service proxy like any
// Service; the server certificate names that address and those names.

import { resourceOfKind, type ResourceType } from '../api/resources.ts';
import type { EndpointSlice, KubeObject, Service } from '../api/types.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { isNotFound } from '../apiserver/status.ts';
import { apiServiceIP, type ClusterSpec } from '../cluster/plan.ts';

/** kube-apiserver's secure port: where the kubernetes Service's endpoints listen. */
export const API_SECURE_PORT = 6443;

const LABELS = { component: 'apiserver', provider: 'kubernetes' };

export function kubernetesServiceObjects(spec: Pick<ClusterSpec, 'serviceCIDR'>, nodeIPs: string[]): [Service, EndpointSlice, KubeObject] {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { ...LABELS } },
    spec: { type: 'ClusterIP', clusterIP: apiServiceIP(spec), ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_SECURE_PORT }], sessionAffinity: 'None' },
  } as Service;
  const slice: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
    addressType: 'IPv4',
    endpoints: [...nodeIPs].sort().map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'https', port: API_SECURE_PORT, protocol: 'TCP' }],
  };
  // Written beside the slice, not mirrored from it (upstream labels it so the mirroring controller skips it).
  const endpoints = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
    subsets: [{ addresses: [...nodeIPs].sort().map((ip) => ({ ip })), ports: [{ name: 'https', port: API_SECURE_PORT, protocol: 'TCP' }] }],
  } as KubeObject;
  return [service, slice, endpoints];
}

/**
 * Creates default/kubernetes when missing (before any user's Service can take its address)
 * and sets its EndpointSlice to the nodes' addresses. A Service of that name the user made
 * otherwise is left alone, and said so.
 */
export async function ensureKubernetesService(client: ObjectClient, spec: Pick<ClusterSpec, 'serviceCIDR'>, nodeIPs: string[], log: (line: string) => void): Promise<void> {
  const [service, slice, endpoints] = kubernetesServiceObjects(spec, nodeIPs);
  const services = resourceOfKind('Service');
  const slices = resourceOfKind('EndpointSlice');
  const endpointsRT = resourceOfKind('Endpoints');
  const current = await tryGet<Service>(client, services, 'kubernetes');
  if (!current) {
    try {
      await client.create(services, service);
    } catch (e) {
      return log(`the kubernetes Service: ${(e as Error).message} (pods cannot reach the API at ${service.spec.clusterIP})`);
    }
  } else if (current.spec.selector && Object.keys(current.spec.selector).length) {
    return log('the kubernetes Service has a selector: it is not the API server\'s, whose endpoints are left alone');
  }
  const had = await tryGet<EndpointSlice>(client, slices, 'kubernetes');
  if (!had) await client.create(slices, slice);
  else if (JSON.stringify([had.endpoints, had.ports]) !== JSON.stringify([slice.endpoints, slice.ports])) await client.update(slices, { ...had, endpoints: slice.endpoints, ports: slice.ports });
  const hadEndpoints = await tryGet<KubeObject & { subsets?: unknown }>(client, endpointsRT, 'kubernetes');
  const subsets = (endpoints as KubeObject & { subsets: unknown }).subsets;
  if (!hadEndpoints) await client.create(endpointsRT, endpoints);
  else if (JSON.stringify(hadEndpoints.subsets) !== JSON.stringify(subsets)) await client.update(endpointsRT, { ...hadEndpoints, subsets });
}

/** default/NAME, or undefined when there is none. */
async function tryGet<T extends KubeObject>(client: ObjectClient, rt: ResourceType, name: string): Promise<T | undefined> {
  try {
    return await client.get<T>(rt, 'default', name);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}
