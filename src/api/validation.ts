// What the API server checks before it stores an object, with Kubernetes' own wording:
// every problem names its field path (spec.containers[0].ports[1].containerPort) and what
// is wrong with it. Pure functions of the object.

import { formatPrefix, networkOf, tryParseIP, tryParsePrefix } from '../netaddr/ip.ts';
import { matches } from './labels.ts';
import { qualifiedKind } from './resources.ts';
import { networkPolicySpecErrors } from './networkpolicy-validation.ts';
import { rbacErrors } from './rbac.ts';
import type { ConfigMap, Container, DaemonSet, Job, PodDNSConfig, Probe, SecurityContext, StatefulSet, Deployment, ReplicaSet, EndpointSlice, Ingress, IngressBackend, IngressClass, KubeObject, LabelSelector, Node, Pod, PodSpec, Secret, Service } from './types.ts';

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

/** The items of an optional list field; anything but a list (or nothing) is a problem, and no items. */
function listOf(e: Errors, field: string, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  e.add(field, `Invalid value: ${JSON.stringify(v)?.slice(0, 40)}: must be a list`);
  return [];
}

/** An int or a percentage string ("25%"), as maxSurge and maxUnavailable are. */
function intOrPercent(v: unknown): boolean {
  return (Number.isInteger(v) && (v as number) >= 0) || (typeof v === 'string' && /^\d{1,3}%$/.test(v));
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
      else if (v.valueFrom !== undefined) checkValueFrom(e, `${f}.env[${i}].valueFrom`, v.valueFrom, v.value);
    });
  }
  listOf(e, `${f}.envFrom`, c.envFrom).forEach((src, i) => {
    const sf = `${f}.envFrom[${i}]`;
    if (!isObject(src)) return e.add(sf, 'Invalid value: must be an object');
    const refs = ['configMapRef', 'secretRef'].filter((k) => src[k] !== undefined);
    if (refs.length !== 1) return e.add(sf, 'Invalid value: must specify one of: `configMapRef` or `secretRef`');
    const r = src[refs[0]!];
    if (!isObject(r)) return e.add(`${sf}.${refs[0]}`, 'Invalid value: must be an object');
    e.add(`${sf}.${refs[0]}.name`, dnsSubdomainProblem(r.name));
  });
  for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) if (c[kind] !== undefined) checkProbe(e, `${f}.${kind}`, c[kind], kind !== 'readinessProbe', c);
  if (c.securityContext !== undefined) checkSecurityContext(e, `${f}.securityContext`, c.securityContext);
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

function checkValueFrom(e: Errors, f: string, from: unknown, value: unknown): void {
  if (!isObject(from)) return e.add(f, 'Invalid value: must be an object');
  if (value !== undefined && value !== '') e.add(f, 'Invalid value: "": may not be specified when `value` is not empty');
  const sources = ['configMapKeyRef', 'secretKeyRef', 'fieldRef', 'resourceFieldRef'].filter((k) => from[k] !== undefined);
  if (sources.length !== 1) return e.add(f, 'Invalid value: must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`');
  const k = sources[0]!;
  const ref = from[k];
  if (!isObject(ref)) return e.add(`${f}.${k}`, 'Invalid value: must be an object');
  if (k === 'configMapKeyRef' || k === 'secretKeyRef') {
    e.add(`${f}.${k}.name`, dnsSubdomainProblem(ref.name));
    if (typeof ref.key !== 'string' || !ref.key) e.add(`${f}.${k}.key`, 'Required value');
  }
  if (k === 'fieldRef' && (typeof ref.fieldPath !== 'string' || !ref.fieldPath)) e.add(`${f}.${k}.fieldPath`, 'Required value');
}

const NAMED_PORT = (v: unknown) => typeof v === 'string' && v.length <= 15 && PORT_NAME.test(v) && /[a-z]/.test(v);

