// The node's heartbeat as a coordination.k8s.io/v1 Lease in kube-node-lease, renewed every
// 10 s with a 40 s duration, as the kubelet does (the node controller and client-go
// tools read node liveness from it, not from the Node's status).

import type { KubeObject } from '../api/types.ts';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
export const NODE_LEASE_DURATION_SECONDS = 40;

export interface Lease extends KubeObject {
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** A MicroTime, as the API writes lease times: microseconds and Z. */
export function microTime(at: Date): string {
  return at.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The node's Lease renewed at `at` (pure): created owned by its Node, or the existing one with a new renewTime. */
export function renewedLease(node: { name: string; uid?: string }, at: Date, existing?: Lease): Lease {
  if (existing) return { ...existing, spec: { ...existing.spec, holderIdentity: node.name, leaseDurationSeconds: NODE_LEASE_DURATION_SECONDS, renewTime: microTime(at) } };
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: node.name,
      namespace: NODE_LEASE_NAMESPACE,
      ...(node.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid }] } : {}),
    },
    spec: { holderIdentity: node.name, leaseDurationSeconds: NODE_LEASE_DURATION_SECONDS, renewTime: microTime(at) },
  };
}
