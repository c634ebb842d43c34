// NetworkPolicy in kubewire trace's words (pure): the kernel's policy rules read by their
// comments, a drop explained from the model's answer ("dropped by NetworkPolicy x/deny-ingress
// (x/a is isolated for ingress; no rule allows y/b:80)"), an allowed hop naming its rule, the
// expected matrix (Services by backend, loopback and ICMP undefined) and its rendering beside
// the probed one with the disagreeing cells marked. Then, as root, a 2-node cluster (kwna2)
// whose kernel enforces a policy: the trace's drop hop and reason, the allowed hop's rule, and
// the matrix whose expected table agrees with every probed cell.
//
// Address plan: pods 10.244.<ns>.<pod> (x 1, y 2; a 10, b 11); a node 172.18.0.11.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Pod } from '../src/api/types.ts';
import type { Matrix } from '../src/trace/trace.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, Kube, waitFor } from './kube.ts';
import type { NetworkPolicyObject, PodInfo, PolicyWorld } from '../src/netpol/model.ts';
import { verdict } from '../src/netpol/model.ts';
import { allowanceReason, agrees, denialReason, endpointOf, expectedCell, expectedMatrix, parsePolicyRule, ruleNote } from '../src/trace/policy.ts';
import { policyDropReason, withPolicyNotes } from '../src/trace/trace.ts';
import type { Trace } from '../src/trace/explain.ts';
import { renderMatrix } from '../src/cli/trace.ts';

const pod = (namespace: string, name: string, ip: string): PodInfo => ({ namespace, name, labels: { pod: name }, ip, node: 'node-1', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] });
const XA = pod('x', 'a', '10.244.1.10');
const XB = pod('x', 'b', '10.244.1.11');
const YB = pod('y', 'b', '10.244.2.11');
const np = (ns: string, name: string, spec: NetworkPolicyObject['spec']): NetworkPolicyObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });
const world = (...policies: NetworkPolicyObject[]): PolicyWorld => ({ policies, pods: [XA, XB, YB], namespaces: new Map([['x', {}], ['y', {}]]) });

const DENY_X = np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
const ALLOW_B = np('x', 'allow-b', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 81 }] }, { from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 'http' }] }] });
const DENY_EGRESS_Y = np('y', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] });

test("the kernel's policy rules are read by their comments (nft and iptables); other rules are not", () => {
  assert.deepEqual(parsePolicyRule('ip saddr @peers-1a2b tcp dport 80 return comment "x/allow-b ingress rule 1"'), { kind: 'allow', policy: 'x/allow-b', dir: 'ingress', index: 1 });
  assert.deepEqual(parsePolicyRule('counter packets 3 bytes 180 drop comment "x/a isolated for ingress by [x/allow-b, x/deny-ingress]: no rule allows"'), { kind: 'drop', pod: 'x/a', dir: 'ingress', policies: ['x/allow-b', 'x/deny-ingress'] });
  assert.deepEqual(parsePolicyRule('-A KUBEWIRE-NP-E-1 -m comment --comment "y/b isolated for egress by [y/deny-egress]: no rule allows" -j DROP'), { kind: 'drop', pod: 'y/b', dir: 'egress', policies: ['y/deny-egress'] });
  assert.equal(parsePolicyRule('ct state established,related accept'), undefined);
  assert.equal(parsePolicyRule('-A KUBE-SERVICES -m comment --comment "default/web cluster IP" -j KUBE-SVC-X'), undefined);
});

