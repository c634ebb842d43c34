// The resource types kubewire serves, with the names kubectl users type (plural, singular,
// short names) and the REST paths of the Kubernetes API they live under.

export interface ResourceType {
  kind: string;
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
}

export const RESOURCES: readonly ResourceType[] = [
  { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', shortNames: ['ns'], namespaced: false },
  { kind: 'Node', group: '', version: 'v1', plural: 'nodes', singular: 'node', shortNames: ['no'], namespaced: false },
  { kind: 'Pod', group: '', version: 'v1', plural: 'pods', singular: 'pod', shortNames: ['po'], namespaced: true },
  { kind: 'Deployment', group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', shortNames: ['deploy'], namespaced: true },
  { kind: 'ReplicaSet', group: 'apps', version: 'v1', plural: 'replicasets', singular: 'replicaset', shortNames: ['rs'], namespaced: true },
  { kind: 'StatefulSet', group: 'apps', version: 'v1', plural: 'statefulsets', singular: 'statefulset', shortNames: ['sts'], namespaced: true },
  { kind: 'DaemonSet', group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', shortNames: ['ds'], namespaced: true },
  { kind: 'Job', group: 'batch', version: 'v1', plural: 'jobs', singular: 'job', shortNames: [], namespaced: true },
  { kind: 'Service', group: '', version: 'v1', plural: 'services', singular: 'service', shortNames: ['svc'], namespaced: true },
  { kind: 'Endpoints', group: '', version: 'v1', plural: 'endpoints', singular: 'endpoints', shortNames: ['ep'], namespaced: true },
  { kind: 'Event', group: '', version: 'v1', plural: 'events', singular: 'event', shortNames: ['ev'], namespaced: true },
  { kind: 'Secret', group: '', version: 'v1', plural: 'secrets', singular: 'secret', shortNames: [], namespaced: true },
  { kind: 'ConfigMap', group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', shortNames: ['cm'], namespaced: true },
  { kind: 'ServiceAccount', group: '', version: 'v1', plural: 'serviceaccounts', singular: 'serviceaccount', shortNames: ['sa'], namespaced: true },
  { kind: 'Ingress', group: 'networking.k8s.io', version: 'v1', plural: 'ingresses', singular: 'ingress', shortNames: ['ing'], namespaced: true },
  { kind: 'IngressClass', group: 'networking.k8s.io', version: 'v1', plural: 'ingressclasses', singular: 'ingressclass', shortNames: [], namespaced: false },
  { kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', singular: 'networkpolicy', shortNames: ['netpol'], namespaced: true },
  { kind: 'Lease', group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', shortNames: [], namespaced: true },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', shortNames: [], namespaced: true },
  // Stored and validated, not enforced (api/rbac.ts): install manifests carry them.
  { kind: 'ClusterRole', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', singular: 'clusterrole', shortNames: [], namespaced: false },
  { kind: 'ClusterRoleBinding', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', singular: 'clusterrolebinding', shortNames: [], namespaced: false },
  { kind: 'Role', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', singular: 'role', shortNames: [], namespaced: true },
  { kind: 'RoleBinding', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', singular: 'rolebinding', shortNames: [], namespaced: true },
];

/** Create-only resources that store nothing and answer about the requester (kubectl auth whoami, can-i): apiserver/reviews.ts. */
export const REVIEW_RESOURCES: readonly ResourceType[] = [
  { kind: 'SelfSubjectReview', group: 'authentication.k8s.io', version: 'v1', plural: 'selfsubjectreviews', singular: 'selfsubjectreview', shortNames: [], namespaced: false },
  { kind: 'SelfSubjectAccessReview', group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', shortNames: [], namespaced: false },
  { kind: 'SelfSubjectRulesReview', group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectrulesreviews', singular: 'selfsubjectrulesreview', shortNames: [], namespaced: false },
];

export function apiVersionOf(rt: ResourceType): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

/** The type of a manifest's apiVersion + kind, or why there is none (kubectl's wording). */
export function typeOfManifest(apiVersion: unknown, kind: unknown): ResourceType | string {
  if (typeof kind !== 'string' || !kind) return 'kind: Required value (every object needs apiVersion and kind)';
  if (typeof apiVersion !== 'string' || !apiVersion) return 'apiVersion: Required value (every object needs apiVersion and kind)';
  const rt = RESOURCES.find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
  if (rt) return rt;
  const sameKind = RESOURCES.find((r) => r.kind === kind);
  if (sameKind) return `no matches for kind "${kind}" in version "${apiVersion}" (kubewire serves ${kind} as ${apiVersionOf(sameKind)})`;
  return `no matches for kind "${kind}" in version "${apiVersion}" (kubewire serves ${RESOURCES.map((r) => r.kind).join(', ')})`;
}

/** A resource by any name kubectl accepts: pods, pod, po, Pod, deployments.apps. */
export function resourceNamed(name: string): ResourceType | undefined {
  const [base, group] = name.toLowerCase().split(/\.(.*)/) as [string, string | undefined];
  return RESOURCES.find(
    (r) => (group === undefined || r.group === group) && (r.plural === base || r.singular === base || r.shortNames.includes(base) || r.kind.toLowerCase() === base),
  );
}

/** kubectl's and the API server's name of a kind: Deployment.apps, Job.batch, Pod. */
export function qualifiedKind(kind: string): string {
  const rt = RESOURCES.find((r) => r.kind === kind);
  return rt?.group ? `${kind}.${rt.group}` : kind;
}

export function resourceOfKind(kind: string): ResourceType {
  const rt = RESOURCES.find((r) => r.kind === kind);
  if (!rt) throw new Error(`unknown kind ${kind}`);
  return rt;
}

/** /api/v1/namespaces/NS/pods/NAME/SUB or /apis/GROUP/VERSION/... */
export function resourcePath(rt: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let path = rt.group ? `/apis/${rt.group}/${rt.version}` : `/api/${rt.version}`;
  if (rt.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${rt.plural}`;
  if (name) path += `/${encodeURIComponent(name)}`;
  if (name && subresource) path += `/${subresource}`;
  return path;
}

export interface ParsedPath {
  rt: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** The inverse of resourcePath; undefined for paths that name no resource. */
export function parseResourcePath(pathname: string): ParsedPath | undefined {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group = '';
  let version: string | undefined;
  if (parts[0] === 'api') [version] = parts.splice(0, 2).slice(1);
  else if (parts[0] === 'apis') [group, version] = parts.splice(0, 3).slice(1) as [string, string];
  else return undefined;
  let namespace: string | undefined;
  // /namespaces/NS/<plural>... is a namespaced path; /namespaces, /namespaces/NS and
  // /namespaces/NS/status|finalize (a subresource, not a plural) are the Namespace resource.
  const namespaceSubresource = parts.length === 3 && (parts[2] === 'status' || parts[2] === 'finalize');
  if ((parts[0] as string) === 'namespaces' && parts.length >= 3 && !namespaceSubresource) {
    namespace = parts[1];
    parts.splice(0, 2);
  }
  const [plural, name, subresource, ...rest] = parts;
  if (rest.length) return undefined;
  const rt = RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
  if (!rt || (namespace !== undefined && !rt.namespaced)) return undefined;
  return { rt, namespace, name, subresource };
}

/** Where kubewire's whole-manifest apply is served: one request, one transaction (apiserver/api.ts apply). */
export const APPLY_PATH = '/apis/kubewire.dev/v1/apply';
