// How each served type's lists and maps merge, as upstream's Go types declare it: the struct
// tags `patchStrategy`/`patchMergeKey` (strategic merge patch) and the `+listType`,
// `+listMapKey`, `+mapType` markers (server-side apply, OpenAPI x-kubernetes-list-*).
// Sourced from kubernetes/api core/v1, apps/v1, batch/v1, networking/v1, discovery/v1 types.go
// and apimachinery's ObjectMeta; fields newer than 1.32 left out. Pure data and lookups.
//
// Shape: definition name -> field -> FieldMeta, plus the struct type of each field that leads
// to one (TYPES), so a path from a kind finds its meta (metaAt('Deployment', [...])).

export interface FieldMeta {
  /** Strategic merge patch: 'merge' (lists by mergeKey, or primitives as a set), 'retainKeys', 'merge,retainKeys'. */
  strategy?: 'merge' | 'retainKeys' | 'merge,retainKeys';
  /** The key that identifies an item of a merged list of objects. */
  mergeKey?: string;
  /** Server-side apply: 'map' (items keyed by listMapKeys), 'set' (primitives), 'atomic' (replaced whole). */
  listType?: 'map' | 'set' | 'atomic';
  listMapKeys?: string[];
  /** A map replaced whole by server-side apply (+mapType=atomic). */
  mapType?: 'atomic';
}

const byName: FieldMeta = { strategy: 'merge', mergeKey: 'name', listType: 'map', listMapKeys: ['name'] };
const byType: FieldMeta = { strategy: 'merge', mergeKey: 'type', listType: 'map', listMapKeys: ['type'] };
const atomic: FieldMeta = { listType: 'atomic' };
const atomicMap: FieldMeta = { mapType: 'atomic' };

const CONTAINER: Record<string, FieldMeta> = {
  command: atomic,
  args: atomic,
  ports: { strategy: 'merge', mergeKey: 'containerPort', listType: 'map', listMapKeys: ['containerPort', 'protocol'] },
  envFrom: atomic,
  env: byName,
  resizePolicy: atomic,
  volumeMounts: { strategy: 'merge', mergeKey: 'mountPath', listType: 'map', listMapKeys: ['mountPath'] },
  volumeDevices: { strategy: 'merge', mergeKey: 'devicePath', listType: 'map', listMapKeys: ['devicePath'] },
};

const CONDITIONS = { conditions: byType };

