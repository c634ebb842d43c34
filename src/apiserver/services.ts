// The API server's defaults for a Service (type, protocol, targetPort, policies) and its
// allocations (ClusterIP from the service CIDR, NodePorts from 30000-32767), on create and
// update. A ClusterIP and the NodePorts a Service already holds are kept on update.

import type { Service, ServicePort } from '../api/types.ts';
import { AllocationError, allocateClusterIP, allocateNodePort } from './allocators.ts';

/** What other Services hold (only asked whether a value is taken). */
export interface Allocated {
  clusterIPs: { has(ip: string): boolean };
  nodePorts: { has(port: number): boolean };
}

export class ServiceInvalid extends Error {
  override name = 'ServiceInvalid';
}

/** The Service as stored: defaults filled, addresses and ports allocated (pure but for randomness). */
export function admitService(input: Service, current: Service | undefined, used: Allocated, serviceCIDR: string): Service {
  const svc = structuredClone(input);
  const spec = svc.spec;
  const name = JSON.stringify(svc.metadata.name);
  const fail = (field: string, value: unknown, e: unknown): never => {
    throw new ServiceInvalid(`Service ${name} is invalid: ${field}: Invalid value: ${JSON.stringify(value)}: ${e instanceof AllocationError ? e.message : String(e)}`);
  };
  spec.type ??= 'ClusterIP';
  if (spec.type === 'ExternalName') return svc;
  spec.sessionAffinity ??= 'None';
  if (spec.sessionAffinity === 'ClientIP') spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800 } };
  spec.internalTrafficPolicy ??= 'Cluster';
  if (spec.type !== 'ClusterIP') spec.externalTrafficPolicy ??= 'Cluster';
  spec.ipFamilies = ['IPv4'];
  spec.ipFamilyPolicy = 'SingleStack';
  spec.ports = (spec.ports ?? []).map((p): ServicePort => ({ ...p, protocol: p.protocol ?? 'TCP', targetPort: p.targetPort ?? p.port }));

  // ClusterIP: immutable once set.
  const had = current?.spec.clusterIP;
  if (had && spec.clusterIP && spec.clusterIP !== had) throw new ServiceInvalid(`Service ${name} is invalid: spec.clusterIPs[0]: Invalid value: ${JSON.stringify([spec.clusterIP])}: may not change once set`);
  if (had) spec.clusterIP = had;
  else if (spec.clusterIP !== 'None') {
    try {
      spec.clusterIP = allocateClusterIP(serviceCIDR, used.clusterIPs, spec.clusterIP || undefined);
    } catch (e) {
      fail('spec.clusterIPs', [spec.clusterIP], e);
    }
  }
  spec.clusterIPs = [spec.clusterIP!];

  // NodePorts: NodePort and LoadBalancer Services have one per port; an existing one is kept.
  const mine = new Set<number>(); // this Service's own ports, taken as they are given out
  const taken = { has: (port: number) => mine.has(port) || used.nodePorts.has(port) };
  spec.ports.forEach((p, i) => {
    if (spec.type === 'ClusterIP') {
      delete p.nodePort;
      return;
    }
    const kept = current?.spec.ports?.find((c) => c.port === p.port && (c.protocol ?? 'TCP') === p.protocol)?.nodePort;
    if (p.nodePort === undefined && kept) p.nodePort = kept;
    if (p.nodePort !== undefined && p.nodePort === kept) {
      mine.add(p.nodePort);
      return;
    }
    try {
      p.nodePort = allocateNodePort(taken, p.nodePort);
    } catch (e) {
      fail(`spec.ports[${i}].nodePort`, p.nodePort, e);
    }
    mine.add(p.nodePort!);
  });
  return svc;
}
