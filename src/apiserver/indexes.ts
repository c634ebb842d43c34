// The indexes the store keeps (client-go's Indexers, one set for the whole daemon): how the
// controllers, node agents and admission find the few objects a change concerns without
// reading every object of a kind.

import type { IndexDefs } from './cache.ts';
import type { KubeObject } from '../api/types.ts';

interface PodLike extends KubeObject {
  spec: { nodeName?: string };
}
interface ServiceLike extends KubeObject {
  spec: { selector?: Record<string, string>; clusterIP?: string; ports?: Array<{ nodePort?: number }> };
}

const none: readonly string[] = [];
const one = (v: string | undefined): readonly string[] => (v ? [v] : none);

/** The uid of the object's controller (a pod's Deployment). */
const controllerUid = (o: KubeObject) => o.metadata.ownerReferences?.find((r) => r.controller)?.uid;

export const INDEXES: IndexDefs = {
  Pod: {
    /** Pods bound to a node: what its node agent runs (`spec.nodeName`). */
    nodeName: (o) => one((o as PodLike).spec?.nodeName),
    /** Pods no node is chosen for yet: the scheduler's queue. */
    unscheduled: (o) => ((o as PodLike).spec?.nodeName || o.metadata.deletionTimestamp ? none : ['']),
    /** Pods by the uid of their controlling owner. */
    owner: (o) => one(controllerUid(o)),
    /** Pods that hold a place on a node: all but those that ran to completion (the pod limit). */
    active: (o) => {
      const phase = (o.status as { phase?: string } | undefined)?.phase;
      return phase === 'Succeeded' || phase === 'Failed' ? none : [''];
    },
  },
  EndpointSlice: {
    /** Slices by `namespace/service` (their kubernetes.io/service-name label). */
    service: (o) => {
      const svc = o.metadata.labels?.['kubernetes.io/service-name'];
      return svc ? [`${o.metadata.namespace}/${svc}`] : none;
    },
  },
  Service: {
    /** Services that select pods, by namespace: the ones a pod's change may concern. */
    selecting: (o) => (Object.keys((o as ServiceLike).spec?.selector ?? {}).length ? [o.metadata.namespace ?? ''] : none),
    /** Allocated ClusterIPs. */
    clusterIP: (o) => {
      const ip = (o as ServiceLike).spec?.clusterIP;
      return ip && ip !== 'None' ? [ip] : none;
    },
    /** Allocated NodePorts. */
    nodePort: (o) => ((o as ServiceLike).spec?.ports ?? []).flatMap((p) => (p.nodePort ? [String(p.nodePort)] : [])),
  },
  Deployment: {},
  ReplicaSet: {
    /** ReplicaSets by the uid of their Deployment. */
    owner: (o) => one(controllerUid(o)),
  },
};
