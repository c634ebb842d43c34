// NetworkPolicy in a trace's words, from the model's answer (netpol/model.ts verdict): why a
// policy dropped a packet ("dropped by NetworkPolicy x/deny-ingress (x/a is isolated for
// ingress; no rule allows y/b:80)"), which rule let it through, what the kernel's policy rules
// are by their comments (the core writes "ns/policy ingress rule N" on each allow clause and
// "ns/pod isolated for ingress by [...]: no rule allows" on each pod chain's final drop), and
// the expected pod × target table that `trace --matrix` prints beside the probed one
// (what Cyclonus computes). Pure.

import { verdict, type Direction, type DirectionVerdict, type Endpoint, type PodInfo, type PolicyWorld, type Protocol, type Verdict } from '../netpol/model.ts';

/** A policy rule of the kernel, read from its comment. */
export type PolicyRule =
  | { kind: 'allow'; policy: string; dir: Direction; index: number }
  | { kind: 'drop'; pod: string; dir: Direction; policies: string[] };

/** The policy rule an nft or iptables rule text carries in its comment; undefined for any other rule. */
export function parsePolicyRule(rule: string | undefined): PolicyRule | undefined {
  if (!rule) return undefined;
  const allow = /"([^"/\s]+\/[^"\s]+) (ingress|egress) rule (\d+)"/.exec(rule);
  if (allow) return { kind: 'allow', policy: allow[1]!, dir: allow[2] as Direction, index: Number(allow[3]) };
  const drop = /"([^"/\s]+\/[^"\s]+) isolated for (ingress|egress) by \[([^\]]*)\]/.exec(rule);
  if (drop) return { kind: 'drop', pod: drop[1]!, dir: drop[2] as Direction, policies: drop[3]!.split(',').map((s) => s.trim()).filter(Boolean) };
  return undefined;
}

/** An address as policy sees it: the pod holding it, or an address outside the pod network. */
export function endpointOf(world: PolicyWorld, ip: string): Endpoint {
  const pod = world.pods.find((p) => p.ip === ip);
  return pod ? { pod } : { ip };
}

export const endLabel = (e: Endpoint): string => ('pod' in e ? `${e.pod.namespace}/${e.pod.name}` : e.ip);

const portLabel = (port: number, proto: Protocol) => (proto === 'TCP' ? `${port}` : `${port}/${proto}`);

/** The model's protocol of a probe's (tcp, udp); undefined for what NetworkPolicy does not define (icmp). */
export function policyProtocol(p: string | undefined): Protocol | undefined {
  const up = p?.toUpperCase();
  return up === 'TCP' || up === 'UDP' || up === 'SCTP' ? up : undefined;
}

/**
 * Why the policies deny a connection, or undefined when they allow it. `dir` is the direction
 * the kernel dropped it in, when known; otherwise the source's egress first (its node judges it
 * first), then the destination's ingress.
 */
export function denialReason(v: Verdict, src: Endpoint, dst: Endpoint, port: number, proto: Protocol, dir?: Direction): string | undefined {
  if (v.allowed) return undefined;
  const order: Direction[] = dir === 'ingress' ? ['ingress', 'egress'] : ['egress', 'ingress'];
  for (const d of order) {
    const dv = d === 'egress' ? v.egress : v.ingress;
    if (!dv || dv.allowed) continue;
    const self = d === 'egress' ? src : dst;
    const peer = d === 'egress' ? dst : src;
    const peerPort = `${endLabel(peer)}:${portLabel(port, proto)}`;
    return `dropped by NetworkPolicy ${dv.isolatedBy.join(', ')} (${endLabel(self)} is isolated for ${d}; no rule allows ${peerPort})`;
  }
  return undefined;
}

function allowedBy(d: DirectionVerdict | undefined, self: Endpoint, dir: Direction): string | undefined {
  if (!d?.allowedBy) return undefined;
  return `${endLabel(self)}'s ${dir} allowed by NetworkPolicy ${d.allowedBy.policy} ${dir} rule ${d.allowedBy.rule}`;
}

/** Which policy rules let a connection through ("x/a's ingress allowed by NetworkPolicy x/allow-b ingress rule 0"); undefined when neither end is isolated or it is denied. */
export function allowanceReason(v: Verdict, src: Endpoint, dst: Endpoint): string | undefined {
  if (!v.allowed) return undefined;
  const parts = [allowedBy(v.egress, src, 'egress'), allowedBy(v.ingress, dst, 'ingress')].filter(Boolean);
  return parts.length ? parts.join('; ') : undefined;
}

