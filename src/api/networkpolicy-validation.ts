// What the API server checks in a networking.k8s.io/v1 NetworkPolicy's spec, in upstream's
// words and field paths (kubernetes/kubernetes pkg/apis/networking/validation
// ValidateNetworkPolicySpec, and apimachinery's ValidateLabelSelector, IsValidPortName,
// IsValidCIDR as the default, non-strict, feature gates run them). Pure.

import { contains, networkOf, tryParsePrefix } from '../netaddr/ip.ts';

type Obj = Record<string, unknown>;

/** A problem and its field path (validation.ts's FieldError). */
export interface FieldError {
  field: string;
  detail: string;
}

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** How field.Invalid prints a value: strings quoted, numbers bare. */
const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const QUALIFIED_NAME_MSG = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/** validation.IsQualifiedName: `[prefix/]name`, the prefix a DNS subdomain. */
export function qualifiedNameProblems(key: string): string[] {
  const parts = key.split('/');
  if (parts.length > 2) return [`${QUALIFIED_NAME_MSG.replace('name part must consist', 'a qualified name must consist')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  const name = parts.at(-1)!;
  const out: string[] = [];
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (!prefix) out.push('prefix part must be non-empty');
    else if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) out.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  }
  if (!name) out.push('name part must be non-empty');
  else {
    if (name.length > 63) out.push('name part must be no more than 63 characters');
    if (!QUALIFIED_NAME.test(name)) out.push(QUALIFIED_NAME_MSG);
  }
  return out;
}

/** validation.IsValidLabelValue. */
export function labelValueProblems(value: string): string[] {
  const out: string[] = [];
  if (value.length > 63) out.push('must be no more than 63 characters');
  if (!LABEL_VALUE.test(value)) out.push(LABEL_VALUE_MSG);
  return out;
}

/** validation.IsValidPortName: an IANA_SVC_NAME. */
export function portNameProblems(name: string): string[] {
  const out: string[] = [];
  if (name.length > 15) out.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(name)) out.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (!/[a-z]/.test(name)) out.push('must contain at least one letter (a-z)');
  if (name.includes('--')) out.push('must not contain consecutive hyphens');
  if (name.startsWith('-') || name.endsWith('-')) out.push('must not begin or end with a hyphen');
  return out;
}

const PORT_RANGE_MSG = 'must be between 1 and 65535, inclusive';
const validPort = (v: number) => Number.isInteger(v) && v >= 1 && v <= 65535;

class Errors {
  readonly list: FieldError[] = [];
  invalid(field: string, value: unknown, msg: string): void {
    this.list.push({ field, detail: `Invalid value: ${shown(value)}: ${msg}` });
  }
  add(field: string, detail: string): void {
    this.list.push({ field, detail });
  }
}

/** A list field's items; anything but a list (or nothing) is a problem and no items. */
function items(e: Errors, field: string, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  e.invalid(field, v, 'must be a list');
  return [];
}

/** unversionedvalidation.ValidateLabelSelector. */
function checkLabelSelector(e: Errors, field: string, sel: unknown): void {
  if (sel === undefined || sel === null) return;
  if (!isObject(sel)) return e.invalid(field, sel, 'must be a label selector (matchLabels, matchExpressions)');
  const labels = sel.matchLabels;
  if (labels !== undefined && labels !== null) {
    if (!isObject(labels)) e.invalid(`${field}.matchLabels`, labels, 'must be a map of strings');
    else for (const [k, v] of Object.entries(labels)) {
      for (const msg of qualifiedNameProblems(k)) e.invalid(`${field}.matchLabels`, k, msg);
      if (typeof v !== 'string') e.invalid(`${field}.matchLabels`, v, 'label values are strings (quote it in YAML)');
      else for (const msg of labelValueProblems(v)) e.invalid(`${field}.matchLabels`, v, msg);
    }
  }
  items(e, `${field}.matchExpressions`, sel.matchExpressions).forEach((x, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    if (!isObject(x)) return e.invalid(f, x, 'must be an object with key, operator and values');
    const values = items(e, `${f}.values`, x.values);
    if (x.operator === 'In' || x.operator === 'NotIn') {
      if (!values.length) e.add(`${f}.values`, "Required value: must be specified when `operator` is 'In' or 'NotIn'");
    } else if (x.operator === 'Exists' || x.operator === 'DoesNotExist') {
      if (values.length) e.add(`${f}.values`, "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
    } else e.invalid(`${f}.operator`, x.operator ?? '', 'not a valid selector operator');
    if (typeof x.key !== 'string') e.invalid(`${f}.key`, x.key ?? '', QUALIFIED_NAME_MSG);
    else for (const msg of qualifiedNameProblems(x.key)) e.invalid(`${f}.key`, x.key, msg);
    values.forEach((v, j) => {
      if (typeof v !== 'string') e.invalid(`${f}.values[${j}]`, v, 'label values are strings (quote it in YAML)');
      else for (const msg of labelValueProblems(v)) e.invalid(`${f}.values[${j}]`, v, msg);
    });
  });
}

/** ValidateNetworkPolicyPort. */
function checkPort(e: Errors, f: string, p: unknown): void {
  if (!isObject(p)) return e.invalid(f, p, 'must be an object (protocol, port, endPort)');
  if (p.protocol !== undefined && p.protocol !== null && !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) {
    e.add(`${f}.protocol`, `Unsupported value: ${shown(p.protocol)}: supported values: "TCP", "UDP", "SCTP"`);
  }
  const { port, endPort } = p;
  const hasEnd = endPort !== undefined && endPort !== null;
  if (hasEnd && typeof endPort !== 'number') e.invalid(`${f}.endPort`, endPort, 'must be an integer');
  if (port === undefined || port === null) {
    if (hasEnd) e.invalid(`${f}.endPort`, endPort, 'may not be specified when `port` is not specified');
  } else if (typeof port === 'number') {
    if (!validPort(port)) e.invalid(`${f}.port`, port, PORT_RANGE_MSG);
    if (hasEnd && typeof endPort === 'number') {
      if (endPort < port) e.invalid(`${f}.endPort`, endPort, 'must be greater than or equal to `port`');
      if (!validPort(endPort)) e.invalid(`${f}.endPort`, endPort, PORT_RANGE_MSG);
    }
  } else if (typeof port === 'string') {
    if (hasEnd) e.invalid(`${f}.endPort`, endPort, 'may not be specified when `port` is non-numeric');
    for (const msg of portNameProblems(port)) e.invalid(`${f}.port`, port, msg);
  } else e.invalid(`${f}.port`, port, 'must be a port number or an IANA_SVC_NAME');
}

const CIDR_MSG = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

/** ValidateIPBlock: cidr a CIDR; each except a CIDR strictly inside it. */
function checkIPBlock(e: Errors, f: string, b: unknown): void {
  if (!isObject(b)) return e.invalid(f, b, 'must be an object (cidr, except)');
  if (b.cidr === undefined || b.cidr === null || b.cidr === '') return e.add(`${f}.cidr`, 'Required value');
  const cidr = typeof b.cidr === 'string' ? tryParsePrefix(b.cidr) : undefined;
  if (!cidr) return e.invalid(`${f}.cidr`, b.cidr, CIDR_MSG);
  items(e, `${f}.except`, b.except).forEach((x, i) => {
    const ef = `${f}.except[${i}]`;
    const except = typeof x === 'string' ? tryParsePrefix(x) : undefined;
    if (!except) return e.invalid(ef, x, CIDR_MSG);
    // Upstream: cidr contains the except's network address, with a longer mask.
    if (except.ip.family !== cidr.ip.family || !contains(cidr, networkOf(except).ip) || cidr.bits >= except.bits) e.invalid(ef, x, 'must be a strict subset of `cidr`');
  });
}

/** ValidateNetworkPolicyPeer: exactly ipBlock, or pod and/or namespace selectors. */
function checkPeer(e: Errors, f: string, peer: unknown): void {
  if (!isObject(peer)) return e.invalid(f, peer, 'must be an object (podSelector, namespaceSelector, ipBlock)');
  let n = 0;
  const given = (v: unknown) => v !== undefined && v !== null;
  if (given(peer.podSelector)) {
    n++;
    checkLabelSelector(e, `${f}.podSelector`, peer.podSelector);
  }
  if (given(peer.namespaceSelector)) {
    n++;
    checkLabelSelector(e, `${f}.namespaceSelector`, peer.namespaceSelector);
  }
  if (given(peer.ipBlock)) {
    n++;
    checkIPBlock(e, `${f}.ipBlock`, peer.ipBlock);
  }
  if (n === 0) e.add(f, 'Required value: must specify a peer');
  else if (n > 1 && given(peer.ipBlock)) e.add(f, 'Forbidden: may not specify both ipBlock and another peer');
}

/** ValidateNetworkPolicySpec: every problem of `spec`, each naming its field path. */
export function networkPolicySpecErrors(spec: unknown, f = 'spec'): FieldError[] {
  const e = new Errors();
  if (!isObject(spec)) {
    e.add(f, 'Required value');
    return e.list;
  }
  checkLabelSelector(e, `${f}.podSelector`, spec.podSelector);
  for (const [dir, peers] of [['ingress', 'from'], ['egress', 'to']] as const) {
    items(e, `${f}.${dir}`, spec[dir]).forEach((rule, i) => {
      const rf = `${f}.${dir}[${i}]`;
      if (!isObject(rule)) return e.invalid(rf, rule, `must be an object (ports, ${peers})`);
      items(e, `${rf}.ports`, rule.ports).forEach((p, j) => checkPort(e, `${rf}.ports[${j}]`, p));
      items(e, `${rf}.${peers}`, rule[peers]).forEach((p, j) => checkPeer(e, `${rf}.${peers}[${j}]`, p));
    });
  }
  const types = items(e, `${f}.policyTypes`, spec.policyTypes);
  if (types.length > 2) e.invalid(`${f}.policyTypes`, types, 'may not specify more than two policyTypes');
  else types.forEach((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress') e.add(`${f}.policyTypes[${i}]`, `Unsupported value: ${shown(t)}: supported values: "Ingress", "Egress"`);
  });
  return e.list;
}
