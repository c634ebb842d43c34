// rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding, stored
// and validated as kube-apiserver does (kubernetes/kubernetes pkg/apis/rbac/validation,
// SetDefaults_Subject), so that manifests written for real clusters (deploy/, every
// component's install YAML) apply unchanged. kubewire does not enforce them: every
// authenticated user may do everything (reviews.ts says so to `kubectl auth can-i`). Pure.

import type { KubeObject } from './types.ts';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface Subject {
  kind: string;
  apiGroup?: string;
  name: string;
  namespace?: string;
}

export interface RoleRef {
  apiGroup: string;
  kind: string;
  name: string;
}

export interface Role extends KubeObject {
  rules?: PolicyRule[];
  aggregationRule?: { clusterRoleSelectors?: unknown[] };
}

export interface RoleBinding extends KubeObject {
  roleRef: RoleRef;
  subjects?: Subject[];
}

export const RBAC_KINDS = ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'] as const;

export function isRbacKind(kind: string): boolean {
  return (RBAC_KINDS as readonly string[]).includes(kind);
}

interface FieldError {
  field: string;
  detail: string;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** path.IsValidPathSegmentName: RBAC names may hold ':' (system:node-proxier) but not '/' or '%', nor be '.' or '..'. */
export function pathSegmentProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !name) return 'Required value: name or generateName is required';
  if (name === '.' || name === '..') return `Invalid value: ${JSON.stringify(name)}: may not be '${name}'`;
  for (const bad of ['/', '%']) if (name.includes(bad)) return `Invalid value: ${JSON.stringify(name)}: may not contain '${bad}'`;
  return undefined;
}

function strings(out: FieldError[], field: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    out.push({ field, detail: `Invalid value: ${JSON.stringify(v)?.slice(0, 60)}: must be a list of strings` });
    return [];
  }
  return v as string[];
}

/** ValidatePolicyRule. */
function ruleErrors(out: FieldError[], f: string, rule: unknown, namespaced: boolean): void {
  if (!isObject(rule)) return void out.push({ field: f, detail: 'Invalid value: must be an object' });
  const verbs = strings(out, `${f}.verbs`, rule.verbs);
  if (!verbs.length) out.push({ field: `${f}.verbs`, detail: 'Required value: verbs must contain at least one value' });
  const urls = strings(out, `${f}.nonResourceURLs`, rule.nonResourceURLs);
  const groups = strings(out, `${f}.apiGroups`, rule.apiGroups);
  const resources = strings(out, `${f}.resources`, rule.resources);
  const names = strings(out, `${f}.resourceNames`, rule.resourceNames);
  if (urls.length) {
    if (namespaced) out.push({ field: `${f}.nonResourceURLs`, detail: `Invalid value: ${JSON.stringify(urls)}: namespaced rules cannot apply to non-resource URLs` });
    if (groups.length || resources.length || names.length) out.push({ field: `${f}.nonResourceURLs`, detail: `Invalid value: ${JSON.stringify(urls)}: rules cannot apply to both regular resources and non-resource URLs` });
    return;
  }
  if (!groups.length) out.push({ field: `${f}.apiGroups`, detail: 'Required value: resource rules must supply at least one api group' });
  if (!resources.length) out.push({ field: `${f}.resources`, detail: 'Required value: resource rules must supply at least one resource' });
}

/** ValidateRoleBindingSubject. */
function subjectErrors(out: FieldError[], f: string, s: unknown, namespaced: boolean): void {
  if (!isObject(s)) return void out.push({ field: f, detail: 'Invalid value: must be an object' });
  if (typeof s.name !== 'string' || !s.name) out.push({ field: `${f}.name`, detail: 'Required value' });
  switch (s.kind) {
    case 'ServiceAccount':
      if (typeof s.name === 'string' && s.name && (s.name.length > 253 || !DNS_SUBDOMAIN.test(s.name))) out.push({ field: `${f}.name`, detail: `Invalid value: ${JSON.stringify(s.name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` });
      if (s.apiGroup !== undefined && s.apiGroup !== '') out.push({ field: `${f}.apiGroup`, detail: `Unsupported value: ${JSON.stringify(s.apiGroup)}: supported values: ""` });
      if (!namespaced && !s.namespace) out.push({ field: `${f}.namespace`, detail: 'Required value' });
      break;
    case 'User':
    case 'Group':
      if (s.apiGroup !== RBAC_GROUP) out.push({ field: `${f}.apiGroup`, detail: `Unsupported value: ${JSON.stringify(s.apiGroup ?? '')}: supported values: "${RBAC_GROUP}"` });
      break;
    default:
      out.push({ field: `${f}.kind`, detail: `Unsupported value: ${JSON.stringify(s.kind ?? '')}: supported values: "ServiceAccount", "User", "Group"` });
  }
}