export const PATCH_META: Record<string, Record<string, FieldMeta>> = {
  'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
    finalizers: { strategy: 'merge', listType: 'set' },
    ownerReferences: { strategy: 'merge', mergeKey: 'uid', listType: 'map', listMapKeys: ['uid'] },
    managedFields: atomic,
  },
  'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector': { matchExpressions: atomic },
  'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement': { values: atomic },
  'io.k8s.api.core.v1.PodSpec': {
    volumes: { strategy: 'merge,retainKeys', mergeKey: 'name', listType: 'map', listMapKeys: ['name'] },
    initContainers: byName,
    containers: byName,
    ephemeralContainers: byName,
    nodeSelector: atomicMap,
    imagePullSecrets: byName,
    tolerations: atomic,
    hostAliases: { strategy: 'merge', mergeKey: 'ip', listType: 'map', listMapKeys: ['ip'] },
    readinessGates: atomic,
    topologySpreadConstraints: { strategy: 'merge', mergeKey: 'topologyKey', listType: 'map', listMapKeys: ['topologyKey', 'whenUnsatisfiable'] },
    schedulingGates: byName,
    resourceClaims: { strategy: 'merge,retainKeys', mergeKey: 'name', listType: 'map', listMapKeys: ['name'] },
  },
  'io.k8s.api.core.v1.Container': CONTAINER,
  'io.k8s.api.core.v1.EphemeralContainer': CONTAINER, // EphemeralContainerCommon, inlined
  'io.k8s.api.core.v1.ResourceRequirements': { claims: { listType: 'map', listMapKeys: ['name'] } },
  'io.k8s.api.core.v1.ExecAction': { command: atomic },
  'io.k8s.api.core.v1.HTTPGetAction': { httpHeaders: atomic },
  'io.k8s.api.core.v1.Capabilities': { add: atomic, drop: atomic },
  'io.k8s.api.core.v1.HostAlias': { hostnames: atomic },
  'io.k8s.api.core.v1.TopologySpreadConstraint': { matchLabelKeys: atomic },
  'io.k8s.api.core.v1.PodSecurityContext': { supplementalGroups: atomic, sysctls: atomic },
  'io.k8s.api.core.v1.PodDNSConfig': { nameservers: atomic, searches: atomic, options: atomic },
  'io.k8s.api.core.v1.ConfigMapVolumeSource': { items: atomic },
  'io.k8s.api.core.v1.SecretVolumeSource': { items: atomic },
  'io.k8s.api.core.v1.ProjectedVolumeSource': { sources: atomic },
  'io.k8s.api.core.v1.PodStatus': {
    conditions: byType,
    hostIPs: { strategy: 'merge', mergeKey: 'ip', listType: 'atomic' },
    podIPs: { strategy: 'merge', mergeKey: 'ip', listType: 'map', listMapKeys: ['ip'] },
    initContainerStatuses: atomic,
    containerStatuses: atomic,
    ephemeralContainerStatuses: atomic,
  },
  'io.k8s.api.core.v1.ServiceSpec': {
    ports: { strategy: 'merge', mergeKey: 'port', listType: 'map', listMapKeys: ['port', 'protocol'] },
    selector: atomicMap,
    clusterIPs: atomic,
    externalIPs: atomic,
    loadBalancerSourceRanges: atomic,
    ipFamilies: atomic,
  },
  'io.k8s.api.core.v1.ServiceStatus': CONDITIONS,
  'io.k8s.api.core.v1.LoadBalancerStatus': { ingress: atomic },
  'io.k8s.api.core.v1.ServiceAccount': { secrets: byName, imagePullSecrets: atomic },
  'io.k8s.api.core.v1.NodeSpec': { podCIDRs: { strategy: 'merge', listType: 'set' }, taints: atomic },
  'io.k8s.api.core.v1.NodeStatus': { conditions: byType, addresses: byType, images: atomic, volumesInUse: atomic, volumesAttached: atomic },
  'io.k8s.api.core.v1.NamespaceSpec': { finalizers: atomic },
  'io.k8s.api.core.v1.NamespaceStatus': CONDITIONS,
  'io.k8s.api.apps.v1.DeploymentSpec': { strategy: { strategy: 'retainKeys' } },
  'io.k8s.api.apps.v1.DeploymentStatus': CONDITIONS,
  'io.k8s.api.apps.v1.StatefulSetSpec': { volumeClaimTemplates: atomic },
  'io.k8s.api.apps.v1.StatefulSetStatus': CONDITIONS,
  'io.k8s.api.apps.v1.DaemonSetStatus': CONDITIONS,
  'io.k8s.api.apps.v1.ReplicaSetStatus': CONDITIONS,
  'io.k8s.api.batch.v1.JobStatus': { conditions: { strategy: 'merge', mergeKey: 'type', listType: 'atomic' } },
  'io.k8s.api.batch.v1.PodFailurePolicy': { rules: atomic },
  'io.k8s.api.networking.v1.IngressSpec': { tls: atomic, rules: atomic },
  'io.k8s.api.networking.v1.IngressTLS': { hosts: atomic },
  'io.k8s.api.networking.v1.HTTPIngressRuleValue': { paths: atomic },
  'io.k8s.api.networking.v1.IngressLoadBalancerStatus': { ingress: atomic },
  'io.k8s.api.networking.v1.NetworkPolicySpec': { ingress: atomic, egress: atomic, policyTypes: atomic },
  'io.k8s.api.networking.v1.NetworkPolicyIngressRule': { ports: atomic, from: atomic },
  'io.k8s.api.networking.v1.NetworkPolicyEgressRule': { ports: atomic, to: atomic },
  'io.k8s.api.networking.v1.IPBlock': { except: atomic },
  'io.k8s.api.discovery.v1.EndpointSlice': { endpoints: atomic, ports: atomic },
  'io.k8s.api.discovery.v1.Endpoint': { addresses: { listType: 'set' } },
};

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const SELECTOR = 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector';
const core = (n: string) => `io.k8s.api.core.v1.${n}`;
const apps = (n: string) => `io.k8s.api.apps.v1.${n}`;
const TEMPLATE = core('PodTemplateSpec');