/** A probe as the API server checks it: one handler, sane timing; liveness and startup succeed once (successThreshold 1). */
function checkProbe(e: Errors, f: string, p: Probe, mustSucceedOnce: boolean, c: Container): void {
  if (!isObject(p)) return e.add(f, 'Invalid value: must be an object');
  const handlers = (['exec', 'httpGet', 'tcpSocket', 'grpc'] as const).filter((h) => p[h] !== undefined);
  if (!handlers.length) e.add(f, 'Required value: must specify a handler type');
  if (handlers.length > 1) e.add(f, `Forbidden: may not specify more than 1 handler type (${handlers.join(', ')})`);
  const port = (pf: string, v: unknown) => {
    if (typeof v === 'number') return checkPort(e, pf, v, true);
    if (!NAMED_PORT(v)) return e.add(pf, v === undefined ? 'Required value' : `Invalid value: ${JSON.stringify(v)}: must be a port number or a port name`);
    if (!(Array.isArray(c.ports) ? c.ports : []).some((x) => isObject(x) && x.name === v)) e.add(pf, `Invalid value: ${JSON.stringify(v)}: no container port has this name`);
  };
  if (isObject(p.httpGet)) {
    port(`${f}.httpGet.port`, p.httpGet.port);
    if (p.httpGet.scheme !== undefined && !['HTTP', 'HTTPS'].includes(p.httpGet.scheme as string)) e.add(`${f}.httpGet.scheme`, `Unsupported value: ${JSON.stringify(p.httpGet.scheme)}: supported values: "HTTP", "HTTPS"`);
    if (p.httpGet.path !== undefined && (typeof p.httpGet.path !== 'string' || (p.httpGet.path && !p.httpGet.path.startsWith('/')))) e.add(`${f}.httpGet.path`, `Invalid value: ${JSON.stringify(p.httpGet.path)}: must be an absolute path`);
    listOf(e, `${f}.httpGet.httpHeaders`, p.httpGet.httpHeaders).forEach((h, i) => {
      if (!isObject(h) || typeof h.name !== 'string' || !/^[-A-Za-z0-9!#$%&'*+.^_`|~]+$/.test(h.name)) e.add(`${f}.httpGet.httpHeaders[${i}].name`, 'Invalid value: must be an HTTP header name');
      else if (typeof h.value !== 'string') e.add(`${f}.httpGet.httpHeaders[${i}].value`, 'Invalid value: must be a string');
    });
  } else if (p.httpGet !== undefined) e.add(`${f}.httpGet`, 'Invalid value: must be an object');
  if (isObject(p.tcpSocket)) port(`${f}.tcpSocket.port`, p.tcpSocket.port);
  else if (p.tcpSocket !== undefined) e.add(`${f}.tcpSocket`, 'Invalid value: must be an object');
  if (isObject(p.grpc)) checkPort(e, `${f}.grpc.port`, p.grpc.port, true);
  else if (p.grpc !== undefined) e.add(`${f}.grpc`, 'Invalid value: must be an object');
  if (isObject(p.exec)) {
    if (!Array.isArray(p.exec.command) || !p.exec.command.length) e.add(`${f}.exec.command`, 'Required value');
    else stringArray(e, `${f}.exec.command`, p.exec.command);
  } else if (p.exec !== undefined) e.add(`${f}.exec`, 'Invalid value: must be an object');
  for (const [k, min] of [['initialDelaySeconds', 0], ['periodSeconds', 1], ['timeoutSeconds', 1], ['successThreshold', 1], ['failureThreshold', 1]] as const) {
    const v = p[k];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < min)) e.add(`${f}.${k}`, `Invalid value: ${JSON.stringify(v)}: must be ${min === 0 ? 'greater than or equal to 0' : 'greater than or equal to 1'}`);
  }
  if (mustSucceedOnce && p.successThreshold !== undefined && p.successThreshold !== 1) e.add(`${f}.successThreshold`, `Invalid value: ${JSON.stringify(p.successThreshold)}: must be 1`);
}

function checkSecurityContext(e: Errors, f: string, sc: SecurityContext): void {
  if (!isObject(sc)) return e.add(f, 'Invalid value: must be an object');
  for (const k of ['runAsUser', 'runAsGroup'] as const) {
    const v = sc[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 2147483647)) e.add(`${f}.${k}`, `Invalid value: ${JSON.stringify(v)}: must be between 0 and 2147483647, inclusive`);
  }
  if (sc.runAsNonRoot === true && sc.runAsUser === 0) e.add(`${f}.runAsNonRoot`, 'Invalid value: true: runAsUser is 0: the container would run as root');
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
  if (spec.securityContext !== undefined) checkSecurityContext(e, `${f}.securityContext`, spec.securityContext);
  if (spec.nodeSelector !== undefined) checkLabels(e, `${f}.nodeSelector`, spec.nodeSelector);
  checkPodDns(e, f, spec);
}

