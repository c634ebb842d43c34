// Clients of the Kubernetes API against one 2-node kubewire cluster (kapi), with the
// kubeconfig `kubewire up --kubeconfig` wrote: the real kubectl (v1.32, the binary
// google-cloud-cli ships) through the everyday commands of its cheat sheet, what it prints and
// how it exits compared with what it prints against an upstream API server (kind) for the same
// manifests; its discovery, explain and server-side field validation; apply, patch,
// server-side apply and delete --cascade; and @kubernetes/client-node 1.x (what Node operators
// and dashboards use). One cluster for all (bringing one up per part cost the suite a minute):
// each part keeps to a namespace of its own, so what it lists is its own; the cheat sheet's is
// default.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { request } from 'undici';
import { RESOURCES } from '../src/api/resources.ts';
import { isRoot } from './helpers.ts';
import { Kube, waitFor, webApp, type Result } from './kube.ts';

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const skip = !isRoot ? 'needs root to create network namespaces' : !existsSync(KUBECTL) ? `${KUBECTL} is not installed (google-cloud-cli's kubectl)` : false;

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const cluster = 'kapi';
let scratch: string;
let kube: Kube;
/** The kubeconfig up wrote: its context's namespace is default. */
let kubeconfig: string;

/** A namespace of one part, and a kubeconfig of its own whose context is in it (kubectl then needs no -n). */
function namespaced(ns: string): string {
  const file = join(scratch, `config-${ns}`);
  writeFileSync(file, readFileSync(kubeconfig), { mode: 0o600 });
  for (const args of [['create', 'namespace', ns], ['config', 'set-context', '--current', `--namespace=${ns}`]]) {
    const r = spawnSync(KUBECTL, ['--kubeconfig', file, '--cache-dir', join(scratch, 'cache'), ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  }
  return file;
}

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

describe(`clients of the API against one cluster (${cluster})`, { skip, timeout: 900_000 }, () => {
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kwt-kapi-'));
    kubeconfig = join(scratch, 'config');
    kube = new Kube(cluster, join(scratch, 'state'));
    const up = await kube.run(['up', '--nodes', '2', '--kubeconfig', kubeconfig], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, up.stderr);
    assert.match(readFileSync(kubeconfig, 'utf8'), /server: https:\/\/127\.0\.0\.1:\d+/, 'up wrote the kubeconfig of its HTTPS listener');
  });

  after(async () => {
    await kube?.run(['down', '--kubeconfig', kubeconfig], { timeoutMs: 120_000 });
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('kubectl v1.32: the cheat sheet (namespace default)', () => {
    test('version and cluster-info: the server says 1.32, at its HTTPS address', async () => {
      const version = JSON.parse(await ok('version', '-o', 'json')) as { serverVersion: { major: string; minor: string } };
      assert.deepEqual([version.serverVersion.major, version.serverVersion.minor], ['1', '32']);
      assert.match(await ok('cluster-info'), /Kubernetes control plane.* is running at .*https:\/\/127\.0\.0\.1:\d+/);
      // api-resources and explain: below, in the discovery part, for every served kind.
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
      for (const row of rows) assert.match(row, /^web-\S+\s+1\/1\s+Running\s+0\s+\S+\s+10\.244\.\d+\.\d+\s+kapi-node-[12]\s+<none>\s+<none>$/);
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

  /** Collects what a stream gets written. */
  function sink(): Writable & { text: () => string } {
    const chunks: Buffer[] = [];
    const w = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(Buffer.from(chunk));
        cb();
      },
    }) as Writable & { text: () => string };
    w.text = () => Buffer.concat(chunks).toString('utf8');
    return w;
  }

  describe('@kubernetes/client-node 1.x: typed clients, an informer, exec, port-forward, logs (namespace client-node)', () => {
    const NS = 'client-node';
    let kc: k8s.KubeConfig;
    before(() => {
      kc = new k8s.KubeConfig();
      kc.loadFromFile(namespaced(NS));
      assert.equal(kc.getCurrentContext(), `kubewire-${cluster}`);
    });

    /** A pod of the web Deployment once its rollout is done: Ready and not terminating. */
    async function readyPod(): Promise<k8s.V1Pod> {
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      await waitFor('the rollout of web', async () => {
        const d = await apps.readNamespacedDeployment({ namespace: NS, name: 'web' });
        const s = d.status;
        return (d.metadata?.generation ?? 0) <= (s?.observedGeneration ?? 0) && s?.updatedReplicas === d.spec?.replicas && s?.replicas === s?.updatedReplicas && s?.availableReplicas === s?.updatedReplicas;
      }, 60_000);
      const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
      const ready = pods.find((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      assert.ok(ready, 'a ready web pod');
      return ready;
    }

    test('typed clients and an informer: list, then every ADDED and MODIFIED of a rollout; create, patch three ways, server-side apply', async () => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const nodes = await core.listNode();
      assert.equal(nodes.items.length, 2);
      const seen = new Map<string, string[]>();
      const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${NS}/pods`, () => core.listNamespacedPod({ namespace: NS }));
      const note = (type: string) => (p: k8s.V1Pod) => seen.set(p.metadata!.name!, [...(seen.get(p.metadata!.name!) ?? []), `${type}:${p.status?.phase ?? ''}`]);
      informer.on('add', note('add'));
      informer.on('update', note('update'));
      informer.on('delete', note('delete'));
      let informerError: unknown;
      informer.on('error', (e) => (informerError = e));
      await informer.start();
      try {
        const manifest = webApp({ replicas: 2, service: false });
        const [deployment] = k8s.loadAllYaml(manifest) as k8s.V1Deployment[];
        const created = await apps.createNamespacedDeployment({ namespace: NS, body: deployment! });
        assert.equal(created.metadata?.name, 'web');
        await waitFor('two running pods seen by the informer', async () => [...seen.values()].filter((v) => v.some((e) => e.endsWith(':Running'))).length >= 2 || undefined, 60_000);
        assert.equal(informer.list(NS).filter((p) => p.status?.phase === 'Running').length, 2, "the informer's cache");

        await apps.patchNamespacedDeployment({ namespace: NS, name: 'web', body: { spec: { replicas: 3 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
        await apps.patchNamespacedDeployment({ namespace: NS, name: 'web', body: [{ op: 'add', path: '/metadata/labels', value: { tier: 'front' } }] }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
        await apps.patchNamespacedDeployment({ namespace: NS, name: 'web', body: { spec: { template: { spec: { containers: [{ name: 'web', env: [{ name: 'MODE', value: 'x' }] }] } } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
        const d = await apps.readNamespacedDeployment({ namespace: NS, name: 'web' });
        assert.equal(d.spec?.replicas, 3);
        assert.equal(d.metadata?.labels?.tier, 'front');
        assert.deepEqual(JSON.parse(JSON.stringify(d.spec?.template.spec?.containers.map((c) => [c.name, c.image, c.env]))), [['web', 'kubewire/echo', [{ name: 'MODE', value: 'x' }]]]);

        const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
        const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: NS }, data: { a: '1' } };
        await objects.patch(cm, undefined, undefined, 'operator', true, k8s.PatchStrategy.ServerSideApply);
        const applied = await objects.read<k8s.V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: NS } });
        assert.deepEqual(applied.data, { a: '1' });
        assert.ok(applied.metadata?.managedFields?.some((f) => f.manager === 'operator' && f.operation === 'Apply'));
        await assert.rejects(
          objects.patch({ ...cm, data: { a: '2' } }, undefined, undefined, 'other', false, k8s.PatchStrategy.ServerSideApply),
          (e: unknown) => e instanceof k8s.ApiException && e.code === 409,
          'a field another manager owns is a 409 conflict',
        );
        assert.equal(informerError, undefined);
      } finally {
        await informer.stop();
      }
    });

    test('exec over the WebSocket channel protocol: stdout, stderr, stdin and the exit status', async () => {
      const pod = await readyPod();
      const out = sink();
      const err = sink();
      const stdin = new PassThrough();
      const status = new Promise<k8s.V1Status>((resolve) => {
        void new k8s.Exec(kc).exec(NS, pod!.metadata!.name!, 'web', ['sh', '-c', 'cat; echo to-stderr >&2; exit 4'], out, err, stdin, false, resolve);
      });
      stdin.end('through stdin\n');
      const s = await status;
      assert.equal(out.text(), 'through stdin\n');
      assert.equal(err.text(), 'to-stderr\n');
      assert.equal(s.status, 'Failure');
      assert.equal(s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message, '4');
    });

    test("port-forward over portforward.k8s.io reaches the pod's port inside its network namespace", async () => {
      const pod = await readyPod();
      const forward = new k8s.PortForward(kc);
      // A local listener on loopback hands each connection to the client's port-forward, as its docs show.
      const server = createServer((socket) => void forward.portForward(NS, pod!.metadata!.name!, [8080], socket, null, socket));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const port = (server.address() as AddressInfo).port;
        const res = await request(`http://127.0.0.1:${port}/`, { headersTimeout: 10_000, bodyTimeout: 10_000, reset: true });
        assert.equal(res.statusCode, 200);
        assert.ok((await res.body.text()).includes(pod!.metadata!.name!), "the pod's own answer");
      } finally {
        server.close();
      }
    });

    test('logs with tailLines', async () => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const [pod] = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
      const text = await core.readNamespacedPodLog({ namespace: NS, name: pod!.metadata!.name!, container: 'web', tailLines: 1 });
      assert.equal(typeof text, 'string');
      assert.ok(text.split('\n').filter(Boolean).length <= 1);
      const out = sink();
      // The library pipes the answer into the stream (its done callback is for errors only): the stream's end is the log's.
      const finished = new Promise<void>((resolve) => out.on('finish', resolve));
      await new k8s.Log(kc).log(NS, pod!.metadata!.name!, 'web', out, { tailLines: 5 });
      await finished;
      assert.ok(out.text().split('\n').filter(Boolean).length <= 5);
    });
  });

  describe('kubectl v1.32: discovery, explain and field validation (namespace discovery)', () => {
    const NS = 'discovery';
    /** A Deployment and its Service (the e2e tests' usual app). */
    const MANIFEST = webApp({ replicas: 1 });
    let dir: string;
    let config: string;
    const run = (args: string[], input?: string) => kubectlAt(config, join(dir, 'kube-cache'), args, input);
    before(() => {
      dir = mkdtempSync(join(scratch, 'discovery-'));
      config = namespaced(NS);
    });

    test('api-resources prints the served kinds, sorted by group, with short names', async (t) => {
      const r = await run(['api-resources']);
      t.diagnostic(r.stdout);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0]!, /^NAME\s+SHORTNAMES\s+APIVERSION\s+NAMESPACED\s+KIND$/);
      for (const rt of RESOURCES) {
        const row = lines.find((l) => l.split(/\s+/)[0] === rt.plural);
        assert.ok(row, `${rt.plural} listed`);
        assert.ok(row.includes(rt.group ? `${rt.group}/${rt.version}` : rt.version) && row.trim().endsWith(rt.kind), row);
        if (rt.shortNames[0]) assert.ok(row.split(/\s+/).includes(rt.shortNames.join(',')), row);
      }
      assert.ok(!r.stdout.includes('kubewire.dev'));
      const all = await run(['api-resources', '--categories=all', '-o', 'name']);
      assert.deepEqual(new Set(all.stdout.trim().split('\n')), new Set(RESOURCES.filter((r) => ['Pod', 'Service', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job'].includes(r.kind)).map((r) => (r.group ? `${r.plural}.${r.group}` : r.plural))));
    });

    test('explain pod.spec.containers and deployment.spec print fields with descriptions', async (t) => {
      const c = await run(['explain', 'pod.spec.containers']);
      t.diagnostic(c.stdout.split('\n').slice(0, 24).join('\n'));
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /^KIND:\s+Pod\nVERSION:\s+v1\n/);
      assert.match(c.stdout, /FIELD: containers <\[\]Container>/);
      assert.match(c.stdout, /\n {2}image\t<string>\n {4}Container image name/);
      assert.match(c.stdout, /\n {2}name\t<string> -required-\n/);
      const d = await run(['explain', 'deployment.spec']);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /GROUP:\s+apps\nKIND:\s+Deployment\nVERSION:\s+v1/);
      assert.match(d.stdout, /\n {2}replicas\t<integer>\n {4}Number of desired pods/);
      assert.match(d.stdout, /\n {2}template\t<PodTemplateSpec> -required-\n/);
    });

    test('apply -f validates (Strict) and creates; an unknown field is refused by the server; --validate=warn prints a warning', async (t) => {
      const ok = await run(['apply', '-f', '-'], MANIFEST);
      t.diagnostic(`${ok.stdout}${ok.stderr}`);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /deployment\.apps\/web created\nservice\/web created/);
      // A new object with an unknown field: kubectl POSTs it with fieldValidation=Strict, the server refuses it.
      const bad = (name: string) => webApp({ replicas: 1, service: false }).replace('name: web}', `name: ${name}}`).replace('replicas: 1', 'replicas: 1\n  replicaz: 2');
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, bad('web2'));
      const strict = await run(['apply', '-f', file]);
      t.diagnostic(strict.stderr);
      assert.equal(strict.code, 1);
      assert.equal(strict.stderr, `Error from server (BadRequest): error when creating "${file}": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz"\n`);
      // The same field added to the live object: a strategic merge PATCH, refused the same way.
      writeFileSync(file, bad('web'));
      const patch = await run(['apply', '-f', file]);
      assert.equal(patch.code, 1);
      assert.match(patch.stderr, /^Error from server \(BadRequest\): error when applying patch:\n.*\nfor: "[^"]+": error when patching "[^"]+": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec\.replicaz"\n$/s);
      // --validate=warn: kubectl sends fieldValidation=Warn, the object is created and the warning printed.
      writeFileSync(file, bad('web3'));
      const warn = await run(['apply', '--validate=warn', '-f', file]);
      t.diagnostic(`${warn.stdout}${warn.stderr}`);
      assert.equal(warn.code, 0, warn.stderr);
      assert.equal(warn.stdout, 'deployment.apps/web3 created\n');
      assert.match(warn.stderr, /Warning: unknown field "spec\.replicaz"/);
    });

    test("kubewire's own apply: the server checks every field (deeper than the CLI's own check), --validate=warn warns", async () => {
      // containers[].resources is below the levels the CLI checks itself (src/api/fields.ts): the server finds it.
      const deep = webApp({ replicas: 1, service: false }).replace('name: web}', 'name: deep}').replace('image: kubewire/echo,', 'image: kubewire/echo, resources: {limitz: {cpu: 1}},');
      const strict = await kube.run(['apply', '-n', NS, '-f', '-'], { input: deep });
      assert.equal(strict.code, 1);
      assert.match(strict.stderr, /nothing was applied:\n {2}<stdin>: document 0 \(Deployment "deep"\): Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec\.template\.spec\.containers\[0\]\.resources\.limitz"/);
      const warn = await kube.run(['apply', '-n', NS, '--validate=warn', '-f', '-'], { input: deep });
      assert.equal(warn.code, 0, warn.stderr);
      assert.match(warn.stderr, /Warning: Deployment "deep": unknown field "spec\.template\.spec\.containers\[0\]\.resources\.limitz"/);
      assert.equal((await kube.run(['apply', '-n', NS, '--validate=nonsense', '-f', '-'], { input: deep })).code, 1);
    });
  });

  describe('kubectl v1.32: apply, patch, server-side apply, delete --cascade (namespace patch)', () => {
    let config: string;
    const run = (file: string, args: string[], input?: string) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = execFile(file, args, { timeout: 120_000 }, (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }));
        if (input !== undefined) child.stdin?.end(input);
      });
    const kubectl = (args: string[], input?: string) => run(KUBECTL, ['--kubeconfig', config, '--cache-dir', join(scratch, 'cache'), ...args], input);
    const ok = async (args: string[], input?: string) => {
      const r = await kubectl(args, input);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.err}`);
      return r.out.trim();
    };
    const manifest = (name: string, { image = 'nginx:1', ports = [80, 443], replicas = 1 } = {}) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\n  labels: {app: ${name}}\nspec:\n  replicas: ${replicas}\n  selector: {matchLabels: {app: ${name}}}\n  template:\n    metadata: {labels: {app: ${name}}}\n    spec:\n      containers:\n      - name: web\n        image: ${image}\n        ports:\n${ports.map((p) => `        - containerPort: ${p}\n`).join('')}`;
    before(() => {
      config = namespaced('patch');
    });

    test('client-side apply round-trips: created, unchanged, configured with a container port removed', async () => {
      assert.equal(await ok(['apply', '-f', '-'], manifest('web')), 'deployment.apps/web created');
      assert.equal(await ok(['apply', '-f', '-'], manifest('web')), 'deployment.apps/web unchanged');
      assert.equal(await ok(['apply', '-f', '-'], manifest('web', { image: 'nginx:2', ports: [80] })), 'deployment.apps/web configured');
      assert.equal(await ok(['get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[*].containerPort}']), 'nginx:2 80');
      assert.equal(await ok(['apply', '-f', '-'], manifest('web', { image: 'nginx:2', ports: [80] })), 'deployment.apps/web unchanged');
    });

    test('patch: JSON patch, a failing test op, strategic (default), no change', async () => {
      assert.equal(await ok(['patch', 'deploy', 'web', '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":2}]']), 'deployment.apps/web patched');
      const failed = await kubectl(['patch', 'deploy', 'web', '--type=json', '-p', '[{"op":"test","path":"/spec/replicas","value":7}]']);
      assert.equal(failed.code, 1);
      assert.match(failed.err, /test failed/);
      assert.equal(await ok(['patch', 'deploy', 'web', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"A","value":"1"}]}]}}}}']), 'deployment.apps/web patched');
      assert.equal(await ok(['get', 'deploy', 'web', '-o', 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}']), '2 nginx:2 A');
      assert.equal(await ok(['patch', 'deploy', 'web', '-p', '{"spec":{"replicas":2}}']), 'deployment.apps/web patched (no change)');
      const bad = await kubectl(['patch', 'deploy', 'web', '-p', '{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}']);
      assert.equal(bad.code, 1);
      assert.match(bad.err, /Error from server \(BadRequest\): .*does not contain declared merge key: name/);
    });

    test('server-side apply: a conflict with a field another manager set is the 409 kubectl prints; --force-conflicts takes it', async () => {
      assert.equal(await ok(['patch', 'deploy', 'web', '--type=merge', '-p', '{"spec":{"replicas":5}}']), 'deployment.apps/web patched');
      const conflict = await kubectl(['apply', '--server-side', '-f', '-'], manifest('web', { image: 'nginx:2', ports: [80], replicas: 3 }));
      assert.equal(conflict.code, 1);
      assert.match(conflict.err, /^error: Apply failed with 1 conflict: conflict with "kubectl-patch" using apps\/v1: \.spec\.replicas\nPlease review the fields above--they currently have other managers/);
      assert.equal(await ok(['apply', '--server-side', '--force-conflicts', '-f', '-'], manifest('web', { image: 'nginx:2', ports: [80], replicas: 3 })), 'deployment.apps/web serverside-applied');
      const managers = JSON.parse(await ok(['get', 'deploy', 'web', '--show-managed-fields', '-o', 'jsonpath={.metadata.managedFields}'])) as Any[];
      assert.ok(managers.some((m) => m.manager === 'kubectl' && m.operation === 'Apply' && m.fieldsV1['f:spec']['f:replicas']), JSON.stringify(managers));
      assert.equal(await ok(['get', 'deploy', 'web', '-o', 'jsonpath={.spec.replicas}']), '3');
      // A new object by server-side apply is created.
      assert.equal(await ok(['apply', '--server-side', '-f', '-'], manifest('ssa')), 'deployment.apps/ssa serverside-applied');
      // A port it stops applying goes (no one else owns it).
      assert.equal(await ok(['apply', '--server-side', '-f', '-'], manifest('ssa', { ports: [80] })), 'deployment.apps/ssa serverside-applied');
      assert.equal(await ok(['get', 'deploy', 'ssa', '-o', 'jsonpath={.spec.template.spec.containers[0].ports[*].containerPort}']), '80');
    });

    test('delete --cascade=orphan keeps the ReplicaSets without their owner; --cascade=foreground removes them before the Deployment', async () => {
      const rsOf = async (app: string) => (await ok(['get', 'rs', '-l', `app=${app}`, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.ownerReferences[*].name};{end}'])).split(';').filter(Boolean);
      const waitFor = async (what: () => Promise<boolean>, ms = 30_000) => {
        for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) if (await what()) return true;
        return false;
      };
      assert.ok(await waitFor(async () => (await rsOf('ssa')).length > 0), 'the ReplicaSet of ssa appears');
      assert.equal(await ok(['delete', 'deploy', 'ssa', '--cascade=orphan']), 'deployment.apps "ssa" deleted');
      const orphans = await rsOf('ssa');
      assert.ok(orphans.length > 0 && orphans.every((r) => r.endsWith('=')), `orphaned: ${orphans.join(' ')}`);
      await ok(['delete', 'rs', '-l', 'app=ssa']);

      assert.equal(await ok(['delete', 'deploy', 'web', '--cascade=foreground', '--wait=false']), 'deployment.apps "web" deleted');
      assert.ok(await waitFor(async () => (await kubectl(['get', 'deploy', 'web'])).code !== 0), 'the Deployment goes once its dependents are gone');
      assert.deepEqual(await rsOf('web'), []);
    });
  });
});

/** kubectl with a kubeconfig and cache of a part's own, bounded in time. */
function kubectlAt(kubeconfig: string, cacheDir: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args], { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}