/** The struct type of each field that leads (directly or as list items) to a definition above. */
export const TYPES: Record<string, Record<string, string>> = {
  [core('Pod')]: { metadata: META, spec: core('PodSpec'), status: core('PodStatus') },
  [TEMPLATE]: { metadata: META, spec: core('PodSpec') },
  [core('PodSpec')]: {
    containers: core('Container'), initContainers: core('Container'), ephemeralContainers: core('EphemeralContainer'),
    volumes: core('Volume'), hostAliases: core('HostAlias'), topologySpreadConstraints: core('TopologySpreadConstraint'),
    securityContext: core('PodSecurityContext'), dnsConfig: core('PodDNSConfig'), affinity: core('Affinity'),
  },
  [core('TopologySpreadConstraint')]: { labelSelector: SELECTOR },
  [core('Volume')]: { configMap: core('ConfigMapVolumeSource'), secret: core('SecretVolumeSource'), projected: core('ProjectedVolumeSource') },
  [core('Container')]: {
    resources: core('ResourceRequirements'), securityContext: core('SecurityContext'),
    livenessProbe: core('Probe'), readinessProbe: core('Probe'), startupProbe: core('Probe'), lifecycle: core('Lifecycle'),
  },
  [core('EphemeralContainer')]: { resources: core('ResourceRequirements'), securityContext: core('SecurityContext') },
  [core('SecurityContext')]: { capabilities: core('Capabilities') },
  [core('Probe')]: { exec: core('ExecAction'), httpGet: core('HTTPGetAction') },
  [core('Lifecycle')]: { postStart: core('LifecycleHandler'), preStop: core('LifecycleHandler') },
  [core('LifecycleHandler')]: { exec: core('ExecAction'), httpGet: core('HTTPGetAction') },
  [core('Affinity')]: {},
  [core('Service')]: { metadata: META, spec: core('ServiceSpec'), status: core('ServiceStatus') },
  [core('ServiceStatus')]: { loadBalancer: core('LoadBalancerStatus') },
  [core('Node')]: { metadata: META, spec: core('NodeSpec'), status: core('NodeStatus') },
  [core('Namespace')]: { metadata: META, spec: core('NamespaceSpec'), status: core('NamespaceStatus') },
  [core('ServiceAccount')]: { metadata: META },
  [core('ConfigMap')]: { metadata: META },
  [core('Secret')]: { metadata: META },
  [core('Event')]: { metadata: META },
  [apps('Deployment')]: { metadata: META, spec: apps('DeploymentSpec'), status: apps('DeploymentStatus') },
  [apps('DeploymentSpec')]: { selector: SELECTOR, template: TEMPLATE },
  [apps('StatefulSet')]: { metadata: META, spec: apps('StatefulSetSpec'), status: apps('StatefulSetStatus') },
  [apps('StatefulSetSpec')]: { selector: SELECTOR, template: TEMPLATE },
  [apps('DaemonSet')]: { metadata: META, spec: apps('DaemonSetSpec'), status: apps('DaemonSetStatus') },
  [apps('DaemonSetSpec')]: { selector: SELECTOR, template: TEMPLATE },
  ['io.k8s.api.batch.v1.Job']: { metadata: META, spec: 'io.k8s.api.batch.v1.JobSpec', status: 'io.k8s.api.batch.v1.JobStatus' },
  ['io.k8s.api.batch.v1.JobSpec']: { selector: SELECTOR, template: TEMPLATE, podFailurePolicy: 'io.k8s.api.batch.v1.PodFailurePolicy' },
  ['io.k8s.api.networking.v1.Ingress']: { metadata: META, spec: 'io.k8s.api.networking.v1.IngressSpec', status: 'io.k8s.api.networking.v1.IngressStatus' },
  ['io.k8s.api.networking.v1.IngressSpec']: { rules: 'io.k8s.api.networking.v1.IngressRule', tls: 'io.k8s.api.networking.v1.IngressTLS' },
  ['io.k8s.api.networking.v1.IngressRule']: { http: 'io.k8s.api.networking.v1.HTTPIngressRuleValue' },
  ['io.k8s.api.networking.v1.IngressStatus']: { loadBalancer: 'io.k8s.api.networking.v1.IngressLoadBalancerStatus' },
  ['io.k8s.api.networking.v1.IngressClass']: { metadata: META },
  ['io.k8s.api.networking.v1.NetworkPolicy']: { metadata: META, spec: 'io.k8s.api.networking.v1.NetworkPolicySpec' },
  ['io.k8s.api.networking.v1.NetworkPolicySpec']: { podSelector: SELECTOR, ingress: 'io.k8s.api.networking.v1.NetworkPolicyIngressRule', egress: 'io.k8s.api.networking.v1.NetworkPolicyEgressRule' },
  ['io.k8s.api.networking.v1.NetworkPolicyIngressRule']: { from: 'io.k8s.api.networking.v1.NetworkPolicyPeer' },
  ['io.k8s.api.networking.v1.NetworkPolicyEgressRule']: { to: 'io.k8s.api.networking.v1.NetworkPolicyPeer' },
  ['io.k8s.api.networking.v1.NetworkPolicyPeer']: { podSelector: SELECTOR, namespaceSelector: SELECTOR, ipBlock: 'io.k8s.api.networking.v1.IPBlock' },
  ['io.k8s.api.discovery.v1.EndpointSlice']: { metadata: META, endpoints: 'io.k8s.api.discovery.v1.Endpoint' },
  ['io.k8s.api.rbac.v1.ClusterRole']: { metadata: META },
  ['io.k8s.api.rbac.v1.Role']: { metadata: META },
  ['io.k8s.api.rbac.v1.ClusterRoleBinding']: { metadata: META },
  ['io.k8s.api.rbac.v1.RoleBinding']: { metadata: META },
  [SELECTOR]: { matchExpressions: 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement' },
};

const GROUP_PACKAGE: Record<string, string> = {
  '': 'io.k8s.api.core.v1',
  apps: 'io.k8s.api.apps.v1',
  batch: 'io.k8s.api.batch.v1',
  'networking.k8s.io': 'io.k8s.api.networking.v1',
  'discovery.k8s.io': 'io.k8s.api.discovery.v1',
  'rbac.authorization.k8s.io': 'io.k8s.api.rbac.v1',
};

const KIND_GROUP: Record<string, string> = {
  Deployment: 'apps', StatefulSet: 'apps', DaemonSet: 'apps', ReplicaSet: 'apps', Job: 'batch',
  Ingress: 'networking.k8s.io', IngressClass: 'networking.k8s.io', NetworkPolicy: 'networking.k8s.io', EndpointSlice: 'discovery.k8s.io',
  ClusterRole: 'rbac.authorization.k8s.io', ClusterRoleBinding: 'rbac.authorization.k8s.io', Role: 'rbac.authorization.k8s.io', RoleBinding: 'rbac.authorization.k8s.io',
};

/** The OpenAPI definition name of a served kind: Deployment -> io.k8s.api.apps.v1.Deployment. */
export function definitionOfKind(kind: string): string {
  return `${GROUP_PACKAGE[KIND_GROUP[kind] ?? '']}.${kind}`;
}

/** The definition a field of `definition` leads to (its list items' type for a list), if known. */
export function fieldDefinition(definition: string | undefined, field: string): string | undefined {
  return definition ? TYPES[definition]?.[field] : undefined;
}

/** The meta of `field` in `definition` ({} for a field that merges as plain JSON: maps merge, lists replace). */
export function fieldMeta(definition: string | undefined, field: string): FieldMeta {
  return (definition && PATCH_META[definition]?.[field]) || {};
}

/**
 * The meta of the field at `path` (field names only, no list indices) from a kind:
 * metaAt('Deployment', ['spec', 'template', 'spec', 'containers']) -> {strategy: 'merge', mergeKey: 'name', ...}.
 */
export function metaAt(kind: string, path: readonly string[]): FieldMeta {
  let def: string | undefined = definitionOfKind(kind);
  for (const f of path.slice(0, -1)) def = fieldDefinition(def, f);
  return path.length ? fieldMeta(def, path[path.length - 1]!) : {};
}
