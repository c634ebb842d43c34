// networking.k8s.io/v1 NetworkPolicy as an API kind: upstream's validation (every case a row:
// the spec, and the message the API server gives, field path first), its defaulting, the
// Table kubectl prints (NAME POD-SELECTOR AGE), kubectl's describer and describe pod's
// policies section (pure); then the API server over its unix socket (no root): a 422 Status
// for a bad policy, create/get/list/delete of a good one; then, as root, the real kubectl
// v1.32 against a cluster (apply, get, describe, delete), skipped with the reason otherwise.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { withDefaults } from '../src/api/defaults/index.ts';
import { resourceNamed } from '../src/api/resources.ts';
import type { KubeObject, NetworkPolicy, Pod } from '../src/api/types.ts';
import { formatErrors, validate } from '../src/api/validation.ts';
import { Api } from '../src/apiserver/api.ts';
import { ApiClient, ApiError } from '../src/client/rest.ts';
import { checkFields, unknownFieldsOf } from '../src/apiserver/field-validation.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { printerOf } from '../src/apiserver/tables.ts';
import { describeNetworkPolicy, podPoliciesSection } from '../src/cli/describe-netpol.ts';
import { isRoot } from './helpers.ts';
import { Kube, type Result } from './kube.ts';

const policy = (spec: Record<string, unknown>, name = 'p'): NetworkPolicy => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'x' }, spec: spec as NetworkPolicy['spec'] });
/** What the API server says of a spec: its message, or '' when it is valid (after upstream's defaults, as the server runs them). */
const problems = (spec: Record<string, unknown>): string => {
  const obj = withDefaults(policy(spec) as KubeObject);
  const errors = validate(obj);
  return errors.length ? formatErrors(obj.kind, obj.metadata.name, errors) : '';
};
const ingressFrom = (peer: unknown) => ({ podSelector: {}, ingress: [{ from: [peer] }] });
const ingressPort = (port: unknown) => ({ podSelector: {}, ingress: [{ ports: [port] }] });

const PREFIX = 'NetworkPolicy.networking.k8s.io "p" is invalid: ';

