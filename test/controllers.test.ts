// The control plane's decisions as plain data (node IPAM, scheduling, rollouts), then the
// controllers running against a real store: a Deployment keeps its replicas, rolls to a
// new template within maxSurge/maxUnavailable, and its pods go with it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Deployment, Node, Pod } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { Store } from '../src/apiserver/store.ts';
import { collectOrphans, planReplicas, podFromTemplate, syncDeployment, templateHash } from '../src/controllers/deployment.ts';
import { syncNamespace } from '../src/controllers/namespace.ts';
import { assignPodCIDRs } from '../src/controllers/nodeipam.ts';
import { pickNode } from '../src/controllers/scheduler.ts';
import { podPhase } from '../src/node/agent.ts';

const node = (name: string, podCIDR = '10.244.0.0/24', ready = true): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR }, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } });

function deployment(replicas: number, image = 'nginx', strategy?: Deployment['spec']['strategy']): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', uid: 'd-uid', generation: 1 },
    spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image }] } }, strategy },
  };
}

function running(p: Pod, name: string): Pod {
  return { ...p, metadata: { ...p.metadata, name, creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { ...p.spec, nodeName: 'n1' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
}

test('node IPAM: the lowest free podCIDR, kept for life', () => {
  const got = assignPodCIDRs([{ name: 'a', podCIDR: '10.244.1.0/24' }, { name: 'b' }, { name: 'c' }], '10.244.0.0/16', 24);
  assert.deepEqual([...got], [['b', '10.244.0.0/24'], ['c', '10.244.2.0/24']]);
  assert.throws(() => assignPodCIDRs([{ name: 'a' }, { name: 'b' }], '10.244.0.0/24', 24), /does not fit/);
});

test('scheduler: spreads a Deployment over ready nodes, never to a node without podCIDR', () => {
  const nodes = [node('n1'), node('n2'), node('n3', ''), node('n4', '10.244.3.0/24', false)];
  const d = deployment(4);
  const bound: Pod[] = [];
  for (let i = 0; i < 4; i++) {
    const p = podFromTemplate(d);
    const n = pickNode(p, nodes, bound) as string;
    bound.push({ ...p, spec: { ...p.spec, nodeName: n } });
  }
  assert.deepEqual(bound.map((p) => p.spec.nodeName).sort(), ['n1', 'n1', 'n2', 'n2']);
  assert.deepEqual(pickNode(podFromTemplate(d), [node('x', '', true)], []), { unschedulable: '0/1 nodes are available: 1 node(s) were not ready or had no pod network.' });
});

test('rollout: scale up and down, then a new template within maxSurge and maxUnavailable', () => {
  const d = deployment(4);
  assert.equal(planReplicas(d, []).create, 4);
  const pods = Array.from({ length: 4 }, (_, i) => running(podFromTemplate(d), `old-${i}`));
  assert.deepEqual(planReplicas(d, pods), { ...planReplicas(d, pods), create: 0, delete: [] });
  assert.equal(planReplicas(deployment(2), pods).delete.length, 2, 'scale down');
  assert.ok(planReplicas(d, pods).status.conditions!.some((c) => c.type === 'Available' && c.status === 'True'));

  // New image: 25% surge (1 pod) and 25% unavailable (1 pod) of 4.
  const next = deployment(4, 'nginx:2');
  assert.notEqual(templateHash(next.spec.template), templateHash(d.spec.template));
  const step1 = planReplicas(next, pods);
  assert.equal(step1.create, 1);
  assert.equal(step1.delete.length, 1);
  assert.equal(step1.status.updatedReplicas, 0);

  const recreate = planReplicas(deployment(4, 'nginx:2', { type: 'Recreate' }), pods);
  assert.equal(recreate.create, 0, 'Recreate starts nothing while old pods live');
  assert.equal(recreate.delete.length, 4);
});

test('Deployment controller on a store: pods with owner and hash, replaced on template change, collected when the owner goes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-ctrl-'));
  const store = new Store(join(dir, 'db'));
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    const d = api.create(deployment(3));
    syncDeployment(api, 'default', 'web');
    let pods = api.list('Pod', 'default').items as Pod[];
    assert.equal(pods.length, 3);
    const hash = templateHash(d.spec.template);
    for (const p of pods) {
      assert.equal(p.metadata.labels?.['pod-template-hash'], hash);
      assert.equal(p.metadata.ownerReferences?.[0]?.uid, d.metadata.uid);
      assert.match(p.metadata.name, new RegExp(`^web-${hash}-[a-z0-9]{5}$`));
    }
    // The scheduler binds them; the node agent reports them running and ready.
    for (const p of pods) api.mutate<Pod>({ kind: 'Pod', namespace: 'default', name: p.metadata.name }, (x) => ({ ...x, spec: { ...x.spec, nodeName: 'n1' } }));
    for (const p of pods) api.updateStatus({ kind: 'Pod', namespace: 'default', name: p.metadata.name }, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
    api.mutate<Deployment>({ kind: 'Deployment', namespace: 'default', name: 'web' }, (x) => ({ ...x, spec: { ...x.spec, template: { ...x.spec.template, spec: { containers: [{ name: 'web', image: 'nginx:2' }] } } } }));
    syncDeployment(api, 'default', 'web');
    pods = api.list('Pod', 'default').items as Pod[];
    const fresh = pods.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);
    assert.equal(fresh.length, 1, 'maxSurge 25% of 3 rounds up to 1');
    assert.equal(pods.length, 4, 'maxUnavailable 25% of 3 rounds down to 0: no old pod goes before a new one is ready');
    const status = (api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }) as Deployment).status!;
    assert.equal(status.updatedReplicas, 1);
    assert.equal(status.observedGeneration, 2);

    api.delete({ kind: 'Deployment', namespace: 'default', name: 'web' });
    assert.equal(collectOrphans(api), 4);
    assert.deepEqual(api.list('Pod').items.map((p) => Boolean(p.metadata.deletionTimestamp)), [true, true, true], 'the unbound new pod went at once; bound ones wait for their node');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a terminating namespace is emptied, then removed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-ns-'));
  const store = new Store(join(dir, 'db'));
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    api.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'c', image: 'x' }], nodeName: 'n1' } });
    api.delete({ kind: 'Namespace', name: 'shop' });
    assert.equal(syncNamespace(api, 'shop'), false);
    const p = api.get({ kind: 'Pod', namespace: 'shop', name: 'p' });
    assert.ok(p.metadata.deletionTimestamp, 'the bound pod waits for its node agent');
    api.finalize({ kind: 'Pod', namespace: 'shop', name: 'p' });
    assert.equal(syncNamespace(api, 'shop'), true);
    assert.equal(api.tryGet({ kind: 'Namespace', name: 'shop' }), undefined);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pod phase follows restartPolicy', () => {
  const done = (exitCode: number) => ({ terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed', finishedAt: '' } });
  assert.equal(podPhase('Always', [{ running: { startedAt: '' } }, done(1)]), 'Running');
  assert.equal(podPhase('Never', [done(0), done(0)]), 'Succeeded');
  assert.equal(podPhase('OnFailure', [done(0), done(2)]), 'Failed');
  assert.equal(podPhase('Always', [{ waiting: { reason: 'CrashLoopBackOff' } }]), 'Running');
  assert.equal(podPhase('Always', [{ waiting: { reason: 'ContainerCreating' } }]), 'Pending');
});
