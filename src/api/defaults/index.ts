// Upstream's defaults for every kind kubewire serves, filled in before validation on create
// and update as the API server's decoding does (one module per API group). Pure.

import type { KubeObject } from '../types.ts';
import { defaultDaemonSet, defaultDeployment, defaultReplicaSet, defaultStatefulSet } from './apps.ts';
import { defaultJob } from './batch.ts';
import { defaultNamespace, defaultPod } from './core.ts';
import { defaultEndpointSlice } from './discovery.ts';
import { defaultNetworkPolicy } from './networking.ts';
import { defaultBinding } from '../rbac.ts';

const BY_KIND: Readonly<Record<string, (o: KubeObject) => KubeObject>> = {
  Pod: defaultPod,
  Namespace: defaultNamespace,
  Deployment: defaultDeployment,
  ReplicaSet: defaultReplicaSet,
  StatefulSet: defaultStatefulSet,
  DaemonSet: defaultDaemonSet,
  Job: defaultJob,
  EndpointSlice: defaultEndpointSlice,
  NetworkPolicy: defaultNetworkPolicy,
  RoleBinding: defaultBinding,
  ClusterRoleBinding: defaultBinding,
};

/** The object with upstream's defaults filled in (a new object; the input is not changed). */
export function withDefaults<T extends KubeObject>(obj: T): T {
  const f = obj && typeof obj === 'object' ? BY_KIND[obj.kind] : undefined;
  return f ? (f(obj) as T) : obj;
}

/**
 * Values of fields kubewire ignores that upstream's defaulting sets by itself: a full object
 * written back as read (kubectl edit, replace, get -o yaml | apply) carries them, and they ask
 * for nothing kubewire does not do, so they earn no warning (api/unimplemented.ts).
 */
const UPSTREAM_DEFAULT_VALUES: Readonly<Record<string, readonly unknown[]>> = {
  serviceAccountName: ['default'],
  serviceAccount: ['default'],
  progressDeadlineSeconds: [600],
  podReplacementPolicy: ['TerminatingOrFailed'],
  persistentVolumeClaimRetentionPolicy: [{ whenDeleted: 'Retain', whenScaled: 'Retain' }],
  'updateStrategy.rollingUpdate': [{ partition: 0 }, { maxUnavailable: 1, maxSurge: 0 }],
};

export function isUpstreamDefault(field: string, value: unknown): boolean {
  return (UPSTREAM_DEFAULT_VALUES[field] ?? []).some((v) => JSON.stringify(v) === JSON.stringify(value));
}
