// What the API server checks before it stores an object, with Kubernetes' own wording:
// every problem names its field path (spec.containers[0].ports[1].containerPort) and what
// is wrong with it. Pure functions of the object.

import { tryParsePrefix, networkOf, formatPrefix } from '../netaddr/ip.ts';
import { matches } from './labels.ts';
import type { Container, Deployment, KubeObject, LabelSelector, Node, Pod, PodSpec } from './types.ts';

export interface FieldError {
  field: string;
  detail: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function dnsLabelProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value) return 'Required value';
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    return `Invalid value: ${JSON.stringify(value)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters`;
  }
  return undefined;
}

function dnsSubdomainProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value) return 'Required value';
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    return `Invalid value: ${JSON.stringify(value)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

class Errors {
  readonly list: FieldError[] = [];
  add(field: string, detail: string | undefined): void {
    if (detail) this.list.push({ field, detail });
  }
  required(field: string, value: unknown): boolean {
    if (value === undefined || value === null || value === '') {
      this.add(field, 'Required value');
      return false;
    }
    return true;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkLabels(e: Errors, field: string, labels: unknown): void {
  if (labels === undefined) return;
  if (!isObject(labels)) return e.add(field, 'Invalid value: must be a map of strings');
  for (const [k, v] of Object.entries(labels)) {
    const name = k.includes('/') ? k.split('/').pop()! : k;
    if (name.length > 63 || !LABEL_NAME.test(name)) e.add(`${field}`, `Invalid value: ${JSON.stringify(k)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
    if (typeof v !== 'string') e.add(`${field}.${k}`, `Invalid value: ${JSON.stringify(v)}: label values are strings (quote it in YAML)`);
    else if (v.length > 63 || !LABEL_VALUE.test(v)) e.add(`${field}.${k}`, `Invalid value: ${JSON.stringify(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  }
}

function checkMeta(e: Errors, obj: KubeObject, nameRule: 'label' | 'subdomain'): void {
  if (!isObject(obj.metadata)) return e.add('metadata', 'Required value');
  e.add('metadata.name', nameRule === 'label' ? dnsLabelProblem(obj.metadata.name) : dnsSubdomainProblem(obj.metadata.name));
  if (obj.metadata.namespace !== undefined) e.add('metadata.namespace', dnsLabelProblem(obj.metadata.namespace));
  checkLabels(e, 'metadata.labels', obj.metadata.labels);
}

function stringArray(e: Errors, field: string, v: unknown): void {
  if (v === undefined) return;
  if (!Array.isArray(v)) return e.add(field, 'Invalid value: must be a list of strings');
  v.forEach((s, i) => {
    if (typeof s !== 'string') e.add(`${field}[${i}]`, `Invalid value: ${JSON.stringify(s)}: must be a string (quote numbers in YAML)`);
  });
}

function checkPort(e: Errors, field: string, v: unknown, required: boolean): void {
  if (v === undefined && !required) return;
  if (v === undefined) return e.add(field, 'Required value');
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) e.add(field, `Invalid value: ${JSON.stringify(v)}: must be between 1 and 65535, inclusive`);
}

function checkContainer(e: Errors, f: string, c: Container, names: Set<string>): void {
  if (!isObject(c)) return e.add(f, 'Invalid value: must be an object');
  if (e.required(`${f}.name`, c.name)) {
    e.add(`${f}.name`, dnsLabelProblem(c.name));
    if (names.has(c.name)) e.add(`${f}.name`, `Duplicate value: ${JSON.stringify(c.name)}`);
    names.add(c.name);
  }
  if (e.required(`${f}.image`, c.image) && typeof c.image !== 'string') e.add(`${f}.image`, 'Invalid value: must be a string');
  stringArray(e, `${f}.command`, c.command);
  stringArray(e, `${f}.args`, c.args);
  if (c.env !== undefined) {
    if (!Array.isArray(c.env)) e.add(`${f}.env`, 'Invalid value: must be a list');
    else c.env.forEach((v, i) => {
      if (!isObject(v) || typeof v.name !== 'string' || !v.name) e.add(`${f}.env[${i}].name`, 'Required value');
      else if (v.value !== undefined && typeof v.value !== 'string') e.add(`${f}.env[${i}].value`, `Invalid value: ${JSON.stringify(v.value)}: must be a string (quote it in YAML)`);
    });
  }
  if (c.ports === undefined) return;
  if (!Array.isArray(c.ports)) return e.add(`${f}.ports`, 'Invalid value: must be a list');
  const seen = new Set<string>();
  c.ports.forEach((p, i) => {
    const pf = `${f}.ports[${i}]`;
    if (!isObject(p)) return e.add(pf, 'Invalid value: must be an object');
    checkPort(e, `${pf}.containerPort`, p.containerPort, true);
    checkPort(e, `${pf}.hostPort`, p.hostPort, false);
    if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) e.add(`${pf}.protocol`, `Unsupported value: ${JSON.stringify(p.protocol)}: supported values: "SCTP", "TCP", "UDP"`);
    if (p.name !== undefined && (typeof p.name !== 'string' || p.name.length > 15 || !PORT_NAME.test(p.name) || !/[a-z]/.test(p.name))) {
      e.add(`${pf}.name`, `Invalid value: ${JSON.stringify(p.name)}: must be no more than 15 characters, contain only lowercase letters, digits and '-', and contain at least one letter`);
    }
    const key = `${p.containerPort}/${p.protocol ?? 'TCP'}`;
    if (seen.has(key)) e.add(`${pf}.containerPort`, `Duplicate value: ${JSON.stringify(key)}`);
    seen.add(key);
  });
}

function checkPodSpec(e: Errors, f: string, spec: PodSpec | undefined): void {
  if (!isObject(spec)) return e.add(f, 'Required value');
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) e.add(`${f}.containers`, 'Required value');
  else {
    const names = new Set<string>();
    spec.containers.forEach((c, i) => checkContainer(e, `${f}.containers[${i}]`, c, names));
  }
  if (spec.nodeName !== undefined) e.add(`${f}.nodeName`, dnsSubdomainProblem(spec.nodeName));
  if (spec.restartPolicy !== undefined && !['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy)) {
    e.add(`${f}.restartPolicy`, `Unsupported value: ${JSON.stringify(spec.restartPolicy)}: supported values: "Always", "OnFailure", "Never"`);
  }
  const grace = spec.terminationGracePeriodSeconds;
  if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) e.add(`${f}.terminationGracePeriodSeconds`, `Invalid value: ${JSON.stringify(grace)}: must be a non-negative integer`);
  if (spec.hostNetwork) e.add(`${f}.hostNetwork`, 'Forbidden: kubewire pods get their own network namespace (hostNetwork is not supported)');
}

function checkPod(e: Errors, pod: Pod): void {
  checkMeta(e, pod, 'subdomain');
  checkPodSpec(e, 'spec', pod.spec);
}

function checkDeployment(e: Errors, d: Deployment): void {
  checkMeta(e, d, 'subdomain');
  if (!isObject(d.spec)) return e.add('spec', 'Required value');
  const r = d.spec.replicas;
  if (r !== undefined && (!Number.isInteger(r) || r < 0)) e.add('spec.replicas', `Invalid value: ${JSON.stringify(r)}: must be greater than or equal to 0`);
  const sel = d.spec.selector as LabelSelector | undefined;
  const selectorGiven = typeof sel === 'object' && sel !== null && (isObject(sel.matchLabels) || Array.isArray(sel.matchExpressions));
  if (!selectorGiven) e.add('spec.selector', 'Required value');
  else {
    checkLabels(e, 'spec.selector.matchLabels', sel.matchLabels);
    if (!Object.keys(sel.matchLabels ?? {}).length && !(sel.matchExpressions ?? []).length) e.add('spec.selector', 'Invalid value: empty selector is invalid for deployment');
  }
  if (!isObject(d.spec.template)) return e.add('spec.template', 'Required value');
  checkLabels(e, 'spec.template.metadata.labels', d.spec.template.metadata?.labels);
  if (selectorGiven && !matches(sel, d.spec.template.metadata?.labels)) e.add('spec.template.metadata.labels', 'Invalid value: `selector` does not match template `labels`');
  checkPodSpec(e, 'spec.template.spec', d.spec.template.spec);
  const rp = d.spec.template.spec?.restartPolicy;
  if (rp !== undefined && rp !== 'Always') e.add('spec.template.spec.restartPolicy', `Unsupported value: ${JSON.stringify(rp)}: supported values: "Always"`);
  const strategy = d.spec.strategy?.type;
  if (strategy !== undefined && strategy !== 'RollingUpdate' && strategy !== 'Recreate') e.add('spec.strategy.type', `Unsupported value: ${JSON.stringify(strategy)}: supported values: "Recreate", "RollingUpdate"`);
}

function checkNode(e: Errors, n: Node): void {
  checkMeta(e, n, 'subdomain');
  const cidrs = [n.spec?.podCIDR, ...(n.spec?.podCIDRs ?? [])].filter((c) => c !== undefined);
  for (const [i, c] of cidrs.entries()) {
    const field = i === 0 && n.spec?.podCIDR !== undefined ? 'spec.podCIDR' : `spec.podCIDRs[${i - (n.spec?.podCIDR !== undefined ? 1 : 0)}]`;
    const p = typeof c === 'string' ? tryParsePrefix(c) : undefined;
    if (!p) e.add(field, `Invalid value: ${JSON.stringify(c)}: must be a CIDR such as 10.244.1.0/24`);
    else if (networkOf(p).ip.value !== p.ip.value) e.add(field, `Invalid value: ${JSON.stringify(c)}: has host bits set (did you mean ${formatPrefix(networkOf(p))}?)`);
  }
}

/** Problems with an object of a known kind; empty when it may be stored. */
export function validate(obj: KubeObject): FieldError[] {
  const e = new Errors();
  switch (obj.kind) {
    case 'Pod': checkPod(e, obj as Pod); break;
    case 'Deployment': checkDeployment(e, obj as Deployment); break;
    case 'Node': checkNode(e, obj as Node); break;
    case 'Namespace': checkMeta(e, obj, 'label'); break;
  }
  return e.list;
}

export function formatErrors(kind: string, name: unknown, errors: FieldError[]): string {
  const label = typeof name === 'string' && name ? `${kind} ${JSON.stringify(name)}` : kind;
  return `${label} is invalid: ${errors.map((x) => `${x.field}: ${x.detail}`).join(', ')}`;
}