test('a drop in the words of the model: which policies isolate whom, what no rule allows', () => {
  const w = world(DENY_X);
  const v = verdict(w, { pod: YB }, { pod: XA }, 80, 'TCP');
  assert.equal(denialReason(v, { pod: YB }, { pod: XA }, 80, 'TCP'), 'dropped by NetworkPolicy x/deny-ingress (x/a is isolated for ingress; no rule allows y/b:80)');
  assert.equal(denialReason(verdict(w, { pod: XB }, { pod: XA }, 53, 'UDP'), { pod: XB }, { pod: XA }, 53, 'UDP'), 'dropped by NetworkPolicy x/deny-ingress (x/a is isolated for ingress; no rule allows x/b:53/UDP)');
  // Both ends deny: the source's egress is judged first (its node), unless the kernel said ingress.
  const both = world(DENY_X, DENY_EGRESS_Y);
  const vb = verdict(both, { pod: YB }, { pod: XA }, 80, 'TCP');
  assert.match(denialReason(vb, { pod: YB }, { pod: XA }, 80, 'TCP')!, /^dropped by NetworkPolicy y\/deny-egress \(y\/b is isolated for egress; no rule allows x\/a:80\)$/);
  assert.match(denialReason(vb, { pod: YB }, { pod: XA }, 80, 'TCP', 'ingress')!, /^dropped by NetworkPolicy x\/deny-ingress \(x\/a is isolated for ingress/);
  assert.equal(denialReason(verdict(w, { pod: XA }, { pod: YB }, 80, 'TCP'), { pod: XA }, { pod: YB }, 80, 'TCP'), undefined, 'allowed: no denial');
  // An address outside the pod network is named by its address.
  assert.equal(denialReason(verdict(w, { ip: '172.18.0.11' }, { pod: XA }, 80, 'TCP'), endpointOf(w, '172.18.0.11'), { pod: XA }, 80, 'TCP'), 'dropped by NetworkPolicy x/deny-ingress (x/a is isolated for ingress; no rule allows 172.18.0.11:80)');
});

test('an allowed connection names the rule that allowed it (named port resolved on the destination); the kernel rule is checked against the model', () => {
  const w = world(DENY_X, ALLOW_B);
  const v = verdict(w, { pod: XB }, { pod: XA }, 80, 'TCP');
  assert.equal(allowanceReason(v, { pod: XB }, { pod: XA }), "x/a's ingress allowed by NetworkPolicy x/allow-b ingress rule 1");
  assert.equal(ruleNote({ kind: 'allow', policy: 'x/allow-b', dir: 'ingress', index: 1 }, v, { pod: XB }, { pod: XA }, 80, 'TCP'), 'allowed by NetworkPolicy x/allow-b ingress rule 1 (x/a is isolated for ingress by x/allow-b, x/deny-ingress)');
  assert.match(ruleNote({ kind: 'allow', policy: 'x/allow-b', dir: 'ingress', index: 0 }, v, { pod: XB }, { pod: XA }, 80, 'TCP'), /the model's first allowing rule is x\/allow-b ingress rule 1/);
  assert.equal(allowanceReason(verdict(w, { pod: XA }, { pod: YB }, 80, 'TCP'), { pod: XA }, { pod: YB }), undefined, 'neither end isolated: nothing to name');
  // A drop the model does not expect: the node is behind the API.
  assert.match(ruleNote({ kind: 'drop', pod: 'x/a', dir: 'ingress', policies: ['x/allow-b'] }, v, { pod: XB }, { pod: XA }, 80, 'TCP'), /the node's rules are behind/);
});

test('a trace: the policy drop is the hop and the reason; an allowed hop and a delivered probe name their rule', () => {
  const w = world(DENY_X, ALLOW_B);
  const place = { kind: 'node' as const, name: 'kwna-node-1', netns: '/run/netns/n1' };
  const drop = 'counter packets 1 bytes 60 drop comment "x/a isolated for ingress by [x/allow-b, x/deny-ingress]: no rule allows"';
  // After DNAT (what the dropping chain saw): the pod and its port, not the ClusterIP.
  assert.equal(policyDropReason(place, drop, { saddr: '10.244.2.11', daddr: '10.244.1.10', protocol: 'tcp', sport: 40000, dport: 80 }, w), 'dropped by NetworkPolicy x/allow-b, x/deny-ingress (x/a is isolated for ingress; no rule allows y/b:80) on node/kwna-node-1');
  assert.equal(policyDropReason(place, drop, { saddr: '10.244.2.11', daddr: '10.244.1.10', protocol: 'tcp', dport: 80 }, undefined), 'dropped by NetworkPolicy x/allow-b, x/deny-ingress (x/a is isolated for ingress; no rule allows it) on node/kwna-node-1', 'without the policies: the comment alone');
  assert.equal(policyDropReason(place, 'meta l4proto tcp drop', { saddr: '10.244.2.11', daddr: '10.244.1.10', protocol: 'tcp', dport: 80 }, w), undefined);
  const t: Trace = {
    probe: { from: 'pod/x/b', protocol: 'tcp', dst: '10.96.0.10', dport: 8080, sport: 40000 },
    fate: 'connected',
    verdict: 'delivered',
    reason: 'delivered to pod/x/a at 10.244.1.10:80, where node (pid 7) listens',
    destination: { pod: 'x/a', ip: '10.244.1.10', port: 80 },
    hops: [{ netns: 'node/kwna-node-1', kind: 'netfilter', detail: 'forward kubewire-netpol ingress-x/a', rule: 'ip saddr @peers-1 tcp dport 80 return comment "x/allow-b ingress rule 1"', verdict: 'return' }],
  };
  const noted = withPolicyNotes(t, w, '10.244.1.11');
  assert.equal(noted.hops[0]!.detail, 'forward kubewire-netpol ingress-x/a: allowed by NetworkPolicy x/allow-b ingress rule 1 (x/a is isolated for ingress by x/allow-b, x/deny-ingress)');
  assert.equal(noted.reason, `${t.reason}; x/a's ingress allowed by NetworkPolicy x/allow-b ingress rule 1`);
  assert.equal(withPolicyNotes(t, undefined, '10.244.1.11'), t, 'no policies: the trace as it was');
  // A probe to a Service dropped further on: its egress hop is judged against the backend the DNAT chose, not the ClusterIP.
  const egressOnly = world(ALLOW_B, np('x', 'egress-to-a', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { pod: 'a' } } }] }] }));
  const dropped: Trace = {
    ...t,
    verdict: 'dropped',
    reason: 'dropped further on',
    destination: undefined,
    hops: [
      { netns: 'node/kwna-node-2', kind: 'netfilter', detail: 'prerouting nat KUBE-SEP-X', rule: '-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.244.1.10:80', verdict: 'DNAT', translation: 'destination → 10.244.1.10:80', nat: [{ kind: 'destination', to: '10.244.1.10:80' }] },
      { netns: 'node/kwna-node-2', kind: 'netfilter', detail: 'forward filter KWNP-EG-1', rule: '-A KWNP-EG-1 -m set --match-set KWNP-P dst -m comment --comment "x/egress-to-a egress rule 0" -j RETURN', verdict: 'RETURN' },
    ],
  };
  assert.equal(withPolicyNotes(dropped, egressOnly, '10.244.1.11').hops[1]!.detail, 'forward filter KWNP-EG-1: allowed by NetworkPolicy x/egress-to-a egress rule 0 (x/b is isolated for egress by x/egress-to-a)');
  assert.equal(withPolicyNotes(dropped, egressOnly, '10.244.1.11').reason, 'dropped further on', 'a dropped probe names no allowing rule in its reason');
});