/** The words for a kernel policy rule a packet met, checked against the model's answer for the same packet. */
export function ruleNote(rule: PolicyRule, v: Verdict, src: Endpoint, dst: Endpoint, port: number, proto: Protocol): string {
  if (rule.kind === 'drop') return denialReason(v, src, dst, port, proto, rule.dir) ?? `dropped by the rule of ${rule.pod}'s ${rule.dir} chain (isolated by ${rule.policies.join(', ')}), though the policies as the API holds them allow it: the node's rules are behind`;
  const d = rule.dir === 'egress' ? v.egress : v.ingress;
  const self = rule.dir === 'egress' ? src : dst;
  const said = `allowed by NetworkPolicy ${rule.policy} ${rule.dir} rule ${rule.index}`;
  if (d?.allowedBy && (d.allowedBy.policy !== rule.policy || d.allowedBy.rule !== rule.index)) return `${said} (${endLabel(self)} is isolated for ${rule.dir} by ${d.isolatedBy.join(', ')}; the model's first allowing rule is ${d.allowedBy.policy} ${rule.dir} rule ${d.allowedBy.rule})`;
  if (d && !d.allowed) return `${said}, though the policies as the API holds them deny it: the node's rules are behind`;
  return `${said} (${endLabel(self)} is isolated for ${rule.dir} by ${(d?.isolatedBy ?? [rule.policy]).join(', ')})`;
}

// ---- the expected matrix ----

/** A matrix target as policy sees it: the pods that may answer (a Service's backends) and the port each listens on. */
export interface PolicyTarget {
  label: string;
  /** tcp, udp or icmp (icmp: not defined by NetworkPolicy). */
  protocol: string;
  backends: Array<{ pod: PodInfo; port: number }>;
}

export type Expectation = 'allowed' | 'blocked' | 'mixed' | 'undefined';

export interface ExpectedCell {
  from: string;
  to: string;
  expected: Expectation;
  reason: string;
}

/** One cell: what the policies say of `src` reaching `target` (every backend agreeing, or mixed). */
export function expectedCell(world: PolicyWorld, src: PodInfo, target: PolicyTarget): Omit<ExpectedCell, 'from' | 'to'> {
  const proto = policyProtocol(target.protocol);
  if (!proto) return { expected: 'undefined', reason: `${target.protocol}: NetworkPolicy defines TCP, UDP and SCTP only` };
  // A pod reaching itself (its own address, or its own Service) is loopback: undefined upstream, e2e ignores it.
  const others = target.backends.filter((b) => b.pod.ip !== src.ip);
  if (!others.length) return { expected: 'undefined', reason: target.backends.length ? 'loopback: a pod reaching itself is not judged by NetworkPolicy' : 'no backend to reach' };
  const from: Endpoint = { pod: src };
  const answers = others.map((b) => {
    const to: Endpoint = { pod: b.pod };
    const v = verdict(world, from, to, b.port, proto);
    return { allowed: v.allowed, reason: v.allowed ? allowanceReason(v, from, to) ?? 'no policy isolates either end' : denialReason(v, from, to, b.port, proto)! };
  });
  const allowed = answers.filter((a) => a.allowed).length;
  if (allowed === answers.length) return { expected: 'allowed', reason: answers[0]!.reason };
  if (!allowed) return { expected: 'blocked', reason: answers[0]!.reason };
  const denied = answers.find((a) => !a.allowed)!;
  return { expected: 'mixed', reason: `${allowed} of ${answers.length} backends allowed; ${denied.reason}` };
}

export function expectedMatrix(world: PolicyWorld, sources: Array<{ label: string; pod: PodInfo }>, targets: PolicyTarget[]): ExpectedCell[] {
  return sources.flatMap((s) => targets.map((t) => ({ from: s.label, to: t.label, ...expectedCell(world, s.pod, t) })));
}

/** Whether a probed verdict agrees with the expectation (undefined ones agree with anything). */
export function agrees(probed: string | undefined, expected: Expectation): boolean {
  if (expected === 'undefined' || expected === 'mixed') return true;
  const got = probed === 'delivered' || probed === 'answered';
  return got === (expected === 'allowed');
}
