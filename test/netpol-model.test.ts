// The NetworkPolicy model over upstream's standard cases (k/k test/e2e/network/netpol,
// ../shared/reference/network-policy.md §3), as truth tables written as data: namespaces x,
// y, z, pods a, b, c (labels pod=<name>, ns=<name>), each serving TCP and UDP on 80 and 81
// with ports named serve-80-tcp etc. Every table is also checked against the compiled form
// the kernel backends render (compileNode + compiledAllows), so model and compiler agree.
//
// Address plan: pods 10.244.<ns index>.<pod index + 10> (x 1, y 2, z 3; a 10, b 11, c 12);
// off-cluster 203.0.113.0/24. Nodes: x/a, x/c, y/b, z/a, z/c on node-1, the rest on node-2.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allowed, blockIntervals, compileNode, compiledAllows, formatInterval, isolatedBy, mergeIntervals, policyTypes, verdict, type NetworkPolicyObject, type NetworkPolicySpec, type PodInfo, type PolicyWorld, type Protocol } from '../src/netpol/model.ts';

const NS = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const NODE1 = new Set(['x/a', 'x/c', 'y/b', 'z/a', 'z/c']);

function pods(): PodInfo[] {
  return NS.flatMap((ns, i) =>
    PODS.map((p, j) => ({
      namespace: ns,
      name: p,
      labels: { pod: p },
      ip: `10.244.${i + 1}.${j + 10}`,
      node: NODE1.has(`${ns}/${p}`) ? 'node-1' : 'node-2',
      ports: [80, 81].flatMap((n) => (['TCP', 'UDP'] as const).map((protocol) => ({ name: `serve-${n}-${protocol.toLowerCase()}`, containerPort: n, protocol }))),
    })),
  );
}

const ipOf = (id: string) => `10.244.${NS.indexOf(id.split('/')[0]!) + 1}.${PODS.indexOf(id.split('/')[1]!) + 10}`;

function world(policies: NetworkPolicyObject[], nsLabels: Record<string, Record<string, string>> = {}): PolicyWorld {
  return { policies, pods: pods(), namespaces: new Map(NS.map((n) => [n, { ns: n, ...(nsLabels[n] ?? {}) }])) };
}

const np = (ns: string, name: string, spec: Partial<NetworkPolicySpec>): NetworkPolicyObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: ns, name },
  spec: { podSelector: {}, ...spec },
});

const IDS = NS.flatMap((n) => PODS.map((p) => `${n}/${p}`));

/** A pattern "x/a", "x/*", "*": which pods it names. */
const pick = (pattern: string) => IDS.filter((id) => pattern === '*' || pattern === id || (pattern.endsWith('/*') && id.startsWith(pattern.slice(0, -1))));

type Edit = [from: string, to: string, ok: boolean];

/** The expected matrix: all allowed, then each edit in order (later edits win, as ExpectPeer calls). */
function expected(edits: Edit[]): Map<string, boolean> {
  const m = new Map<string, boolean>();
  for (const f of IDS) for (const t of IDS) m.set(`${f}>${t}`, true);
  for (const [from, to, ok] of edits) for (const f of pick(from)) for (const t of pick(to)) m.set(`${f}>${t}`, ok);
  return m;
}