test('the expected matrix: per backend after DNAT, loopback and ICMP undefined, mixed backends said', () => {
  const w = world(DENY_X, ALLOW_B);
  const toA = { label: 'pod/a', protocol: 'tcp', backends: [{ pod: XA, port: 80 }] };
  assert.deepEqual(expectedCell(w, XB, toA), { expected: 'allowed', reason: "x/a's ingress allowed by NetworkPolicy x/allow-b ingress rule 1" });
  assert.deepEqual(expectedCell(w, YB, toA), { expected: 'blocked', reason: 'dropped by NetworkPolicy x/allow-b, x/deny-ingress (x/a is isolated for ingress; no rule allows y/b:80)' });
  assert.equal(expectedCell(w, XA, toA).expected, 'undefined', 'a pod to itself');
  assert.equal(expectedCell(w, XB, { label: 'pod/c', protocol: 'icmp', backends: [] }).expected, 'undefined');
  const svc = { label: 'service/web:8080', protocol: 'tcp', backends: [{ pod: XA, port: 80 }, { pod: XB, port: 80 }] };
  assert.equal(expectedCell(w, YB, svc).expected, 'blocked', 'every backend denies');
  assert.match(expectedCell(world(ALLOW_B), YB, svc).reason, /^1 of 2 backends allowed; dropped by NetworkPolicy x\/allow-b \(x\/a is isolated/);
  assert.equal(expectedCell(world(ALLOW_B), YB, svc).expected, 'mixed');
  assert.equal(expectedCell(world(), YB, svc).reason, 'no policy isolates either end');
  assert.equal(expectedMatrix(w, [{ label: 'pod/b', pod: XB }], [toA, svc]).length, 2);
  assert.ok(agrees('delivered', 'allowed') && agrees('rejected', 'blocked') && agrees('dropped', 'undefined'));
  assert.ok(!agrees('delivered', 'blocked') && !agrees('dropped', 'allowed'));
});

test('trace --matrix prints the expected table beside the probed one and lists the disagreeing cells', () => {
  const text = renderMatrix({
    sources: ['pod/a', 'pod/b'],
    targets: ['pod/a', 'pod/b'],
    cells: [
      { from: 'pod/a', to: 'pod/a', verdict: 'delivered', reason: 'delivered' },
      { from: 'pod/a', to: 'pod/b', verdict: 'delivered', reason: 'delivered to pod/x/b' },
      { from: 'pod/b', to: 'pod/a', verdict: 'dropped', reason: 'dropped by NetworkPolicy x/deny-ingress (x/a is isolated for ingress; no rule allows x/b:80) on node/n1' },
      { from: 'pod/b', to: 'pod/b', verdict: 'delivered', reason: 'delivered' },
    ],
    expected: [
      { from: 'pod/a', to: 'pod/a', expected: 'undefined', reason: 'loopback' },
      { from: 'pod/a', to: 'pod/b', expected: 'blocked', reason: 'dropped by NetworkPolicy x/deny-b (x/b is isolated for ingress; no rule allows x/a:80)' },
      { from: 'pod/b', to: 'pod/a', expected: 'blocked', reason: 'dropped by NetworkPolicy x/deny-ingress (x/a is isolated for ingress; no rule allows x/b:80)' },
      { from: 'pod/b', to: 'pod/b', expected: 'undefined', reason: 'loopback' },
    ],
  });
  const lines = text.split('\n');
  assert.match(lines[0]!, /^FROM \\ TO +1 +2 +\| +1 +2$/);
  assert.match(lines[1]!, /^pod\/a +\. +\.! +\| +- +X!$/);
  assert.match(lines[2]!, /^pod\/b +X +\. +\| +X +-$/);
  assert.match(lines[4]!, /^left of \|: probed \(what the kernel did\) +right of \|: expected/);
  assert.match(text, /\npod\/b → pod\/a: dropped: dropped by NetworkPolicy x\/deny-ingress/, 'an agreeing failure is listed as before');
  assert.match(text, /\n1 cell where the kernel and the policies disagree:\npod\/a → pod\/b: the policies say blocked \(dropped by NetworkPolicy x\/deny-b .*\), but the probe was delivered: delivered to pod\/x\/b$/);
  // Without policies the table is as it was.
  const plain = renderMatrix({ sources: ['pod/a'], targets: ['pod/b'], cells: [{ from: 'pod/a', to: 'pod/b', verdict: 'delivered', reason: '' }] });
  assert.doesNotMatch(plain, /\||expected/);
});

// ---- the real kernel (root): a policy enforced on two nodes, traced ----

const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: sa}
spec:
  selector: {pod: a}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: y, labels: {pod: b}}