/** hostname, subdomain, dnsPolicy, dnsConfig and hostAliases, as the API server checks them. */
function checkPodDns(e: Errors, f: string, spec: PodSpec): void {
  if (spec.hostname !== undefined) e.add(`${f}.hostname`, dnsLabelProblem(spec.hostname));
  if (spec.subdomain !== undefined) e.add(`${f}.subdomain`, dnsLabelProblem(spec.subdomain));
  const policies = ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'];
  if (spec.dnsPolicy !== undefined && !policies.includes(spec.dnsPolicy)) e.add(`${f}.dnsPolicy`, `Unsupported value: ${JSON.stringify(spec.dnsPolicy)}: supported values: ${policies.map((p) => `"${p}"`).join(', ')}`);
  if (spec.dnsConfig !== undefined && !isObject(spec.dnsConfig)) return e.add(`${f}.dnsConfig`, 'Invalid value: must be an object');
  const cfg = spec.dnsConfig as PodDNSConfig | undefined;
  if (spec.dnsPolicy === 'None' && !cfg?.nameservers?.length) e.add(`${f}.dnsConfig.nameservers`, 'Required value: must provide at least one DNS nameserver when DNS policy is None');
  const servers = cfg?.nameservers ?? [];
  if (!Array.isArray(servers)) e.add(`${f}.dnsConfig.nameservers`, 'Invalid value: must be a list');
  else {
    if (servers.length > 3) e.add(`${f}.dnsConfig.nameservers`, `Invalid value: ${JSON.stringify(servers)}: must not have more than 3 nameservers`);
    servers.forEach((s, i) => {
      if (typeof s !== 'string' || !tryParseIP(s)) e.add(`${f}.dnsConfig.nameservers[${i}]`, `Invalid value: ${JSON.stringify(s)}: must be a valid IP address`);
    });
  }
  const searches = cfg?.searches ?? [];
  if (!Array.isArray(searches)) e.add(`${f}.dnsConfig.searches`, 'Invalid value: must be a list');
  else {
    if (searches.length > 32) e.add(`${f}.dnsConfig.searches`, `Invalid value: must not have more than 32 search paths`);
    searches.forEach((s, i) => e.add(`${f}.dnsConfig.searches[${i}]`, dnsSubdomainProblem(typeof s === 'string' ? s.replace(/\.$/, '') : s)));
  }
  (Array.isArray(cfg?.options) ? cfg.options : []).forEach((o, i) => {
    if (!isObject(o) || typeof o.name !== 'string' || !o.name) e.add(`${f}.dnsConfig.options[${i}].name`, 'Required value');
  });
  (spec.hostAliases ?? []).forEach((a, i) => {
    if (!isObject(a) || typeof a.ip !== 'string' || !tryParseIP(a.ip)) e.add(`${f}.hostAliases[${i}].ip`, `Invalid value: ${JSON.stringify(isObject(a) ? a.ip : a)}: must be a valid IP address`);
    else (a.hostnames ?? []).forEach((h, j) => e.add(`${f}.hostAliases[${i}].hostnames[${j}]`, dnsSubdomainProblem(h)));
  });
}

function checkPod(e: Errors, pod: Pod): void {
  checkMeta(e, pod, 'subdomain');
  checkPodSpec(e, 'spec', pod.spec);
}

