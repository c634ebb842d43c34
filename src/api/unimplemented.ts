// The fields kubewire accepts but does not implement, named in a warning on every write
// (the API server's `Warning: 299 - "..."` header, printed by the CLI as kubectl prints
// it), so that a manifest is never half-honoured in silence. A table per level (a kind's
// spec, a pod spec, a container, a probe, a security context) and one pure function.

import type { Container, KubeObject, PodSpec } from './types.ts';
import { workloadFor } from './workload-kind.ts';
import { isUpstreamDefault } from './defaults/index.ts';

/** Pod spec fields kubewire ignores, and what that means. */
export const POD_SPEC_IGNORED: Readonly<Record<string, string>> = {
  activeDeadlineSeconds: 'pods are not stopped after a deadline',
  affinity: 'the scheduler does not read affinity (nodeSelector works)',
  automountServiceAccountToken: 'no service account tokens are mounted',
  ephemeralContainers: 'ephemeral containers are not run',
  hostIPC: 'pods share no IPC namespace with the host',
  // Accepted so that install manifests written for real clusters (deploy/) apply; kubewire's own node components run in the node's namespace (up --components external).
  hostNetwork: "the pod gets its own network namespace and address, not the node's",
  hostPID: 'pods share no PID namespace with the host',
  hostUsers: 'no user namespaces',
  imagePullSecrets: 'images are not pulled',
  initContainers: 'init containers are not run',
  overhead: 'no resource accounting',
  preemptionPolicy: 'no preemption',
  priority: 'no priorities',
  priorityClassName: 'no priorities',
  readinessGates: 'readiness gates are not evaluated (the Ready condition follows the containers)',
  resourceClaims: 'no dynamic resources',
  resources: 'no resource limits',
  runtimeClassName: 'one runtime',
  schedulingGates: 'scheduling gates are not evaluated',
  serviceAccount: 'no service accounts',
  serviceAccountName: 'no service accounts (no token is mounted)',
  setHostnameAsFQDN: 'the hostname is the short name',
  shareProcessNamespace: 'containers are host processes (no PID namespace)',
  tolerations: 'nodes have no taints',
  topologySpreadConstraints: 'the scheduler spreads by its own rule (owner, then pod count)',
  volumes: 'volumes are not mounted (command containers see the host filesystem)',
};

/** Container fields kubewire ignores. */
export const CONTAINER_IGNORED: Readonly<Record<string, string>> = {
  lifecycle: 'postStart and preStop hooks are not run',
  resizePolicy: 'no resource limits',
  resources: 'no resource limits',
  restartPolicy: 'no sidecar containers',
  stdin: 'containers get no stdin',
  stdinOnce: 'containers get no stdin',
  tty: 'containers get no terminal',
  volumeDevices: 'volumes are not mounted',
  volumeMounts: 'volumes are not mounted (command containers see the host filesystem)',
};

/** Probe fields kubewire ignores. */
export const PROBE_IGNORED: Readonly<Record<string, string>> = {
  terminationGracePeriodSeconds: "the pod's grace period applies",
};

/** Security context fields honoured: the rest is ignored. */
export const SECURITY_CONTEXT_HONOURED = ['runAsUser', 'runAsGroup', 'runAsNonRoot'];

/** Fields of each kind's spec kubewire ignores (beyond its pod template). */
export const SPEC_IGNORED: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  Deployment: {
    minReadySeconds: 'a pod counts as available once ready',
    paused: 'rollouts cannot be paused',
    progressDeadlineSeconds: 'no progress deadline',
  },
  ReplicaSet: {
    minReadySeconds: 'a pod counts as available once ready',
  },
  StatefulSet: {
    minReadySeconds: 'a pod counts as available once ready',
    ordinals: 'ordinals start at 0',
    persistentVolumeClaimRetentionPolicy: 'no persistent volumes',
    'updateStrategy.rollingUpdate': 'pods are replaced one at a time from the highest ordinal (no partition, no maxUnavailable)',
    volumeClaimTemplates: 'no persistent volumes: pods get no claims',
  },
  DaemonSet: {
    minReadySeconds: 'a pod counts as available once ready',
    'updateStrategy.rollingUpdate': 'pods are replaced one node at a time (maxUnavailable 1, no surge)',
  },
  Service: {
    allocateLoadBalancerNodePorts: 'LoadBalancer Services always get NodePorts',
    healthCheckNodePort: 'no health check port is served',
    loadBalancerClass: 'no load balancer controller: the Service gets no external address',
    loadBalancerIP: 'no load balancer controller: the Service gets no external address',
    loadBalancerSourceRanges: 'source ranges are not enforced',
    trafficDistribution: 'endpoints are chosen without topology',
  },
  Job: {
    activeDeadlineSeconds: 'jobs have no deadline',
    backoffLimitPerIndex: 'no indexed jobs',
    completionMode: 'completions are not indexed (NonIndexed)',
    managedBy: 'the built-in job controller manages every Job',
    manualSelector: "the Job's pods are labelled and selected by the controller",
    maxFailedIndexes: 'no indexed jobs',
    podFailurePolicy: 'every failed pod counts toward backoffLimit',
    podReplacementPolicy: 'failed pods are replaced at once',
    successPolicy: 'a Job succeeds with spec.completions successful pods',
    suspend: 'jobs cannot be suspended',
    ttlSecondsAfterFinished: 'finished Jobs are kept',
  },
};

