// The real kubectl (v1.32, the binary google-cloud-cli ships) against a 2-node kubewire
// cluster, through the everyday commands of kubectl's cheat sheet: what it prints and how it
// exits are compared with what kubectl prints against an upstream API server (kind) for the
// same manifests. The kubeconfig is the one `kubewire up` merged, in a scratch file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { isRoot } from './helpers.ts';
import { Kube, waitFor, webApp, type Result } from './kube.ts';

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const skip = !isRoot ? 'needs root to create network namespaces' : !existsSync(KUBECTL) ? `${KUBECTL} is not installed (google-cloud-cli's kubectl)` : false;

const cluster = 'kctl';
let scratch: string;
let kube: Kube;
let kubeconfig: string;

/** kubectl as a user runs it: the merged kubeconfig, a cache of its own, bounded in time. */
function kubectl(args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(KUBECTL, ['--cache-dir', join(scratch, 'cache'), ...args], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: scratch }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 137, stdout, stderr });
    });
    child.stdin.end(o.input ?? '');
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await kubectl(args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The header line of a table kubectl printed, split into its column names. */
const columns = (text: string) => text.split('\n')[0]!.trim().split(/\s{2,}/);

const CONFIG = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
`;

describe('kubectl v1.32 against kubewire', { skip, timeout: 600_000 }, () => {
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kw-kubectl-'));
    kubeconfig = join(scratch, 'config');
    kube = new Kube(cluster, join(scratch, 'state'));
    const up = await kube.run(['up', '--nodes', '2'], { timeoutMs: 120_000, env: { KUBECONFIG: kubeconfig } });
    assert.equal(up.code, 0, up.stderr);
  });

  after(async () => {
    await kube?.run(['down'], { timeoutMs: 60_000, env: { KUBECONFIG: kubeconfig } });
    rmSync(scratch, { recursive: true, force: true });
  });

  test('version, cluster-info, api-resources and explain: the server says 1.32 and serves discovery and schemas', async () => {
    const version = JSON.parse(await ok('version', '-o', 'json')) as { serverVersion: { major: string; minor: string } };
    assert.deepEqual([version.serverVersion.major, version.serverVersion.minor], ['1', '32']);
    assert.match(await ok('cluster-info'), /Kubernetes control plane.* is running at .*https:\/\/127\.0\.0\.1:\d+/);
    const resources = await ok('api-resources');
    assert.deepEqual(columns(resources), ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND']);
    for (const line of [/^pods\s+po\s+v1\s+true\s+Pod$/m, /^deployments\s+deploy\s+apps\/v1\s+true\s+Deployment$/m, /^replicasets\s+rs\s+apps\/v1\s+true\s+ReplicaSet$/m, /^endpointslices\s+discovery\.k8s\.io\/v1\s+true\s+EndpointSlice$/m, /^ingresses\s+ing\s+networking\.k8s\.io\/v1\s+true\s+Ingress$/m]) {
      assert.match(resources, line);
    }
    assert.doesNotMatch(resources, /kubewire\.dev/, "kubewire's own apply path stays out of discovery");
    const explained = await ok('explain', 'pod.spec.containers');
    assert.match(explained, /^KIND:\s+Pod$/m);
    assert.match(explained, /^FIELD:\s+containers <\[\]Container>$/m);
    assert.match(explained, /^\s+image\t<string>$/m);
  });

  test('get nodes -o wide: upstream columns, both nodes Ready', async () => {
    const nodes = await ok('get', 'nodes', '-o', 'wide');
    assert.deepEqual(columns(nodes), ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION', 'INTERNAL-IP', 'EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME']);
    assert.equal(nodes.trim().split('\n').slice(1).filter((l) => / Ready /.test(l)).length, 2);
  });

  test('apply, apply again, rollout status, wait: as kubectl prints them', async () => {
    writeFileSync(join(scratch, 'app.yaml'), webApp({ replicas: 2 }));
    assert.equal(await ok('apply', '-f', join(scratch, 'app.yaml')), 'deployment.apps/web created\nservice/web created\n');
    assert.equal(await ok('apply', '-f', join(scratch, 'app.yaml')), 'deployment.apps/web unchanged\nservice/web unchanged\n');
    assert.match(await ok('rollout', 'status', 'deployment/web', '--timeout=60s'), /deployment "web" successfully rolled out/);
    assert.match(await ok('wait', '--for=condition=Ready', 'pod', '-l', 'app=web', '--timeout=60s'), /^pod\/web-[a-z0-9]+-[a-z0-9]{5} condition met$/m);
  });

  test('get: pods -o wide, deploy, rs, svc, endpoints, endpointslices with the upstream columns', async () => {
    const pods = await ok('get', 'pods', '-o', 'wide');
    assert.deepEqual(columns(pods), ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
    const rows = pods.trim().split('\n').slice(1);
    assert.equal(rows.length, 2);
    for (const row of rows) assert.match(row, /^web-\S+\s+1\/1\s+Running\s+0\s+\S+\s+10\.244\.\d+\.\d+\s+kctl-node-[12]\s+<none>\s+<none>$/);
    assert.deepEqual(columns(await ok('get', 'deployments')), ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
    assert.match(await ok('get', 'deployments'), /^web\s+2\/2\s+2\s+2\s+/m);
    assert.deepEqual(columns(await ok('get', 'rs')), ['NAME', 'DESIRED', 'CURRENT', 'READY', 'AGE']);
    assert.deepEqual(columns(await ok('get', 'svc')), ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE']);
    assert.match(await ok('get', 'svc', 'web'), /^web\s+ClusterIP\s+10\.\d+\.\d+\.\d+\s+<none>\s+80\/TCP\s+/m);
    assert.match(await ok('get', 'endpoints', 'web'), /^web\s+10\.244\.\d+\.\d+:8080,10\.244\.\d+\.\d+:8080\s+/m);
    assert.deepEqual(columns(await ok('get', 'endpointslices')), ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
    const all = await ok('get', 'all');
    for (const kind of ['pod/web-', 'service/web', 'deployment.apps/web', 'replicaset.apps/web-']) assert.ok(all.includes(kind), `get all shows ${kind}`);
  });

  test('describe pod: defaults filled in (8080/TCP), its ReplicaSet, its events', async () => {
    const [pod] = (await ok('get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    const text = await ok('describe', pod!);
    assert.match(text, /Port:\s+8080\/TCP/);
    assert.match(text, /Controlled By:\s+ReplicaSet\/web-/);
    assert.match(text, /Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned default\/web-/);
  });

  test('exec: output, stdin, and the exit code carried back', async () => {
    const [pod] = (await ok('get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    const r = await kubectl(['exec', pod!, '--', 'sh', '-c', 'echo hi; echo oops >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'hi\n');
    assert.match(r.stderr, /oops/);
    const cat = await kubectl(['exec', '-i', pod!, '--', 'cat'], { input: 'through stdin\n' });
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, 'through stdin\n');
  });

  test('port-forward: 127.0.0.1:PORT reaches the pod inside its network namespace', async () => {
    const [pod] = (await ok('get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    const child = spawn(KUBECTL, ['--cache-dir', join(scratch, 'cache'), 'port-forward', pod!, ':8080'], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: scratch }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b));
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b));
      const port = await waitFor(`port-forward to listen (${err})`, async () => out.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1], 20_000);
      const res = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
      assert.equal(res.statusCode, 200);
      assert.ok((await res.body.text()).includes(pod!.replace('pod/', '')), "the pod's own answer");
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('logs, scale, label, annotate, patch (merge, json, strategic)', async () => {
    const [pod] = (await ok('get', 'pods', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    assert.equal((await kubectl(['logs', pod!, '--tail=1'])).code, 0);
    assert.equal(await ok('scale', 'deployment/web', '--replicas=3'), 'deployment.apps/web scaled\n');
    await ok('rollout', 'status', 'deployment/web', '--timeout=60s');
    assert.equal(await ok('label', pod!, 'tier=front'), `${pod} labeled\n`);
    assert.match(await ok('get', 'pods', '-l', 'tier=front', '-o', 'name'), new RegExp(pod!));
    assert.equal(await ok('annotate', 'deployment', 'web', 'team=net'), 'deployment.apps/web annotated\n');
    assert.equal(await ok('patch', 'deployment', 'web', '--type=merge', '-p', '{"spec":{"replicas":2}}'), 'deployment.apps/web patched\n');
    assert.equal(await ok('patch', 'deployment', 'web', '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":3}]'), 'deployment.apps/web patched\n');
    assert.equal(await ok('get', 'deployment', 'web', '-o', 'jsonpath={.spec.replicas}'), '3');
    // A strategic merge patch of one container by its merge key keeps the rest of the list.
    assert.equal(await ok('patch', 'deployment', 'web', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"MODE","value":"patched"}]}]}}}}'), 'deployment.apps/web patched\n');
    const containers = JSON.parse(await ok('get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers}')) as Array<{ name: string; image: string; env?: unknown[] }>;
    assert.deepEqual(containers.map((c) => [c.name, c.image, c.env]), [['web', 'kubewire/echo', [{ name: 'MODE', value: 'patched' }]]]);
    await ok('rollout', 'status', 'deployment/web', '--timeout=60s');
  });

  test('rollout history, undo and restart through ReplicaSets', async () => {
    const history = await ok('rollout', 'history', 'deployment/web');
    assert.match(history, /^REVISION\s+CHANGE-CAUSE$/m);
    assert.match(history, /^1\s+<none>$/m);
    assert.match(history, /^2\s+<none>$/m);
    assert.equal(await ok('rollout', 'undo', 'deployment/web'), 'deployment.apps/web rolled back\n');
    await ok('rollout', 'status', 'deployment/web', '--timeout=60s');
    const env = await ok('get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].env}');
    assert.equal(env, '', 'back to the template without MODE');
    assert.equal(await ok('rollout', 'restart', 'deployment/web'), 'deployment.apps/web restarted\n');
    await ok('rollout', 'status', 'deployment/web', '--timeout=60s');
  });

  test('server-side apply, create (protobuf bodies), events, errors', async () => {
    writeFileSync(join(scratch, 'cm.yaml'), CONFIG);
    assert.equal(await ok('apply', '--server-side', '-f', join(scratch, 'cm.yaml')), 'configmap/settings serverside-applied\n');
    const managers = JSON.parse(await ok('get', 'configmap', 'settings', '--show-managed-fields', '-o', 'jsonpath={.metadata.managedFields}')) as Array<{ manager: string; operation: string }>;
    assert.ok(managers.some((m) => m.manager === 'kubectl' && m.operation === 'Apply'));
    assert.equal(await ok('create', 'namespace', 'shop'), 'namespace/shop created\n');
    assert.equal(await ok('create', 'configmap', 'flags', '-n', 'shop', '--from-literal=a=b'), 'configmap/flags created\n');
    assert.equal(await ok('create', 'deployment', 'cart', '-n', 'shop', '--image=kubewire/echo'), 'deployment.apps/cart created\n');
    assert.deepEqual(columns(await ok('get', 'events', '-A')), ['NAMESPACE', 'LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
    const missing = await kubectl(['get', 'pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), 'Error from server (NotFound): pods "nope" not found');
    writeFileSync(join(scratch, 'bad.yaml'), CONFIG.replace('\ndata:', '\ndta:'));
    const strict = await kubectl(['apply', '-f', join(scratch, 'bad.yaml')]);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /unknown field "dta"/);
    // A 422 carries details.causes, from which kubectl writes its own line (not "Error from server").
    writeFileSync(join(scratch, 'odd.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: odd}\ndata: {"a b": c}\n');
    const invalid = await kubectl(['apply', '-f', join(scratch, 'odd.yaml')]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /^The ConfigMap "odd" is invalid: data\[a b\]: Invalid value: "a b"/);
  });

  test('get -w streams rows as the objects change; delete -f removes them', async () => {
    const watch = spawn(KUBECTL, ['--cache-dir', join(scratch, 'cache'), 'get', 'pods', '-w', '-l', 'app=web'], { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: scratch }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout.on('data', (b: Buffer) => (out += b));
    try {
      await waitFor('the watch to list the pods', async () => /web-\S+\s+1\/1\s+Running/.test(out), 20_000);
      assert.equal(columns(out)[0], 'NAME', 'one header');
      assert.match(await ok('delete', '-f', join(scratch, 'app.yaml')), /deployment\.apps "web" deleted\nservice "web" deleted/);
      await waitFor('a Terminating row', async () => /web-\S+\s+\S+\s+Terminating/.test(out), 20_000);
      assert.equal(out.split('\n').filter((l) => l.startsWith('NAME')).length, 1, 'column definitions only once');
    } finally {
      watch.kill('SIGTERM');
    }
  });
});