/** Prints observed vs expected as upstream does ('.' allowed, 'X' blocked), loopback ignored. */
function check(w: PolicyWorld, port: number, proto: Protocol, edits: Edit[]): void {
  const want = expected(edits);
  const all = pods();
  const byId = new Map(all.map((p) => [`${p.namespace}/${p.name}`, p]));
  const compiled = new Map(compileNode(w, undefined).pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  const wrong: string[] = [];
  const rows: string[] = [`      ${IDS.join(' ')}`];
  for (const f of IDS) {
    let row = `${f}  `;
    for (const t of IDS) {
      if (f === t) {
        row += '  -  ';
        continue;
      }
      const got = allowed(w, { pod: byId.get(f)! }, { pod: byId.get(t)! }, port, proto);
      const viaCompiled = compiledAllows(compiled.get(f)?.egress, ipOf(t), port, proto) && compiledAllows(compiled.get(t)?.ingress, ipOf(f), port, proto);
      if (got !== want.get(`${f}>${t}`)) wrong.push(`${f}->${t}: model ${got ? 'allows' : 'blocks'}, expected ${want.get(`${f}>${t}`) ? 'allowed' : 'blocked'}`);
      if (viaCompiled !== got) wrong.push(`${f}->${t}: compiled ${viaCompiled ? 'allows' : 'blocks'}, model ${got ? 'allows' : 'blocks'}`);
      row += got ? '  .  ' : '  X  ';
    }
    rows.push(row);
  }
  assert.deepEqual(wrong, [], `${proto}/${port}\n${rows.join('\n')}`);
}

interface Case {
  name: string;
  policies: NetworkPolicyObject[];
  nsLabels?: Record<string, Record<string, string>>;
  probes: Array<{ port: number; proto?: Protocol; edits: Edit[] }>;
}

const podA = { matchLabels: { pod: 'a' } };

// The upstream e2e cases (network_policy.go), expectations as the fact sheet lists them.
export const CASES: Case[] = [
  { name: 'default-deny-ingress', policies: [np('x', 'deny-ingress', { ingress: [] })], probes: [{ port: 80, edits: [['*', 'x/*', false]] }, { port: 80, proto: 'UDP', edits: [['*', 'x/*', false]] }] },
  { name: 'default-deny-all', policies: [np('x', 'deny-all', { policyTypes: ['Ingress', 'Egress'] })], probes: [{ port: 80, edits: [['*', 'x/*', false], ['x/*', '*', false]] }] },
  { name: 'allow from x/b only', policies: [np('x', 'allow-b', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })], probes: [{ port: 80, edits: [['*', 'x/a', false], ['x/b', 'x/a', true]] }] },
  {
    name: 'allow from x/b with MatchExpressions',
    policies: [np('x', 'allow-b', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] })],
    probes: [{ port: 80, edits: [['*', 'x/a', false], ['x/b', 'x/a', true]] }],
  },
  { name: 'allow-all-to-a + deny-all (additive)', policies: [np('x', 'deny', { ingress: [] }), np('x', 'allow-a', { podSelector: podA, ingress: [{}] })], probes: [{ port: 80, edits: [['*', 'x/*', false], ['*', 'x/a', true]] }] },
  { name: 'ingress from all namespaces', policies: [np('x', 'all-ns', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: {} }] }] })], probes: [{ port: 80, edits: [] }] },
  { name: 'from namespace y', policies: [np('x', 'from-y', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })], probes: [{ port: 80, edits: [['x/*', 'x/a', false], ['z/*', 'x/a', false]] }] },
  {
    name: 'PodSelector OR NamespaceSelector (two peers)',
    policies: [np('x', 'or', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })],
    probes: [{ port: 80, edits: [['x/c', 'x/a', false]] }],
  },
  {
    name: 'PodSelector AND NamespaceSelector (one peer)',
    policies: [np('x', 'and', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchLabels: { pod: 'b' } } }] }] })],
    probes: [{ port: 80, edits: [['*', 'x/a', false], ['y/b', 'x/a', true], ['z/b', 'x/a', true]] }],
  },
  {
    name: 'multiple selectors (ns NotIn x AND pod In b,c)',
    policies: [np('x', 'multi', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }] })],
    probes: [{ port: 80, edits: [['x/*', 'x/a', false], ['y/a', 'x/a', false], ['z/a', 'x/a', false]] }],
  },
  { name: 'any of pods b, c', policies: [np('x', 'bc', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }, { podSelector: { matchLabels: { pod: 'c' } } }] }] })], probes: [{ port: 80, edits: [['*', 'x/a', false], ['x/b', 'x/a', true], ['x/c', 'x/a', true]] }] },
  { name: 'ns y AND pod a', policies: [np('x', 'ya', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: podA }] }] })], probes: [{ port: 80, edits: [['*', 'x/a', false], ['y/a', 'x/a', true]] }] },
  {
    name: 'from ns y on TCP 81, stacked with 80',
    policies: [np('x', 'y-81', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 81 }] }] })],
    probes: [{ port: 81, edits: [['x/*', 'x/a', false], ['z/*', 'x/a', false]] }, { port: 80, edits: [['*', 'x/a', false]] }],
  },
  { name: 'allow-all', policies: [np('x', 'all', { ingress: [{}] })], probes: [{ port: 80, edits: [] }, { port: 81, edits: [] }] },
  { name: 'named port ingress serve-81-tcp', policies: [np('x', 'named-81', { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })], probes: [{ port: 81, edits: [] }, { port: 80, edits: [['*', 'x/*', false]] }, { port: 81, proto: 'UDP', edits: [['*', 'x/*', false]] }] },
  {
    name: 'named port from ns y serve-80-tcp',
    policies: [np('x', 'named-80-y', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 'serve-80-tcp' }] }] })],
    probes: [{ port: 80, edits: [['*', 'x/a', false], ['y/*', 'x/a', true]] }, { port: 81, edits: [['*', 'x/a', false]] }],
  },
  {
    name: 'egress named port serve-80-tcp',
    policies: [np('x', 'egress-80', { policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
    probes: [{ port: 80, edits: [] }, { port: 81, edits: [['x/*', '*', false]] }],
  },
  { name: 'deny ingress from other namespaces', policies: [np('x', 'same-ns', { ingress: [{ from: [{ podSelector: {} }] }] })], probes: [{ port: 80, edits: [['y/*', 'x/*', false], ['z/*', 'x/*', false]] }] },
  { name: 'deny egress pod=a', policies: [np('x', 'deny-egress-a', { podSelector: podA, policyTypes: ['Egress'] })], probes: [{ port: 80, edits: [['x/a', '*', false]] }] },
  { name: 'deny egress all of x', policies: [np('x', 'deny-egress', { policyTypes: ['Egress'] })], probes: [{ port: 80, edits: [['x/*', '*', false]] }] },
  {
    name: 'ingress and egress together',
    policies: [np('x', 'both', { podSelector: podA, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }], egress: [{ ports: [{ port: 80 }] }] })],
    probes: [{ port: 80, edits: [['*', 'x/a', false], ['x/b', 'x/a', true]] }, { port: 81, edits: [['*', 'x/a', false], ['x/b', 'x/a', true], ['x/a', '*', false]] }],
  },
  {
    name: 'egress denied on the client though the server allows',
    policies: [
      np('x', 'a-to-ya', { podSelector: podA, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: podA }] }] }),
      np('y', 'from-xa', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } }, podSelector: podA }] }] }),
    ],
    probes: [{ port: 80, edits: [['x/a', '*', false], ['x/a', 'y/a', true], ['*', 'y/a', false], ['x/a', 'y/a', true], ['*', 'y/b', false]] }],
  },
  { name: 'ingress by protocol only (TCP)', policies: [np('x', 'tcp', { podSelector: podA, ingress: [{ ports: [{ protocol: 'TCP' }] }] })], probes: [{ port: 80, edits: [] }, { port: 80, proto: 'UDP', edits: [['*', 'x/a', false]] }] },
  { name: 'UDP-only allow keeps TCP blocked', policies: [np('x', 'udp', { podSelector: podA, ingress: [{ ports: [{ protocol: 'UDP', port: 80 }] }] })], probes: [{ port: 80, proto: 'UDP', edits: [] }, { port: 80, edits: [['*', 'x/a', false]] }] },
  { name: 'SCTP-only allow keeps TCP blocked', policies: [np('x', 'sctp', { podSelector: podA, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] })], probes: [{ port: 80, edits: [['*', 'x/a', false]] }, { port: 80, proto: 'SCTP', edits: [] }] },
  {
    name: 'endPort range 80-81',
    policies: [np('x', 'range', { podSelector: podA, ingress: [{ ports: [{ port: 80, endPort: 81 }] }] })],
    probes: [{ port: 80, edits: [] }, { port: 81, edits: [] }, { port: 82, edits: [['*', 'x/a', false]] }],
  },
  {
    name: 'stacked allow-port-80 then allow-all',
    policies: [np('x', 'p80', { podSelector: podA, ingress: [{ ports: [{ port: 80 }] }] }), np('x', 'all', { podSelector: podA, ingress: [{}] })],
    probes: [{ port: 81, edits: [] }],
  },
  { name: 'ipBlock egress to y/b/32', policies: [np('x', 'to-yb', { podSelector: podA, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${ipOf('y/b')}/32` } }] }] })], probes: [{ port: 80, edits: [['x/a', '*', false], ['x/a', 'y/b', true]] }] },
  {
    name: 'ipBlock except x/b',
    policies: [np('x', 'except', { podSelector: podA, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.1.0/24', except: [`${ipOf('x/b')}/32`] } }] }] })],
    probes: [{ port: 80, edits: [['x/a', '*', false], ['x/a', 'x/c', true]] }],
  },
  { name: 'egress allow-all, deny ingress on x/a (independent directions)', policies: [np('x', 'egress-all', { policyTypes: ['Egress'], egress: [{}] }), np('x', 'deny-a', { podSelector: podA, ingress: [] })], probes: [{ port: 80, edits: [['*', 'x/a', false]] }] },
  {
    name: 'default namespace label in matchLabels',
    policies: [np('x', 'meta', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] })],
    probes: [{ port: 80, edits: [['*', 'x/a', false], ['y/*', 'x/a', true]] }],
  },
  {
    name: 'egress x/a NotIn y by the default namespace label',
    policies: [np('x', 'not-y', { podSelector: podA, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['y'] }] } }] }] })],
    probes: [{ port: 80, edits: [['x/a', 'y/*', false]] }],
  },
  { name: 'egress only with no policyTypes isolates ingress only', policies: [np('x', 'egress-list-empty', { egress: [] })], probes: [{ port: 80, edits: [['*', 'x/*', false]] }] },
  { name: 'a policy selecting nothing changes nothing', policies: [np('x', 'nothing', { podSelector: { matchLabels: { pod: 'nope' } } })], probes: [{ port: 80, edits: [] }] },
];

describe('NetworkPolicy model: upstream e2e truth tables', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const w = world(c.policies, c.nsLabels);
      for (const p of c.probes) check(w, p.port, p.proto ?? 'TCP', p.edits);
    });
  }

  it('updated namespace labels open x/a', () => {
    const policies = [np('x', 'from-ns-team', { podSelector: podA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] })];
    check(world(policies), 80, 'TCP', [['*', 'x/a', false]]);
    check(world(policies, { y: { team: 'blue' } }), 80, 'TCP', [['*', 'x/a', false], ['y/*', 'x/a', true]]);
  });
});

describe('NetworkPolicy model: pieces', () => {
  it('defaults policyTypes as upstream', () => {
    assert.deepEqual([...policyTypes({ podSelector: {} })], ['ingress']);
    assert.deepEqual([...policyTypes({ podSelector: {}, egress: [{}] })], ['ingress', 'egress']);
    assert.deepEqual([...policyTypes({ podSelector: {}, policyTypes: ['Egress'] })], ['egress']);
  });

  it('cuts excepts out of a CIDR and merges intervals', () => {
    assert.deepEqual(blockIntervals({ cidr: '10.0.0.0/24', except: ['10.0.0.16/28', '10.0.0.255/32'] }).map(formatInterval), ['10.0.0.0-10.0.0.15', '10.0.0.32-10.0.0.254']);
    assert.deepEqual(blockIntervals({ cidr: '10.0.0.0/24', except: ['10.0.0.0/24'] }), []);
    const merged = mergeIntervals([...blockIntervals({ cidr: '10.0.0.0/25' }), ...blockIntervals({ cidr: '10.0.0.128/25' }), ...blockIntervals({ cidr: '10.0.0.5/32' })]);
    assert.deepEqual(merged.map(formatInterval), ['10.0.0.0-10.0.0.255']);
  });

  it('an ipBlock admits off-cluster addresses; selectors and named ports never do', () => {
    const w = world([np('x', 'eg', { podSelector: podA, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }], ports: [{ port: 443 }] }, { ports: [{ port: 'serve-80-tcp' }] }] })]);
    const xa = { pod: w.pods[0]! };
    assert.equal(allowed(w, xa, { ip: '203.0.113.7' }, 443), true);
    assert.equal(allowed(w, xa, { ip: '203.0.113.7' }, 80), false, 'a named port does not resolve off-cluster');
    assert.equal(allowed(w, xa, { ip: '198.51.100.1' }, 443), false);
    const compiled = compileNode(w, 'node-1').pods.find((p) => p.name === 'a' && p.namespace === 'x')!;
    assert.equal(compiledAllows(compiled.egress, '203.0.113.7', 443, 'TCP'), true);
    assert.equal(compiledAllows(compiled.egress, '203.0.113.7', 80, 'TCP'), false);
    assert.equal(compiledAllows(compiled.egress, ipOf('y/c'), 80, 'TCP'), true);
  });

  it('the own node is always allowed in; verdicts name the policy and rule', () => {
    const w = world([np('x', 'deny', { ingress: [] }), np('x', 'allow-b', { podSelector: podA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    const [xa, xb, xc] = w.pods;
    assert.equal(verdict(w, { ip: '172.18.0.11' }, { pod: xa! }, 80, 'TCP', true).allowed, true);
    assert.equal(verdict(w, { ip: '172.18.0.11' }, { pod: xa! }, 80, 'TCP').allowed, false);
    assert.deepEqual(verdict(w, { pod: xb! }, { pod: xa! }, 80, 'TCP').ingress, { isolatedBy: ['x/allow-b', 'x/deny'], allowed: true, allowedBy: { policy: 'x/allow-b', rule: 0 } });
    assert.deepEqual(verdict(w, { pod: xc! }, { pod: xa! }, 80, 'TCP').ingress, { isolatedBy: ['x/allow-b', 'x/deny'], allowed: false });
    assert.deepEqual(isolatedBy(w, xa!, 'egress'), []);
  });

  it('compiles only the node\'s own isolated pods, rules commented ns/policy rule N', () => {
    const w = world([np('x', 'deny', { ingress: [] }), np('y', 'from-x', { ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ port: 80 }, { protocol: 'UDP', port: 81 }] }] })]);
    const n1 = compileNode(w, 'node-1');
    assert.deepEqual(n1.pods.map((p) => `${p.namespace}/${p.name}`), ['x/a', 'x/c', 'y/b']);
    const yb = n1.pods[2]!;
    assert.deepEqual(yb.ingress, {
      isolatedBy: ['y/from-x'],
      rules: [{ comment: 'y/from-x ingress rule 0', peers: { any: false, ips: ['10.244.1.10', '10.244.1.11', '10.244.1.12'], intervals: [] }, ports: [{ protocol: 'TCP', first: 80, last: 80 }, { protocol: 'UDP', first: 81, last: 81 }] }],
    });
    assert.deepEqual(n1.pods[0]!.ingress, { isolatedBy: ['x/deny'], rules: [] });
  });
});