/** A controller's selector and pod template, checked as the API server does; `what` names the kind in messages. */
function checkSelectorAndTemplate(e: Errors, spec: { selector?: unknown; template?: unknown }, what: string, restartPolicies: string[], selectorRequired = true): void {
  const sel = spec.selector as LabelSelector | undefined;
  const before = e.list.length; // selector and labels are matched only once their shapes are sound
  const selectorGiven = isObject(sel) && (isObject(sel.matchLabels) || Array.isArray(sel.matchExpressions));
  if (!selectorGiven) {
    if (selectorRequired || sel !== undefined) e.add('spec.selector', 'Required value');
  } else {
    checkLabels(e, 'spec.selector.matchLabels', sel.matchLabels);
    if (sel.matchLabels !== undefined && !isObject(sel.matchLabels)) e.add('spec.selector.matchLabels', 'Invalid value: must be a map of strings');
    listOf(e, 'spec.selector.matchExpressions', sel.matchExpressions).forEach((x, i) => {
      const f = `spec.selector.matchExpressions[${i}]`;
      if (!isObject(x) || typeof x.key !== 'string' || !['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(x.operator as string)) return e.add(f, 'Invalid value: must have a key and an operator (In, NotIn, Exists, DoesNotExist)');
      if (x.values !== undefined && (!Array.isArray(x.values) || x.values.some((v) => typeof v !== 'string'))) e.add(`${f}.values`, 'Invalid value: must be a list of strings');
    });
    if (!Object.keys(isObject(sel.matchLabels) ? sel.matchLabels : {}).length && !(Array.isArray(sel.matchExpressions) ? sel.matchExpressions : []).length) e.add('spec.selector', `Invalid value: empty selector is invalid for ${what}`);
  }
  const template = spec.template as { metadata?: unknown; spec?: PodSpec } | undefined;
  if (!isObject(template)) return e.add('spec.template', 'Required value');
  if (template.metadata !== undefined && !isObject(template.metadata)) return e.add('spec.template.metadata', 'Invalid value: must be an object');
  const labels = (template.metadata as { labels?: Record<string, string> } | undefined)?.labels;
  checkLabels(e, 'spec.template.metadata.labels', labels);
  if (selectorGiven && e.list.length === before && !matches(sel, labels)) e.add('spec.template.metadata.labels', 'Invalid value: `selector` does not match template `labels`');
  checkPodSpec(e, 'spec.template.spec', template.spec);
  const rp = template.spec?.restartPolicy;
  if (isObject(template.spec) && (rp !== undefined || restartPolicies[0] !== 'Always') && !restartPolicies.includes(rp as string)) {
    e.add('spec.template.spec.restartPolicy', rp === undefined ? `Required value: valid values: ${restartPolicies.map((p) => `"${p}"`).join(', ')}` : `Unsupported value: ${JSON.stringify(rp)}: supported values: ${restartPolicies.map((p) => `"${p}"`).join(', ')}`);
  }
}

function nonNegative(e: Errors, f: string, v: unknown): void {
  if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) e.add(f, `Invalid value: ${JSON.stringify(v)}: must be greater than or equal to 0`);
}

function checkDeployment(e: Errors, d: Deployment): void {
  checkMeta(e, d, 'subdomain');
  if (!isObject(d.spec)) return e.add('spec', 'Required value');
  nonNegative(e, 'spec.replicas', d.spec.replicas);
  checkSelectorAndTemplate(e, d.spec, 'deployment', ['Always']);
  if (!isObject(d.spec.template)) return;
  if (d.spec.strategy !== undefined && !isObject(d.spec.strategy)) return e.add('spec.strategy', 'Invalid value: must be an object');
  const strategy = d.spec.strategy?.type;
  if (strategy !== undefined && strategy !== 'RollingUpdate' && strategy !== 'Recreate') e.add('spec.strategy.type', `Unsupported value: ${JSON.stringify(strategy)}: supported values: "Recreate", "RollingUpdate"`);
  const ru = d.spec.strategy?.rollingUpdate;
  if (ru !== undefined && !isObject(ru)) e.add('spec.strategy.rollingUpdate', 'Invalid value: must be an object');
  else for (const k of ['maxSurge', 'maxUnavailable'] as const) {
    if (ru?.[k] !== undefined && !intOrPercent(ru[k])) e.add(`spec.strategy.rollingUpdate.${k}`, `Invalid value: ${JSON.stringify(ru[k])}: must be a non-negative integer or a percentage ("25%")`);
  }
}

function checkReplicaSet(e: Errors, rs: ReplicaSet): void {
  checkMeta(e, rs, 'subdomain');
  if (!isObject(rs.spec)) return e.add('spec', 'Required value');
  nonNegative(e, 'spec.replicas', rs.spec.replicas);
  checkSelectorAndTemplate(e, rs.spec, 'replicaset', ['Always']);
}

function checkUpdateStrategy(e: Errors, s: unknown): void {
  if (s === undefined) return;
  if (!isObject(s)) return e.add('spec.updateStrategy', 'Invalid value: must be an object');
  if (s.type !== undefined && s.type !== 'RollingUpdate' && s.type !== 'OnDelete') e.add('spec.updateStrategy.type', `Unsupported value: ${JSON.stringify(s.type)}: supported values: "OnDelete", "RollingUpdate"`);
}

function checkStatefulSet(e: Errors, s: StatefulSet): void {
  // A DNS label: its pods' names are their hostnames.
  checkMeta(e, s, 'label');
  if (!isObject(s.spec)) return e.add('spec', 'Required value');
  nonNegative(e, 'spec.replicas', s.spec.replicas);
  // Its pods' controller-revision-hash label is the name and a hash of 10: at most 63 characters.
  if (typeof s.metadata?.name === 'string' && s.metadata.name.length > 52 && DNS_LABEL.test(s.metadata.name)) e.add('metadata.name', `Invalid value: ${JSON.stringify(s.metadata.name)}: must be no more than 52 characters (its pods' revision label adds a hash)`);
  if (s.spec.serviceName === undefined || s.spec.serviceName === '') e.add('spec.serviceName', 'Required value');
  else e.add('spec.serviceName', dnsLabelProblem(s.spec.serviceName));
  const policy = s.spec.podManagementPolicy;
  if (policy !== undefined && policy !== 'OrderedReady' && policy !== 'Parallel') e.add('spec.podManagementPolicy', `Unsupported value: ${JSON.stringify(policy)}: supported values: "OrderedReady", "Parallel"`);
  checkUpdateStrategy(e, s.spec.updateStrategy);
  checkSelectorAndTemplate(e, s.spec, 'statefulset', ['Always']);
}

function checkDaemonSet(e: Errors, d: DaemonSet): void {
  checkMeta(e, d, 'subdomain');
  if (!isObject(d.spec)) return e.add('spec', 'Required value');
  checkUpdateStrategy(e, d.spec.updateStrategy);
  checkSelectorAndTemplate(e, d.spec, 'daemonset', ['Always']);
}

function checkJob(e: Errors, j: Job): void {
  checkMeta(e, j, 'subdomain');
  if (!isObject(j.spec)) return e.add('spec', 'Required value');
  nonNegative(e, 'spec.completions', j.spec.completions);
  nonNegative(e, 'spec.parallelism', j.spec.parallelism);
  nonNegative(e, 'spec.backoffLimit', j.spec.backoffLimit);
  checkSelectorAndTemplate(e, j.spec, 'job', ['OnFailure', 'Never'], false);
}

function checkConfigMap(e: Errors, cm: ConfigMap): void {
  checkMeta(e, cm, 'subdomain');
  const data = cm.data ?? {};
  const binary = cm.binaryData ?? {};
  if (!isObject(data)) return e.add('data', 'Invalid value: must be a map of strings');
  if (!isObject(binary)) return e.add('binaryData', 'Invalid value: must be a map of base64 strings');
  for (const [k, v] of Object.entries(data)) {
    if (!SECRET_KEY.test(k) || k.length > 253) e.add(`data[${k}]`, `Invalid value: ${JSON.stringify(k)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
    if (typeof v !== 'string') e.add(`data[${k}]`, `Invalid value: ${JSON.stringify(v)}: must be a string (quote it in YAML)`);
  }
  for (const [k, v] of Object.entries(binary)) {
    if (!SECRET_KEY.test(k) || k.length > 253) e.add(`binaryData[${k}]`, `Invalid value: ${JSON.stringify(k)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s/g, ''))) e.add(`binaryData[${k}]`, 'Invalid value: must be base64');
    if (k in data) e.add(`data[${k}]`, `Invalid value: ${JSON.stringify(k)}: duplicate of key present in binaryData`);
  }
  if (cm.immutable !== undefined && typeof cm.immutable !== 'boolean') e.add('immutable', `Invalid value: ${JSON.stringify(cm.immutable)}: must be true or false`);
}