/** The problems of a Role, ClusterRole, RoleBinding or ClusterRoleBinding beyond its labels (validation.ts checks those). */
export function rbacErrors(obj: KubeObject): FieldError[] {
  const out: FieldError[] = [];
  const o = obj as unknown as Obj;
  const nameProblem = pathSegmentProblem(obj.metadata?.name);
  if (nameProblem) out.push({ field: 'metadata.name', detail: nameProblem });
  const namespaced = obj.kind === 'Role' || obj.kind === 'RoleBinding';
  if (obj.kind === 'Role' || obj.kind === 'ClusterRole') {
    if (o.rules !== undefined && !Array.isArray(o.rules)) out.push({ field: 'rules', detail: 'Invalid value: must be a list' });
    else ((o.rules as unknown[] | undefined) ?? []).forEach((r, i) => ruleErrors(out, `rules[${i}]`, r, namespaced));
    if (o.aggregationRule !== undefined && (!isObject(o.aggregationRule) || (o.aggregationRule.clusterRoleSelectors !== undefined && !Array.isArray(o.aggregationRule.clusterRoleSelectors)))) {
      out.push({ field: 'aggregationRule.clusterRoleSelectors', detail: 'Invalid value: must be a list of label selectors' });
    }
    return out;
  }
  const ref = o.roleRef;
  if (!isObject(ref)) out.push({ field: 'roleRef', detail: 'Required value' });
  else {
    if (ref.apiGroup !== RBAC_GROUP) out.push({ field: 'roleRef.apiGroup', detail: `Unsupported value: ${JSON.stringify(ref.apiGroup ?? '')}: supported values: "${RBAC_GROUP}"` });
    const kinds = namespaced ? ['Role', 'ClusterRole'] : ['ClusterRole'];
    if (!kinds.includes(ref.kind as string)) out.push({ field: 'roleRef.kind', detail: `Unsupported value: ${JSON.stringify(ref.kind ?? '')}: supported values: ${kinds.map((k) => `"${k}"`).join(', ')}` });
    if (typeof ref.name !== 'string' || !ref.name) out.push({ field: 'roleRef.name', detail: 'Required value' });
    else {
      const p = pathSegmentProblem(ref.name);
      if (p) out.push({ field: 'roleRef.name', detail: p });
    }
  }
  if (o.subjects !== undefined && !Array.isArray(o.subjects)) out.push({ field: 'subjects', detail: 'Invalid value: must be a list' });
  else ((o.subjects as unknown[] | undefined) ?? []).forEach((s, i) => subjectErrors(out, `subjects[${i}]`, s, namespaced));
  return out;
}

/** On update: a binding's roleRef is fixed (delete and create the binding to change it). */
export function rbacUpdateError(current: KubeObject, next: KubeObject): FieldError | undefined {
  if (next.kind !== 'RoleBinding' && next.kind !== 'ClusterRoleBinding') return undefined;
  const a = (current as RoleBinding).roleRef;
  const b = (next as RoleBinding).roleRef;
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  return { field: 'roleRef', detail: `Invalid value: ${JSON.stringify(b)}: cannot change roleRef` };
}

/** SetDefaults_Subject: a User's or Group's apiGroup is RBAC's (a ServiceAccount's is the core group's, "", which JSON leaves out). */
export function defaultBinding(obj: KubeObject): KubeObject {
  const b = obj as RoleBinding;
  if (!Array.isArray(b.subjects)) return obj;
  const subjects = b.subjects.map((s) => {
    if (!isObject(s) || s.apiGroup !== undefined) return s;
    if (s.kind === 'User' || s.kind === 'Group') return { ...s, apiGroup: RBAC_GROUP };
    return s;
  });
  return { ...b, subjects } as KubeObject;
}

/** `kubectl get` columns (pkg/printers/internalversion): a binding's role as Kind/name, and its subjects by kind. */
export function bindingColumns(b: RoleBinding): { role: string; users: string; groups: string; serviceAccounts: string } {
  const of = (kind: string) => (b.subjects ?? []).filter((s) => s.kind === kind);
  return {
    role: `${b.roleRef?.kind ?? ''}/${b.roleRef?.name ?? ''}`,
    users: of('User').map((s) => s.name).join(', '),
    groups: of('Group').map((s) => s.name).join(', '),
    serviceAccounts: of('ServiceAccount').map((s) => `${s.namespace ?? ''}:${s.name}`).join(', '),
  };
}
