// @kubernetes/client-node (the 1.x line, what Node operators and dashboards use) against a
// kubewire cluster with the kubeconfig `kubewire up` merged: typed clients, an informer that
// lists then watches, create / patch (merge, strategic, JSON) / server-side apply through the
// generic object client, exec and port-forward over its WebSocket channel protocols, logs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { request } from 'undici';
import { isRoot } from './helpers.ts';
import { Kube, waitFor, webApp } from './kube.ts';

const skip = !isRoot ? 'needs root to create network namespaces' : false;
const cluster = 'kcnode';
let scratch: string;
let kube: Kube;
let kc: k8s.KubeConfig;

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

/** A pod of the web Deployment once its rollout is done: Ready and not terminating. */
async function readyPod(): Promise<k8s.V1Pod> {
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await waitFor('the rollout of web', async () => {
    const d = await apps.readNamespacedDeployment({ namespace: 'default', name: 'web' });
    const s = d.status;
    return (d.metadata?.generation ?? 0) <= (s?.observedGeneration ?? 0) && s?.updatedReplicas === d.spec?.replicas && s?.replicas === s?.updatedReplicas && s?.availableReplicas === s?.updatedReplicas;
  }, 60_000);
  const pods = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' })).items;
  const ready = pods.find((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  assert.ok(ready, 'a ready web pod');
  return ready;
}

describe('@kubernetes/client-node 1.x against kubewire', { skip, timeout: 300_000 }, () => {
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kw-client-node-'));
    const kubeconfig = join(scratch, 'config');
    kube = new Kube(cluster, join(scratch, 'state'));
    const up = await kube.run(['up', '--nodes', '2'], { timeoutMs: 120_000, env: { KUBECONFIG: kubeconfig } });
    assert.equal(up.code, 0, up.stderr);
    kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    assert.equal(kc.getCurrentContext(), `kubewire-${cluster}`);
  });

  after(async () => {
    await kube?.run(['down'], { timeoutMs: 60_000, env: { KUBECONFIG: join(scratch, 'config') } });
    rmSync(scratch, { recursive: true, force: true });
  });

  test('typed clients and an informer: list, then every ADDED and MODIFIED of a rollout; create, patch three ways, server-side apply', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const nodes = await core.listNode();
    assert.equal(nodes.items.length, 2);
    const seen = new Map<string, string[]>();
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/default/pods', () => core.listNamespacedPod({ namespace: 'default' }));
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
      const created = await apps.createNamespacedDeployment({ namespace: 'default', body: deployment! });
      assert.equal(created.metadata?.name, 'web');
      await waitFor('two running pods seen by the informer', async () => [...seen.values()].filter((v) => v.some((e) => e.endsWith(':Running'))).length >= 2 || undefined, 60_000);
      assert.equal(informer.list('default').filter((p) => p.status?.phase === 'Running').length, 2, "the informer's cache");

      await apps.patchNamespacedDeployment({ namespace: 'default', name: 'web', body: { spec: { replicas: 3 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
      await apps.patchNamespacedDeployment({ namespace: 'default', name: 'web', body: [{ op: 'add', path: '/metadata/labels', value: { tier: 'front' } }] }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
      await apps.patchNamespacedDeployment({ namespace: 'default', name: 'web', body: { spec: { template: { spec: { containers: [{ name: 'web', env: [{ name: 'MODE', value: 'x' }] }] } } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
      const d = await apps.readNamespacedDeployment({ namespace: 'default', name: 'web' });
      assert.equal(d.spec?.replicas, 3);
      assert.equal(d.metadata?.labels?.tier, 'front');
      assert.deepEqual(JSON.parse(JSON.stringify(d.spec?.template.spec?.containers.map((c) => [c.name, c.image, c.env]))), [['web', 'kubewire/echo', [{ name: 'MODE', value: 'x' }]]]);

      const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
      const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'default' }, data: { a: '1' } };
      await objects.patch(cm, undefined, undefined, 'operator', true, k8s.PatchStrategy.ServerSideApply);
      const applied = await objects.read<k8s.V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'default' } });
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
      void new k8s.Exec(kc).exec('default', pod!.metadata!.name!, 'web', ['sh', '-c', 'cat; echo to-stderr >&2; exit 4'], out, err, stdin, false, resolve);
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
    const server = createServer((socket) => void forward.portForward('default', pod!.metadata!.name!, [8080], socket, null, socket));
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
    const [pod] = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' })).items;
    const text = await core.readNamespacedPodLog({ namespace: 'default', name: pod!.metadata!.name!, container: 'web', tailLines: 1 });
    assert.equal(typeof text, 'string');
    assert.ok(text.split('\n').filter(Boolean).length <= 1);
    const out = sink();
    // The library pipes the answer into the stream (its done callback is for errors only): the stream's end is the log's.
    const finished = new Promise<void>((resolve) => out.on('finish', resolve));
    await new k8s.Log(kc).log('default', pod!.metadata!.name!, 'web', out, { tailLines: 5 });
    await finished;
    assert.ok(out.text().split('\n').filter(Boolean).length <= 5);
  });
});