function checkNode(e: Errors, n: Node): void {
  checkMeta(e, n, 'subdomain');
  if (n.spec !== undefined && !isObject(n.spec)) return e.add('spec', 'Invalid value: must be an object');
  const cidrs = [n.spec?.podCIDR, ...listOf(e, 'spec.podCIDRs', n.spec?.podCIDRs)].filter((c) => c !== undefined);
  for (const [i, c] of cidrs.entries()) {
    const field = i === 0 && n.spec?.podCIDR !== undefined ? 'spec.podCIDR' : `spec.podCIDRs[${i - (n.spec?.podCIDR !== undefined ? 1 : 0)}]`;
    const p = typeof c === 'string' ? tryParsePrefix(c) : undefined;
    if (!p) e.add(field, `Invalid value: ${JSON.stringify(c)}: must be a CIDR such as 10.244.1.0/24`);
    else if (networkOf(p).ip.value !== p.ip.value) e.add(field, `Invalid value: ${JSON.stringify(c)}: has host bits set (did you mean ${formatPrefix(networkOf(p))}?)`);
  }
}

function isIP(v: unknown): boolean {
  return typeof v === 'string' && tryParseIP(v) !== undefined;
}

function checkService(e: Errors, svc: Service): void {
  checkMeta(e, svc, 'label');
  const spec = svc.spec;
  if (!isObject(spec)) return e.add('spec', 'Required value');
  const type = spec.type ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type)) e.add('spec.type', `Unsupported value: ${JSON.stringify(type)}: supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`);
  if (type === 'ExternalName') {
    e.add('spec.externalName', dnsSubdomainProblem(spec.externalName));
    return;
  }
  if (spec.clusterIP !== undefined && spec.clusterIP !== '' && spec.clusterIP !== 'None' && !isIP(spec.clusterIP)) e.add('spec.clusterIP', `Invalid value: ${JSON.stringify(spec.clusterIP)}: must be a valid IP address (or "None" for a headless Service)`);
  if (spec.clusterIP === 'None' && type !== 'ClusterIP') e.add('spec.clusterIP', `Invalid value: "None": may not be set to 'None' for ${type} services`);
  if (spec.selector !== undefined) checkLabels(e, 'spec.selector', spec.selector);
  listOf(e, 'spec.externalIPs', spec.externalIPs).forEach((ip, i) => {
    if (!isIP(ip)) e.add(`spec.externalIPs[${i}]`, `Invalid value: ${JSON.stringify(ip)}: must be a valid IP address`);
  });
  if (spec.sessionAffinity !== undefined && !['None', 'ClientIP'].includes(spec.sessionAffinity)) e.add('spec.sessionAffinity', `Unsupported value: ${JSON.stringify(spec.sessionAffinity)}: supported values: "ClientIP", "None"`);
  const timeout = isObject(spec.sessionAffinityConfig) && isObject(spec.sessionAffinityConfig.clientIP) ? spec.sessionAffinityConfig.clientIP.timeoutSeconds : undefined;
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 86400)) e.add('spec.sessionAffinityConfig.clientIP.timeoutSeconds', `Invalid value: ${JSON.stringify(timeout)}: must be greater than 0 and less than 86400`);
  for (const f of ['externalTrafficPolicy', 'internalTrafficPolicy'] as const) {
    if (spec[f] !== undefined && !['Cluster', 'Local'].includes(spec[f]!)) e.add(`spec.${f}`, `Unsupported value: ${JSON.stringify(spec[f])}: supported values: "Cluster", "Local"`);
  }
  if (spec.externalTrafficPolicy !== undefined && type === 'ClusterIP') e.add('spec.externalTrafficPolicy', 'Invalid value: may only be set for NodePort and LoadBalancer services');
  const ports = spec.ports ?? [];
  if (!Array.isArray(ports)) return e.add('spec.ports', 'Invalid value: must be a list');
  if (!ports.length && spec.clusterIP !== 'None') e.add('spec.ports', 'Required value');
  const names = new Set<string>();
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!isObject(p)) return e.add(f, 'Invalid value: must be an object');
    if (ports.length > 1 && !p.name) e.add(`${f}.name`, 'Required value');
    if (p.name !== undefined) {
      e.add(`${f}.name`, dnsLabelProblem(p.name));
      if (names.has(p.name)) e.add(`${f}.name`, `Duplicate value: ${JSON.stringify(p.name)}`);
      names.add(p.name);
    }
    checkPort(e, `${f}.port`, p.port, true);
    if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) e.add(`${f}.protocol`, `Unsupported value: ${JSON.stringify(p.protocol)}: supported values: "SCTP", "TCP", "UDP"`);
    const key = `${p.port}/${p.protocol ?? 'TCP'}`;
    if (seen.has(key)) e.add(f, `Duplicate value: ${JSON.stringify(key)}`);
    seen.add(key);
    const tp = p.targetPort;
    if (typeof tp === 'number') checkPort(e, `${f}.targetPort`, tp, true);
    else if (tp !== undefined && (typeof tp !== 'string' || tp.length > 15 || !PORT_NAME.test(tp) || !/[a-z]/.test(tp))) e.add(`${f}.targetPort`, `Invalid value: ${JSON.stringify(tp)}: must be a port number or a port name (at most 15 lowercase letters, digits and '-')`);
    if (p.nodePort !== undefined) {
      if (type === 'ClusterIP') e.add(`${f}.nodePort`, 'Forbidden: may not be used when `type` is \'ClusterIP\'');
      else checkPort(e, `${f}.nodePort`, p.nodePort, true);
    }
  });
}

