// The EndpointSlice controller: for each Service with a selector, the pods it selects as
// endpoints (IP, node, ready / serving / terminating), with named targetPorts resolved per
// pod, grouped by their resolved ports and cut into slices of at most 100 endpoints.
// Slices carry kubernetes.io/service-name and are owned by their Service; slices that others
// manage (Services without selectors) are left alone.

import { createHash } from 'node:crypto';
import { SERVICE_NAME_LABEL } from '../api/endpointslices.ts';
import { matches } from '../api/labels.ts';
import type { Endpoint, EndpointPort, EndpointSlice, Pod, Service } from '../api/types.ts';
import { ignoreNotFound } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const MAX_ENDPOINTS_PER_SLICE = 100;

function isReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** The ports a pod serves for the Service, named targetPorts looked up in its containers; undefined when one cannot be resolved. */
export function resolvePorts(svc: Service, pod: Pod): EndpointPort[] | undefined {
  const out: EndpointPort[] = [];
  for (const sp of svc.spec.ports ?? []) {
    const protocol = sp.protocol ?? 'TCP';
    let port: number | undefined;
    const target = sp.targetPort ?? sp.port;
    if (typeof target === 'number') port = target;
    else {
      for (const c of pod.spec.containers) {
        const cp = (c.ports ?? []).find((p) => p.name === target && (p.protocol ?? 'TCP') === protocol);
        if (cp) port = cp.containerPort;
      }
    }
    if (port === undefined) continue; // this pod does not serve that port: it is not an endpoint of it
    out.push({ name: sp.name ?? '', port, protocol });
  }
  return out.length ? out : undefined;
}

/** The slices a Service should have, given the pods of its namespace (pure). */
export function desiredSlices(svc: Service, pods: Pod[]): EndpointSlice[] {
  const selector = svc.spec.selector;
  if (!selector || !Object.keys(selector).length || svc.spec.type === 'ExternalName') return [];
  const groups = new Map<string, { ports: EndpointPort[]; endpoints: Endpoint[] }>();
  const chosen = pods
    .filter((p) => matches({ matchLabels: selector }, p.metadata.labels) && p.status?.podIP && p.spec.nodeName && p.status.phase !== 'Succeeded' && p.status.phase !== 'Failed')
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const pod of chosen) {
    const ports = resolvePorts(svc, pod) ?? [];
    if ((svc.spec.ports ?? []).length && !ports.length) continue;
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    groups.set(key, group);
    const terminating = Boolean(pod.metadata.deletionTimestamp);
    // As upstream's controller: publishNotReadyAddresses makes every endpoint ready.
    const ready = svc.spec.publishNotReadyAddresses === true || (isReady(pod) && !terminating);
    const hostname = pod.spec.hostname && pod.spec.subdomain === svc.metadata.name ? pod.spec.hostname : undefined;
    group.endpoints.push({
      addresses: [pod.status!.podIP!],
      ...(hostname ? { hostname } : {}),
      conditions: { ready, serving: svc.spec.publishNotReadyAddresses === true || isReady(pod), terminating },
      nodeName: pod.spec.nodeName,
      targetRef: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
    });
  }
  const slices: EndpointSlice[] = [];
  for (const [key, group] of groups) {
    for (let i = 0; i * MAX_ENDPOINTS_PER_SLICE < group.endpoints.length; i++) {
      // Stable names: a slice is updated in place as its endpoints change.
      const id = createHash('sha256').update(`${key}#${i}`).digest('hex').slice(0, 5);
      slices.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${svc.metadata.name}-${id}`,
          namespace: svc.metadata.namespace,
          labels: { [SERVICE_NAME_LABEL]: svc.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
          ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, uid: svc.metadata.uid!, controller: true, blockOwnerDeletion: true }],
        },
        addressType: 'IPv4',
        endpoints: group.endpoints.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE),
        ports: group.ports,
      });
    }
  }
  return slices;
}

const content = (s: EndpointSlice) => JSON.stringify([s.endpoints, s.ports, s.metadata.labels, s.metadata.ownerReferences]);

/** Converges the Service's managed slices on the desired ones. */
export async function syncEndpointSlices(ctx: ControllerContext, namespace: string, name: string): Promise<void> {
  const svc = lister<Service>(ctx, 'Service').get(namespace, name);
  // A Service without a selector keeps whatever slices its owner wrote by hand.
  if (svc && (!svc.spec.selector || !Object.keys(svc.spec.selector).length)) return;
  const existing = lister<EndpointSlice>(ctx, 'EndpointSlice').indexed('service', `${namespace}/${name}`).filter((s) => s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY);
  const desired = svc ? desiredSlices(svc, lister<Pod>(ctx, 'Pod').list(namespace)) : [];
  const slices = rt('EndpointSlice');
  for (const want of desired) {
    const have = existing.find((e) => e.metadata.name === want.metadata.name);
    if (!have) await ctx.client.create(slices, want);
    else if (content(have) !== content(want)) await ctx.client.update(slices, { ...have, endpoints: want.endpoints, ports: want.ports, metadata: { ...have.metadata, labels: want.metadata.labels, ownerReferences: want.metadata.ownerReferences } });
  }
  for (const old of existing) if (!desired.some((d) => d.metadata.name === old.metadata.name)) await ignoreNotFound(ctx.client.delete(slices, namespace, old.metadata.name));
}

/** Services of the namespace that select this pod (what to resync on a pod event). */
export function servicesFor(ctx: ControllerContext, pod: Pod): string[] {
  return lister<Service>(ctx, 'Service').indexed('selecting', pod.metadata.namespace ?? '').filter((s) => matches({ matchLabels: s.spec.selector! }, pod.metadata.labels)).map((s) => s.metadata.name);
}