// [what, spec, the message after PREFIX ('' = valid); several errors as apimachinery's aggregate "[a, b]"]
const CASES: Array<[string, Record<string, unknown>, string]> = [
  ['default deny', { podSelector: {} }, ''],
  ['allow from a pod, a namespace, both, an ipBlock with an except', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }, { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }] }, ''],
  ['named port, UDP, SCTP, a port range', { podSelector: {}, egress: [{ ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 53 }, { protocol: 'SCTP' }, { port: 32000, endPort: 32768 }] }] }, ''],
  ['IPv6 ipBlock', ingressFrom({ ipBlock: { cidr: '2001:db8::/64', except: ['2001:db8::/96'] } }), ''],
  ['cidr not a CIDR', ingressFrom({ ipBlock: { cidr: '10.0.0.0/33' } }), 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'],
  ['cidr an address', ingressFrom({ ipBlock: { cidr: '10.0.0.1' } }), 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'],
  ['cidr missing', ingressFrom({ ipBlock: { except: ['10.0.0.0/24'] } }), 'spec.ingress[0].from[0].ipBlock.cidr: Required value'],
  ['except outside the cidr', ingressFrom({ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }), 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'],
  ['except equal to the cidr', ingressFrom({ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/24', '10.0.0.0/16'] } }), 'spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`'],
  ['except not a CIDR', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['nope'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "nope": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'],
  ['ipBlock with a selector', ingressFrom({ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }), 'spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer'],
  ['empty peer', ingressFrom({}), 'spec.ingress[0].from[0]: Required value: must specify a peer'],
  ['unknown protocol', ingressPort({ protocol: 'HTTP', port: 80 }), 'spec.ingress[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "TCP", "UDP", "SCTP"'],
  ['port 0', ingressPort({ port: 0 }), 'spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive'],
  ['port 65536', ingressPort({ port: 65536 }), 'spec.ingress[0].ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive'],
  ['port name with capitals', ingressPort({ port: 'HTTP' }), '[spec.ingress[0].ports[0].port: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), spec.ingress[0].ports[0].port: Invalid value: "HTTP": must contain at least one letter (a-z)]'],
  ['port name too long', ingressPort({ port: 'a-very-long-port-name' }), 'spec.ingress[0].ports[0].port: Invalid value: "a-very-long-port-name": must be no more than 15 characters'],
  ['endPort below port', ingressPort({ port: 81, endPort: 80 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`'],
  ['endPort with a named port', ingressPort({ port: 'http', endPort: 90 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric'],
  ['endPort without a port', ingressPort({ endPort: 90 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified'],
  ['endPort beyond 65535', ingressPort({ port: 80, endPort: 70000 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive'],
  ['policyTypes value', { podSelector: {}, policyTypes: ['Ingress', 'egress'] }, 'spec.policyTypes[1]: Unsupported value: "egress": supported values: "Ingress", "Egress"'],
  ['three policyTypes', { podSelector: {}, policyTypes: ['Ingress', 'Egress', 'Ingress'] }, 'spec.policyTypes: Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes'],
  ['selector operator', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Equals', values: ['a'] }] } }, 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator'],
  ['In without values', ingressFrom({ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In' }] } }), "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"],
  ['Exists with values', ingressFrom({ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists', values: ['a'] }] } }), "spec.ingress[0].from[0].podSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"],
  ['label value', { podSelector: { matchLabels: { pod: 'a b' } } }, `spec.podSelector.matchLabels: Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`],
  ['several problems, all named', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }], from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] }, '[spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP", spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`]'],
];

describe('NetworkPolicy validation, as the API server words it', () => {
  for (const [what, spec, message] of CASES) {
    test(what, () => assert.equal(problems(spec), message ? PREFIX + message : ''));
  }
  test('a bad name is refused too', () => {
    const errors = validate(withDefaults({ ...policy({ podSelector: {} }), metadata: { name: 'Bad_Name', namespace: 'x' } }));
    assert.equal(errors[0]?.field, 'metadata.name');
  });
});

test('strict field validation knows the kind from its generated schema: a misspelt field is named', () => {
  const obj = policy({ podSelector: {}, ingress: [{ form: [{ podSelector: {} }], ports: [{ port: 80, endport: 90 }] }] }) as unknown as Record<string, unknown>;
  assert.deepEqual(unknownFieldsOf(obj).sort(), ['spec.ingress[0].form', 'spec.ingress[0].ports[0].endport']);
  assert.throws(() => checkFields(obj, 'Strict'), /NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: strict decoding error: unknown field "spec\.ingress\[0\]\.form"/);
});

test('defaults: policyTypes [Ingress], Egress too when there are egress rules; ports TCP; podSelector {}', () => {
  const d = (spec: Record<string, unknown>) => withDefaults(policy(spec)).spec;
  assert.deepEqual(d({ podSelector: {} }).policyTypes, ['Ingress']);
  assert.deepEqual(d({ podSelector: {}, egress: [] }).policyTypes, ['Ingress'], 'an empty egress list is no egress rule');
  assert.deepEqual(d({ podSelector: {}, egress: [{}] }).policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(d({ podSelector: {}, egress: [{}], policyTypes: ['Egress'] }).policyTypes, ['Egress'], 'given policyTypes are kept');
  assert.deepEqual(d({ ingress: [{ ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }] }] }), { podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] }], policyTypes: ['Ingress'] });
});

test('netpol is the short name; the Table has kubectl columns NAME POD-SELECTOR AGE', () => {
  assert.equal(resourceNamed('netpol')?.kind, 'NetworkPolicy');
  assert.equal(resourceNamed('networkpolicies.networking.k8s.io')?.kind, 'NetworkPolicy');
  const p = printerOf('NetworkPolicy');
  assert.deepEqual(p.columns.map((c) => c.name), ['Name', 'Pod-Selector', 'Age']);
  const now = Date.parse('2026-12-06T12:05:03Z');
  const row = (spec: Record<string, unknown>) => p.row({ ...policy(spec, 'deny'), metadata: { name: 'deny', namespace: 'x', creationTimestamp: '2026-12-06T12:00:00Z' } }, now).cells;
  assert.deepEqual(row({ podSelector: {} }), ['deny', '<none>', '5m3s']);
  assert.deepEqual(row({ podSelector: { matchLabels: { pod: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'api'] }] } }), ['deny', 'pod=a,tier in (api,web)', '5m3s']);
});

const DESCRIBED = withDefaults({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-b', namespace: 'x', creationTimestamp: '2026-12-06T12:00:00Z', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } },
  spec: {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [
      { ports: [{ port: 80 }], from: [{ podSelector: { matchLabels: { pod: 'b' } } }, { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: {} }] },
      { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] },
    ],
  },
} as NetworkPolicy);

test("describe networkpolicy prints kubectl's describer", () => {
  assert.equal(describeNetworkPolicy(DESCRIBED), `Name:         allow-b
Namespace:    x
Created on:   2026-12-06 12:00:00 +0000 UTC
Labels:       <none>
Annotations:  <none>
Spec:
  PodSelector:     pod=a
  Allowing ingress traffic:
    To Port: 80/TCP
    From:
      PodSelector: pod=b
    From:
      NamespaceSelector: ns=y
      PodSelector: <none>
    ----------
    To Port: <any> (traffic allowed to all ports)
    From:
      IPBlock:
        CIDR: 10.0.0.0/8
        Except: 10.1.0.0/16
  Not affecting egress traffic
  Policy Types: Ingress`);
  const denyAll = withDefaults(policy({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }, 'deny-all'));
  assert.match(describeNetworkPolicy(denyAll), /PodSelector: {5}<none> \(Allowing the specific traffic to all pods in this namespace\)\n  Allowing ingress traffic:\n    <none> \(Selected pods are isolated for ingress connectivity\)\n  Allowing egress traffic:\n    <none> \(Selected pods are isolated for egress connectivity\)\n  Policy Types: Ingress, Egress$/);
});

test('describe pod lists the policies that isolate it, per direction, and what they allow', () => {
  const pod = (labels: Record<string, string>, namespace = 'x') => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace, labels }, spec: { containers: [] } }) as unknown as Pod;
  const egressDeny = withDefaults(policy({ podSelector: {}, policyTypes: ['Egress'] }, 'deny-egress'));
  const section = podPoliciesSection(pod({ pod: 'a' }), [DESCRIBED, egressDeny, { ...DESCRIBED, metadata: { ...DESCRIBED.metadata, namespace: 'y', name: 'elsewhere' } }]);
  assert.match(section, /^NetworkPolicies:\n  Ingress: {2}isolated by allow-b \(allowed: the union of their rules, and traffic from the pod's own node\)\n    allow-b \(PodSelector: pod=a\):\n      To Port: 80\/TCP\n/);
  assert.match(section, /  Egress: {3}isolated by deny-egress .*\n    deny-egress \(PodSelector: <none>\):\n      <none> \(Selected pods are isolated for egress connectivity\)$/);
  assert.doesNotMatch(section, /elsewhere/, 'a policy of another namespace never selects the pod');
  assert.match(podPoliciesSection(pod({ pod: 'c' }), [DESCRIBED]), /Ingress: {2}not isolated \(no policy selects this pod for ingress/);
});

/** An API server on a unix socket in a temporary directory; close() removes it all. */
async function serveApi() {
  const dir = mkdtempSync(join(tmpdir(), 'kw-netpol-api-'));
  const store = new Store(join(dir, 'store.db'));
  const api = new Api(store);
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
  const server = new ApiServer(api, {});
  await server.listen(join(dir, 'api.sock'));
  return {
    client: new ApiClient(join(dir, 'api.sock')),
    close: async () => {
      await server.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('over the API: a bad policy is a 422 Invalid Status naming the field; a good one is stored defaulted, listed, deleted', async () => {
  const { client, close } = await serveApi();
  try {
    const rt = resourceNamed('netpol')!;
    const bad = policy({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/8'] } }] }] }, 'bad');
    const err = await client.create(rt, bad).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, 422);
    assert.equal(err.reason, 'Invalid');
    assert.equal(err.message, 'NetworkPolicy.networking.k8s.io "bad" is invalid: spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`');
    await client.create(rt, policy({ egress: [{ ports: [{ port: 53 }] }] }, 'dns'));
    const got = await client.get<NetworkPolicy>(rt, 'x', 'dns');
    assert.deepEqual(got.spec, { podSelector: {}, egress: [{ ports: [{ port: 53, protocol: 'TCP' }] }], policyTypes: ['Ingress', 'Egress'] });
    assert.deepEqual((await client.list(rt, 'x')).items.map((o) => o.metadata.name), ['dns']);
    await client.delete(rt, 'x', 'dns');
    assert.equal((await client.list(rt, 'x')).items.length, 0);
  } finally {
    await close();
  }
});

// ---- the real kubectl against a cluster (root) ----

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const skip = !isRoot ? 'needs root to create network namespaces' : !existsSync(KUBECTL) ? `${KUBECTL} is not installed (google-cloud-cli's kubectl)` : false;

describe('kubectl v1.32: apply, get, describe, delete a NetworkPolicy', { skip, timeout: 300_000 }, () => {
  let scratch: string;
  let kube: Kube;
  let kubeconfig: string;
  const kubectl = (args: string[], input = ''): Promise<Result> =>
    new Promise((resolve) => {
      const child = spawn(KUBECTL, ['--cache-dir', join(scratch, 'cache'), ...args], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: scratch }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b));
      child.stderr.on('data', (b: Buffer) => (stderr += b));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 137, stdout, stderr });
      });
      child.stdin.end(input);
    });

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kw-netpol-kubectl-'));
    kubeconfig = join(scratch, 'config');
    kube = new Kube('kwna', join(scratch, 'state'));
    const up = await kube.run(['up', '--nodes', '1'], { timeoutMs: 120_000, env: { KUBECONFIG: kubeconfig } });
    assert.equal(up.code, 0, up.stderr);
  });
  after(async () => {
    await kube?.run(['down'], { timeoutMs: 120_000, env: { KUBECONFIG: kubeconfig } });
    rmSync(scratch, { recursive: true, force: true });
  });

  test('apply creates it; get prints POD-SELECTOR; describe prints the describer; a bad one is refused naming the field; delete', async () => {
    const good = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{port: 80}]
    from: [{podSelector: {matchLabels: {pod: b}}}]
`;
    const applied = await kubectl(['apply', '-f', '-'], good);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout.trim(), 'networkpolicy.networking.k8s.io/allow-b created');
    const get = await kubectl(['get', 'netpol']);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^NAME\s+POD-SELECTOR\s+AGE\nallow-b\s+pod=a\s+\d+s\n$/);
    const described = await kubectl(['describe', 'networkpolicy', 'allow-b']);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Spec:\n  PodSelector:     pod=a\n  Allowing ingress traffic:\n    To Port: 80\/TCP\n    From:\n      PodSelector: pod=b\n  Not affecting egress traffic\n  Policy Types: Ingress\n/);
    // kubewire's own get and describe print the same.
    assert.match(await kube.ok('get', 'netpol'), /^NAME\s+POD-SELECTOR\s+AGE\nallow-b\s+pod=a\s+\d+s\n$/);
    assert.match(await kube.ok('describe', 'networkpolicy', 'allow-b'), /^Name:         allow-b\nNamespace:    default\n[^]*\n  Policy Types: Ingress\n$/);
    // describe pod says whether its pod is isolated (coredns is not: the policy is in default).
    const dns = (await kube.json<{ items: Array<{ metadata: { name: string } }> }>('get', 'pods', '-n', 'kube-system')).items[0]!.metadata.name;
    assert.match(await kube.ok('describe', 'pod', dns, '-n', 'kube-system'), /\nNetworkPolicies:\n  Ingress:  not isolated [^\n]*\n  Egress:   not isolated /);
    const bad = await kubectl(['apply', '-f', '-'], good.replace('allow-b', 'bad').replace('[{port: 80}]', '[{port: 81, endPort: 80}]'));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.ingress\[0\]\.ports\[0\]\.endPort: Invalid value: 80: must be greater than or equal to `port`/);
    const mine = await kube.run(['apply', '-f', '-'], { input: good.replace('allow-b', 'bad').replace('[{port: 80}]', '[{port: 80, protocol: ICMP}]') });
    assert.notEqual(mine.code, 0, 'kubewire apply refuses it too');
    assert.match(mine.stderr, /spec\.ingress\[0\]\.ports\[0\]\.protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"/);
    const resources = await kubectl(['api-resources', '--api-group=networking.k8s.io']);
    assert.match(resources.stdout, /^networkpolicies\s+netpol\s+networking\.k8s\.io\/v1\s+true\s+NetworkPolicy$/m);
    const explained = await kubectl(['explain', 'networkpolicy.spec.ingress.from.ipBlock']);
    assert.equal(explained.code, 0, explained.stderr);
    assert.match(explained.stdout, /except\s+<\[\]string>/);
    const deleted = await kubectl(['delete', 'netpol', 'allow-b']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match((await kube.run(['get', 'networkpolicies'])).stderr, /No resources found/);
  });
});