function checkEndpointSlice(e: Errors, es: EndpointSlice): void {
  checkMeta(e, es, 'subdomain');
  if (!['IPv4', 'IPv6', 'FQDN'].includes(es.addressType)) e.add('addressType', `Unsupported value: ${JSON.stringify(es.addressType)}: supported values: "FQDN", "IPv4", "IPv6"`);
  if (!Array.isArray(es.endpoints)) return e.add('endpoints', 'Required value');
  if (es.endpoints.length > 1000) e.add('endpoints', `Too many: ${es.endpoints.length}: must have at most 1000 items`);
  es.endpoints.forEach((ep, i) => {
    if (!isObject(ep)) return e.add(`endpoints[${i}]`, 'Invalid value: must be an object');
    if (!Array.isArray(ep.addresses) || ep.addresses.length !== 1) e.add(`endpoints[${i}].addresses`, 'Invalid value: must contain exactly one address');
    else if (es.addressType !== 'FQDN' && !isIP(ep.addresses[0])) e.add(`endpoints[${i}].addresses[0]`, `Invalid value: ${JSON.stringify(ep.addresses[0])}: must be a valid IP address`);
    if (ep.conditions !== undefined && !isObject(ep.conditions)) e.add(`endpoints[${i}].conditions`, 'Invalid value: must be an object');
    else for (const [k, v] of Object.entries(ep.conditions ?? {})) if (v !== null && typeof v !== 'boolean') e.add(`endpoints[${i}].conditions.${k}`, `Invalid value: ${JSON.stringify(v)}: must be true or false`);
    if (ep.nodeName !== undefined) e.add(`endpoints[${i}].nodeName`, dnsSubdomainProblem(ep.nodeName));
  });
  listOf(e, 'ports', es.ports).forEach((p, i) => {
    if (!isObject(p)) return e.add(`ports[${i}]`, 'Invalid value: must be an object');
    checkPort(e, `ports[${i}].port`, p.port, false);
    if (p.name !== undefined && typeof p.name !== 'string') e.add(`ports[${i}].name`, 'Invalid value: must be a string');
    if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) e.add(`ports[${i}].protocol`, `Unsupported value: ${JSON.stringify(p.protocol)}: supported values: "SCTP", "TCP", "UDP"`);
  });
}

/** A rule or TLS host: a DNS name, or `*.` and one: never an IP, never a port. */
function hostProblem(host: unknown): string | undefined {
  if (typeof host !== 'string') return `Invalid value: ${JSON.stringify(host)}: must be a string`;
  if (isIP(host)) return `Invalid value: ${JSON.stringify(host)}: must be a DNS name, not an IP address`;
  if (host.startsWith('*.')) {
    const rest = dnsSubdomainProblem(host.slice(2));
    return rest && `Invalid value: ${JSON.stringify(host)}: a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character`;
  }
  return dnsSubdomainProblem(host);
}