/** Kinds stored and listed but acted on by nothing in kubewire: the whole object is named. */
export const KIND_IGNORED: Readonly<Record<string, string>> = {
  ServiceAccount: 'stored only: no tokens are made or mounted, and nothing is authorized by it',
  ClusterRole: 'stored only: kubewire does not enforce RBAC (every authenticated user may do everything)',
  ClusterRoleBinding: 'stored only: kubewire does not enforce RBAC (every authenticated user may do everything)',
  Role: 'stored only: kubewire does not enforce RBAC (every authenticated user may do everything)',
  RoleBinding: 'stored only: kubewire does not enforce RBAC (every authenticated user may do everything)',
};

/** Values of ignored fields that mean nothing different from kubewire's behaviour: no warning. */
function harmless(path: string, value: unknown): boolean {
  if (value === undefined || value === null || isUpstreamDefault(path, value)) return true;
  if (path === 'completionMode') return value === 'NonIndexed';
  if (path === 'suspend' || path === 'paused' || path === 'hostPID' || path === 'hostIPC' || path === 'hostNetwork' || path === 'shareProcessNamespace' || path === 'setHostnameAsFQDN' || path === 'stdin' || path === 'stdinOnce' || path === 'tty' || path === 'manualSelector') return value === false;
  if (path === 'minReadySeconds') return value === 0;
  if (path === 'allocateLoadBalancerNodePorts') return value === true;
  if (path === 'automountServiceAccountToken') return value === false;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(obj: unknown, path: string): unknown {
  let v = obj;
  for (const p of path.split('.')) v = isObject(v) ? v[p] : undefined;
  return v;
}

export interface Unimplemented {
  field: string;
  reason: string;
}

function securityContext(out: Unimplemented[], path: string, sc: unknown): void {
  if (!isObject(sc)) return;
  for (const [k, v] of Object.entries(sc)) if (!SECURITY_CONTEXT_HONOURED.includes(k) && !harmless(k, v)) out.push({ field: `${path}.${k}`, reason: 'not applied (kubewire honours runAsUser, runAsGroup and runAsNonRoot)' });
}

function container(out: Unimplemented[], path: string, c: Container, podSc: unknown): void {
  if (!isObject(c)) return;
  for (const [k, reason] of Object.entries(CONTAINER_IGNORED)) if (!harmless(k, c[k as keyof Container])) out.push({ field: `${path}.${k}`, reason });
  (Array.isArray(c.env) ? c.env : []).forEach((e, i) => {
    if (isObject(e) && isObject(e.valueFrom) && (e.valueFrom as Record<string, unknown>).resourceFieldRef !== undefined) out.push({ field: `${path}.env[${i}].valueFrom.resourceFieldRef`, reason: 'no resource limits: the variable is not set' });
  });
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
    const p = c[probe];
    if (!isObject(p)) continue;
    for (const [k, reason] of Object.entries(PROBE_IGNORED)) if (!harmless(k, p[k])) out.push({ field: `${path}.${probe}.${k}`, reason });
  }
  securityContext(out, `${path}.securityContext`, c.securityContext);
  // A built-in workload is served by the workload host, one process for every pod: it cannot take another user.
  const user = (isObject(c.securityContext) ? c.securityContext.runAsUser ?? c.securityContext.runAsGroup : undefined) ?? (isObject(podSc) ? podSc.runAsUser ?? podSc.runAsGroup : undefined);
  if (user !== undefined && typeof c.name === 'string' && typeof c.image === 'string' && workloadFor(c) !== 'process') {
    out.push({ field: `${path}.securityContext.runAsUser`, reason: `the container runs kubewire's built-in workload inside the workload host, which cannot drop privileges: it runs as root` });
  }
}

function podSpec(out: Unimplemented[], path: string, spec: PodSpec | undefined): void {
  if (!isObject(spec)) return;
  for (const [k, reason] of Object.entries(POD_SPEC_IGNORED)) if (!harmless(k, spec[k])) out.push({ field: `${path}.${k}`, reason });
  securityContext(out, `${path}.securityContext`, spec.securityContext);
  (Array.isArray(spec.containers) ? spec.containers : []).forEach((c, i) => container(out, `${path}.containers[${i}]`, c, spec.securityContext));
}

/** The fields of `obj` that kubewire accepts and ignores, with why (pure). */
export function unimplementedFields(obj: KubeObject): Unimplemented[] {
  const out: Unimplemented[] = [];
  if (isObject(obj) && KIND_IGNORED[obj.kind]) out.push({ field: obj.kind, reason: KIND_IGNORED[obj.kind]! });
  if (!isObject(obj) || !isObject(obj.spec)) return out;
  if (obj.kind === 'Pod') podSpec(out, 'spec', obj.spec as PodSpec);
  const ignored = SPEC_IGNORED[obj.kind];
  if (ignored) for (const [k, reason] of Object.entries(ignored)) if (!harmless(k, at(obj.spec, k))) out.push({ field: `spec.${k}`, reason });
  if (obj.kind === 'StatefulSet' || obj.kind === 'DaemonSet' || obj.kind === 'Job' || obj.kind === 'Deployment' || obj.kind === 'ReplicaSet') {
    const template = (obj.spec as { template?: { spec?: PodSpec } }).template;
    podSpec(out, 'spec.template.spec', template?.spec);
  }
  return out;
}

/** The warnings for an object, as the API server words them (one line each). */
export function warningsFor(obj: KubeObject): string[] {
  return unimplementedFields(obj).map((u) => (u.field === obj.kind ? u.reason : `${u.field}: ${u.reason}`));
}
