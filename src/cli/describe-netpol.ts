// `describe networkpolicy`, as kubectl's describer prints it (kubectl pkg/describe
// describeNetworkPolicy: Spec, PodSelector, "Allowing ingress traffic:" with To Port / From
// lines, Policy Types), and `describe pod`'s NetworkPolicies section: the policies that
// isolate the pod, per direction, and what each allows, in the same words. Pure.

import { policyTypes, selects } from '../netpol/model.ts';
import type { LabelSelector, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, Pod } from '../api/types.ts';
import { formatLabelSelector } from '../apiserver/tables.ts';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** Go's time.Time String() of a timestamp, in UTC: 2026-12-06 12:15:40 +0000 UTC. */
export function goTime(ts: string | undefined): string {
  if (!ts) return '0001-01-01 00:00:00 +0000 UTC';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC`;
}

/** printLabelsMultiline / printAnnotationsMultiline: sorted, one a line, `<none>` when none. */
function multiline(key: string, map: Record<string, string> | undefined, width: number): string[] {
  const keys = Object.keys(map ?? {}).filter((k) => k !== LAST_APPLIED).sort();
  const head = `${key}:`.padEnd(width);
  if (!keys.length) return [`${head}<none>`];
  return keys.map((k, i) => `${i ? ' '.repeat(width) : head}${key === 'Labels' ? `${k}=${map![k]}` : `${k}: ${map![k]}`}`);
}

const isEmpty = (s: LabelSelector | undefined) => !Object.keys(s?.matchLabels ?? {}).length && !(s?.matchExpressions ?? []).length;

function peerLines(peer: NetworkPolicyPeer, indent: string): string[] {
  const out: string[] = [];
  if (peer.podSelector && peer.namespaceSelector) {
    out.push(`${indent}  NamespaceSelector: ${formatLabelSelector(peer.namespaceSelector)}`, `${indent}  PodSelector: ${formatLabelSelector(peer.podSelector)}`);
  } else if (peer.podSelector) out.push(`${indent}  PodSelector: ${formatLabelSelector(peer.podSelector)}`);
  else if (peer.namespaceSelector) out.push(`${indent}  NamespaceSelector: ${formatLabelSelector(peer.namespaceSelector)}`);
  else if (peer.ipBlock) out.push(`${indent}  IPBlock:`, `${indent}    CIDR: ${peer.ipBlock.cidr}`, `${indent}    Except: ${(peer.ipBlock.except ?? []).join(', ')}`);
  return out;
}

/** printNetworkPolicySpecIngressFrom / ...EgressTo: a rule's ports, then its peers; rules apart by a line of dashes. */
export function ruleLines(dir: 'ingress' | 'egress', rules: Array<NetworkPolicyIngressRule | NetworkPolicyEgressRule> | undefined, indent = '    '): string[] {
  if (!rules?.length) return [`${indent}<none> (Selected pods are isolated for ${dir} connectivity)`];
  const peerWord = dir === 'ingress' ? 'From' : 'To';
  const out: string[] = [];
  rules.forEach((rule, i) => {
    const ports = rule.ports ?? [];
    if (!ports.length) out.push(`${indent}To Port: <any> (traffic allowed to all ports)`);
    for (const p of ports) out.push(`${indent}To Port: ${p.port ?? '<nil>'}/${p.protocol ?? 'TCP'}`);
    const peers = ('from' in rule ? rule.from : (rule as NetworkPolicyEgressRule).to) ?? [];
    if (!peers.length) out.push(`${indent}${peerWord}: <any> (traffic not restricted by ${dir === 'ingress' ? 'source' : 'destination'})`);
    for (const peer of peers) out.push(`${indent}${peerWord}:`, ...peerLines(peer, indent));
    if (i !== rules.length - 1) out.push(`${indent}----------`);
  });
  return out;
}

function directions(np: NetworkPolicy): { ingress: boolean; egress: boolean } {
  const types = np.spec.policyTypes ?? [];
  return { ingress: types.includes('Ingress'), egress: types.includes('Egress') };
}

/** kubectl describe networkpolicy. */
export function describeNetworkPolicy(np: NetworkPolicy): string {
  const w = 'Annotations:  '.length;
  const { ingress, egress } = directions(np);
  const selector = isEmpty(np.spec.podSelector) ? '<none> (Allowing the specific traffic to all pods in this namespace)' : formatLabelSelector(np.spec.podSelector);
  return [
    `${'Name:'.padEnd(w)}${np.metadata.name}`,
    `${'Namespace:'.padEnd(w)}${np.metadata.namespace ?? ''}`,
    `${'Created on:'.padEnd(w)}${goTime(np.metadata.creationTimestamp)}`,
    ...multiline('Labels', np.metadata.labels, w),
    ...multiline('Annotations', np.metadata.annotations, w),
    'Spec:',
    `  PodSelector:     ${selector}`,
    ...(ingress ? ['  Allowing ingress traffic:', ...ruleLines('ingress', np.spec.ingress)] : ['  Not affecting ingress traffic']),
    ...(egress ? ['  Allowing egress traffic:', ...ruleLines('egress', np.spec.egress)] : ['  Not affecting egress traffic']),
    `  Policy Types: ${(np.spec.policyTypes ?? []).join(', ')}`,
  ].join('\n');
}

/** The policies that isolate the pod in a direction (the model's isolation: its namespace's policies that select it). */
export function isolatingPolicies(pod: Pod, policies: NetworkPolicy[], dir: 'Ingress' | 'Egress'): NetworkPolicy[] {
  const self = { namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name, labels: pod.metadata.labels ?? {}, ip: pod.status?.podIP ?? '', ports: [] };
  const d = dir === 'Ingress' ? 'ingress' : 'egress';
  return policies.filter((np) => policyTypes(np.spec).has(d) && selects(np, self)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

/**
 * `describe pod`'s NetworkPolicies section: per direction, whether the pod is isolated and
 * by which policies, each with the rules it adds (kubectl's wording); allowed traffic is
 * their union. Policies of other namespaces never select a pod.
 */
export function podPoliciesSection(pod: Pod, policies: NetworkPolicy[]): string {
  const out = ['NetworkPolicies:'];
  for (const dir of ['Ingress', 'Egress'] as const) {
    const lower = dir === 'Ingress' ? 'ingress' : 'egress';
    const isolating = isolatingPolicies(pod, policies, dir);
    if (!isolating.length) {
      out.push(`  ${`${dir}:`.padEnd(10)}not isolated (no policy selects this pod for ${lower}: all ${lower} traffic is allowed)`);
      continue;
    }
    out.push(`  ${`${dir}:`.padEnd(10)}isolated by ${isolating.map((np) => np.metadata.name).join(', ')} (allowed: the union of their rules${dir === 'Ingress' ? ", and traffic from the pod's own node" : ''})`);
    for (const np of isolating) {
      out.push(`    ${np.metadata.name} (PodSelector: ${formatLabelSelector(np.spec.podSelector)}):`);
      out.push(...ruleLines(lower, dir === 'Ingress' ? np.spec.ingress : np.spec.egress, '      '));
    }
  }
  return out.join('\n');
}