/** Upstream's path rules: Exact and Prefix paths are clean absolute paths; ImplementationSpecific only absolute. */
export function ingressPathProblem(path: unknown, pathType: unknown): string | undefined {
  if (pathType === undefined || pathType === '') return 'pathType: Required value: pathType must be specified';
  if (!['Exact', 'Prefix', 'ImplementationSpecific'].includes(pathType as string)) return `pathType: Unsupported value: ${JSON.stringify(pathType)}: supported values: "Exact", "ImplementationSpecific", "Prefix"`;
  if (pathType === 'ImplementationSpecific') {
    return path !== undefined && path !== '' && !(typeof path === 'string' && path.startsWith('/')) ? `path: Invalid value: ${JSON.stringify(path)}: must be an absolute path` : undefined;
  }
  if (typeof path !== 'string' || !path.startsWith('/')) return `path: Invalid value: ${JSON.stringify(path ?? '')}: must be an absolute path`;
  for (const bad of ['//', '/./', '/../', '%2f', '%2F']) if (path.includes(bad)) return `path: Invalid value: ${JSON.stringify(path)}: must not contain '${bad}'`;
  for (const bad of ['/..', '/.']) if (path.endsWith(bad)) return `path: Invalid value: ${JSON.stringify(path)}: cannot end with '${bad}'`;
  return undefined;
}

function checkIngressBackend(e: Errors, f: string, b: IngressBackend | undefined): void {
  if (!isObject(b)) return e.add(f, 'Required value');
  if (b.service && b.resource) return e.add(f, 'Invalid value: cannot set both resource and service backends');
  if (b.resource) return;
  if (!isObject(b.service)) return e.add(f, 'Invalid value: one backend (service or resource) must be specified');
  e.add(`${f}.service.name`, dnsLabelProblem(b.service.name));
  const port = b.service.port;
  if (!isObject(port)) return e.add(`${f}.service.port`, 'Required value');
  if ((port.name === undefined) === (port.number === undefined)) return e.add(`${f}.service.port`, 'Invalid value: exactly one of name or number must be set');
  if (port.number !== undefined) checkPort(e, `${f}.service.port.number`, port.number, true);
  else if (typeof port.name !== 'string' || port.name.length > 15 || !PORT_NAME.test(port.name) || !/[a-z]/.test(port.name)) e.add(`${f}.service.port.name`, `Invalid value: ${JSON.stringify(port.name)}: must be a port name (at most 15 lowercase letters, digits and '-')`);
}

export const INGRESS_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

function checkIngress(e: Errors, ing: Ingress): void {
  checkMeta(e, ing, 'subdomain');
  const spec = ing.spec;
  if (!isObject(spec)) return e.add('spec', 'Required value');
  if (spec.ingressClassName !== undefined) e.add('spec.ingressClassName', dnsSubdomainProblem(spec.ingressClassName));
  const annotated = ing.metadata.annotations?.[INGRESS_CLASS_ANNOTATION];
  if (annotated !== undefined && spec.ingressClassName !== undefined && annotated !== spec.ingressClassName) {
    e.add(`metadata.annotations.${INGRESS_CLASS_ANNOTATION}`, `Invalid value: ${JSON.stringify(annotated)}: must match \`ingressClassName\` when both are specified`);
  }
  const rules = spec.rules ?? [];
  if (!Array.isArray(rules)) return e.add('spec.rules', 'Invalid value: must be a list');
  if (!rules.length && !spec.defaultBackend) e.add('spec', 'Invalid value: either `defaultBackend` or `rules` must be specified');
  if (spec.defaultBackend !== undefined) checkIngressBackend(e, 'spec.defaultBackend', spec.defaultBackend);
  rules.forEach((r, i) => {
    const f = `spec.rules[${i}]`;
    if (!isObject(r)) return e.add(f, 'Invalid value: must be an object');
    if (r.host !== undefined && r.host !== '') e.add(`${f}.host`, hostProblem(r.host));
    if (r.http === undefined) return;
    const paths = (r.http as { paths?: unknown } | undefined)?.paths;
    if (!Array.isArray(paths) || !paths.length) return e.add(`${f}.http.paths`, 'Required value');
    paths.forEach((p, j) => {
      const pf = `${f}.http.paths[${j}]`;
      if (!isObject(p)) return e.add(pf, 'Invalid value: must be an object');
      const problem = ingressPathProblem(p.path, p.pathType);
      if (problem) {
        const [field, ...detail] = problem.split(': ');
        e.add(`${pf}.${field}`, detail.join(': '));
      }
      checkIngressBackend(e, `${pf}.backend`, p.backend as IngressBackend | undefined);
    });
  });
  const tls = spec.tls ?? [];
  if (!Array.isArray(tls)) return e.add('spec.tls', 'Invalid value: must be a list');
  tls.forEach((t, i) => {
    if (!isObject(t)) return e.add(`spec.tls[${i}]`, 'Invalid value: must be an object');
    listOf(e, `spec.tls[${i}].hosts`, t.hosts).forEach((h, j) => e.add(`spec.tls[${i}].hosts[${j}]`, hostProblem(h)));
    if (t.secretName !== undefined && t.secretName !== '') e.add(`spec.tls[${i}].secretName`, dnsSubdomainProblem(t.secretName));
  });
}