spec:
  nodeName: kwna2-node-1
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;

describe('trace against the kernel: a NetworkPolicy drop and allow explained, the matrix with its expected table', { skip: NOT_ROOT, timeout: 300_000 }, () => {
  const cluster = 'kwna2';
  let stateDir: string;
  let kube: Kube;
  const trace = async (...args: string[]) => JSON.parse(await kube.ok('trace', ...args, '-o', 'json')) as Trace;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-netpol-trace-'));
    kube = new Kube(cluster, stateDir);
    const up = await kube.run(['up', '--nodes', '2'], { timeoutMs: 120_000 });
    assert.equal(up.code, 0, up.stderr);
    const [n1, n2] = [`${cluster}-node-1`, `${cluster}-node-2`];
    await kube.apply([echoPod('a', { node: n1, labels: { pod: 'a' } }), echoPod('b', { node: n2, labels: { pod: 'b' } }), echoPod('c', { node: n2, labels: { pod: 'c' } }), POLICY].join('---\n'));
    await waitFor('pods running', async () => {
      const pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-A')).items.filter((p) => p.metadata.namespace !== 'kube-system');
      return pods.length === 4 && pods.every((p) => p.status?.phase === 'Running');
    }, 60_000);
  });

  after(async () => {
    await kube?.run(['down'], { timeoutMs: 120_000 });
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('c → a through the Service: the drop on a\'s node, in the model\'s words after DNAT; b → a names the rule that allowed it', async () => {
    // The policy reaches the node's kernel within a moment of the apply.
    const dropped = await waitFor('the policy enforced', async () => {
      const t = await trace('pod/c', 'service/sa');
      return t.verdict === 'dropped' ? t : undefined;
    }, 30_000);
    assert.equal(dropped.reason, `dropped by NetworkPolicy default/allow-b (default/a is isolated for ingress; no rule allows default/c:8080) on node/${cluster}-node-1`);
    const hop = dropped.hops.at(-1)!;
    assert.equal(hop.netns, `node/${cluster}-node-1`);
    assert.match(hop.rule ?? '', /default\/a isolated for ingress by \[default\/allow-b\]/);
    const allowed = await trace('pod/b', 'pod/a');
    assert.equal(allowed.verdict, 'delivered', allowed.reason);
    assert.match(allowed.reason, /; default\/a's ingress allowed by NetworkPolicy default\/allow-b ingress rule 0$/);
    assert.ok(allowed.hops.some((h) => /allowed by NetworkPolicy default\/allow-b ingress rule 0 \(default\/a is isolated for ingress by default\/allow-b\)/.test(h.detail)), JSON.stringify(allowed.hops.filter((h) => h.kind === 'netfilter')));
  });

  test('--matrix over two namespaces: the expected table beside the probed one, and the kernel agrees with it', async () => {
    const m = JSON.parse(await kube.ok('trace', '--matrix', '-n', 'default,y', '-o', 'json')) as Matrix;
    assert.deepEqual(m.sources, ['pod/default/a', 'pod/default/b', 'pod/default/c', 'pod/y/d']);
    assert.equal(m.expected?.length, m.cells.length);
    const expect = (from: string, to: string) => m.expected!.find((c) => c.from === from && c.to === to)!.expected;
    assert.equal(expect('pod/default/b', 'pod/default/a'), 'allowed');
    assert.equal(expect('pod/default/c', 'pod/default/a'), 'blocked');
    assert.equal(expect('pod/y/d', 'pod/default/a'), 'blocked', 'pod=b in another namespace: a podSelector alone means the policy\'s namespace');
    assert.equal(expect('pod/default/c', 'service/default/sa:80'), 'blocked');
    assert.equal(expect('pod/default/a', 'pod/default/a'), 'undefined');
    for (const c of m.cells) assert.ok(agrees(c.verdict, m.expected!.find((e) => e.from === c.from && e.to === c.to)!.expected), `${c.from} → ${c.to}: probed ${c.verdict} (${c.reason})`);
    const text = renderMatrix(m); // what the command prints for it (one probing run, not two)
    assert.match(text, /^FROM \\ TO( +\d)+ +\|( +\d)+$/m);
    assert.doesNotMatch(text, /disagree:/);
  });
});