function checkIngressClass(e: Errors, ic: IngressClass): void {
  checkMeta(e, ic, 'subdomain');
  const controller = ic.spec?.controller;
  if (!controller) return e.add('spec.controller', 'Required value');
  if (typeof controller !== 'string' || controller.length > 250 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/\S+$/.test(controller)) {
    e.add('spec.controller', `Invalid value: ${JSON.stringify(controller)}: must be a domain-prefixed path (such as "kubewire.dev/ingress-controller"), at most 250 characters`);
  }
}

const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

function checkSecret(e: Errors, secret: Secret): void {
  checkMeta(e, secret, 'subdomain');
  const data = secret.data ?? {};
  if (!isObject(data)) return e.add('data', 'Invalid value: must be a map of strings');
  for (const [k, v] of Object.entries(data)) {
    if (!SECRET_KEY.test(k)) e.add(`data[${k}]`, `Invalid value: ${JSON.stringify(k)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s/g, ''))) e.add(`data[${k}]`, 'Invalid value: must be base64 (use stringData for plain text)');
  }
  if (secret.type === 'kubernetes.io/tls') {
    for (const k of ['tls.crt', 'tls.key']) if (data[k] === undefined) e.add(`data[${k}]`, 'Required value');
  }
}

/** Problems with an object of a known kind; empty when it may be stored. */
export function validate(obj: KubeObject): FieldError[] {
  const e = new Errors();
  switch (obj.kind) {
    case 'Pod': checkPod(e, obj as Pod); break;
    case 'Deployment': checkDeployment(e, obj as Deployment); break;
    case 'ReplicaSet': checkReplicaSet(e, obj as ReplicaSet); break;
    case 'Node': checkNode(e, obj as Node); break;
    case 'Namespace': checkMeta(e, obj, 'label'); break;
    case 'Service': checkService(e, obj as Service); break;
    case 'EndpointSlice': checkEndpointSlice(e, obj as EndpointSlice); break;
    case 'Ingress': checkIngress(e, obj as Ingress); break;
    case 'IngressClass': checkIngressClass(e, obj as IngressClass); break;
    case 'NetworkPolicy': checkMeta(e, obj, 'subdomain'); e.list.push(...networkPolicySpecErrors(obj.spec)); break;
    case 'Secret': checkSecret(e, obj as Secret); break;
    case 'ConfigMap': checkConfigMap(e, obj as ConfigMap); break;
    case 'ServiceAccount': checkMeta(e, obj, 'subdomain'); break;
    case 'Role': case 'ClusterRole': case 'RoleBinding': case 'ClusterRoleBinding':
      e.list.push(...rbacErrors(obj)); // names are path segments (system:node-proxier), not DNS names
      if (obj.metadata?.namespace !== undefined) e.add('metadata.namespace', dnsLabelProblem(obj.metadata.namespace));
      checkLabels(e, 'metadata.labels', obj.metadata?.labels);
      break;
    case 'StatefulSet': checkStatefulSet(e, obj as StatefulSet); break;
    case 'DaemonSet': checkDaemonSet(e, obj as DaemonSet); break;
    case 'Job': checkJob(e, obj as Job); break;
  }
  return e.list;
}

/** The API server's message: one error as it is, several as apimachinery's aggregate "[a, b]". */
export function formatErrors(kind: string, name: unknown, errors: FieldError[]): string {
  const label = typeof name === 'string' && name ? `${qualifiedKind(kind)} ${JSON.stringify(name)}` : qualifiedKind(kind);
  const each = errors.map((x) => `${x.field}: ${x.detail}`);
  return `${label} is invalid: ${each.length === 1 ? each[0] : `[${each.join(', ')}]`}`;
}

/** apimachinery's field.ErrorType names, by the words that open an error's detail. */
const CAUSE_REASONS: Array<[string, string]> = [
  ['Required value', 'FieldValueRequired'],
  ['Invalid value', 'FieldValueInvalid'],
  ['Unsupported value', 'FieldValueNotSupported'],
  ['Duplicate value', 'FieldValueDuplicate'],
  ['Forbidden', 'FieldValueForbidden'],
  ['Too long', 'FieldValueTooLong'],
  ['Too many', 'FieldValueTooMany'],
  ['Not found', 'FieldValueNotFound'],
];

/**
 * A 422 Status's details.causes: kubectl prints "The Pod "x" is invalid: field: detail" from
 * these (one line per cause), and client libraries read the field paths from them.
 */
export function statusCauses(errors: FieldError[]): Array<{ reason: string; message: string; field: string }> {
  return errors.map((x) => ({ reason: CAUSE_REASONS.find(([words]) => x.detail.startsWith(words))?.[1] ?? 'FieldValueInvalid', message: x.detail, field: x.field }));
}
