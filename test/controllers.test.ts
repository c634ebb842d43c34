// The control plane's decisions as plain data (node IPAM, scheduling, rollouts), then the
// controllers running against a real store: a Deployment keeps its replicas, rolls to a
// new template within maxSurge/maxUnavailable, and its pods go with it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Deployment, Node, Pod, ReplicaSet } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { startContext } from '../src/controllers/context.ts';
import { ControllerManager } from '../src/controllers/manager.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store, StoreError } from '../src/apiserver/store.ts';
import { retryOnConflict, updateWithRetry } from '../src/apiserver/retry.ts';
import { ApiClient } from '../src/client/rest.ts';
import { resourceOfKind } from '../src/api/resources.ts';
import { collectOrphans, planRollout, replicaSetOf, REVISION_ANNOTATION, syncDeployment, templateHash, type OwnedReplicaSet } from '../src/controllers/deployment.ts';
import { planReplicaSet, podOfReplicaSet, syncReplicaSet } from '../src/controllers/replicaset.ts';
import { endpointsOf } from '../src/controllers/endpoints.ts';
import { ensureDefaultServiceAccount } from '../src/controllers/namespace.ts';
import { microTime, renewedLease } from '../src/node/lease.ts';
import { endpointsColumn } from '../src/cli/print.ts';
import type { EndpointSlice, Service } from '../src/api/types.ts';
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

/** The pod a Deployment's current ReplicaSet makes (what the scheduler sees). */
const podFromTemplate = (d: Deployment) => podOfReplicaSet(replicaSetOf(d, d.spec.replicas ?? 1, 1));

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

/** A ReplicaSet of the Deployment's template as the controller made it, with `ready` running pods. */
function owned(d: Deployment, replicas: number, ready: number, revision: number, created = '2026-01-01T00:00:0' + revision + 'Z'): OwnedReplicaSet {
  const rs = replicaSetOf(d, replicas, revision);
  rs.metadata.uid = `rs-${revision}`;
  rs.metadata.creationTimestamp = created;
  return { rs, pods: Array.from({ length: ready }, (_, i) => running(podOfReplicaSet(rs), `${rs.metadata.name}-${i}`)) };
}

test('ReplicaSet: creates what is missing, removes the most expendable first', () => {
  const d = deployment(3);
  const { rs, pods } = owned(d, 3, 2, 1);
  assert.equal(planReplicaSet(rs, pods).create, 1);
  const pending = { ...podOfReplicaSet(rs), metadata: { ...podOfReplicaSet(rs).metadata, name: 'unscheduled' } };
  const plan = planReplicaSet({ ...rs, spec: { ...rs.spec, replicas: 2 } }, [...pods, pending]);
  assert.deepEqual(plan.delete.map((p) => p.metadata.name), ['unscheduled'], 'an unscheduled pod goes before running ones');
  assert.equal(plan.status.replicas, 3);
  assert.equal(plan.status.readyReplicas, 2);
  assert.match(String(podOfReplicaSet(rs).metadata.generateName), new RegExp(`^web-${templateHash(d.spec.template)}-$`));
  assert.equal(podOfReplicaSet(rs).metadata.ownerReferences![0]!.kind, 'ReplicaSet');
});

test('rollout: a ReplicaSet per template, scaled within maxSurge and maxUnavailable; Recreate; rollback; history', () => {
  const d = deployment(4);
  const first = planRollout(d, []);
  assert.equal(first.create?.spec.replicas, 4);
  assert.equal(first.create?.metadata.name, `web-${templateHash(d.spec.template)}`);
  assert.equal(first.create?.metadata.annotations?.[REVISION_ANNOTATION], '1');
  assert.equal(first.create?.spec.selector.matchLabels?.['pod-template-hash'], templateHash(d.spec.template));
  const steady = owned(d, 4, 4, 1);
  assert.equal(planRollout(d, [steady]).scale.size, 0, 'nothing to do');
  assert.ok(planRollout(d, [steady]).status.conditions!.some((c) => c.type === 'Available' && c.status === 'True'));
  assert.deepEqual([...planRollout(deployment(2), [owned(deployment(2), 4, 4, 1)]).scale], [[steady.rs.metadata.name, { replicas: 2 }]], 'scale down');

  // New image: 25% surge (1 pod) and 25% unavailable (1 pod) of 4.
  const next = deployment(4, 'nginx:2');
  const step1 = planRollout(next, [owned(d, 4, 4, 1)]);
  assert.equal(step1.create?.spec.replicas, 1, 'the new ReplicaSet starts at maxSurge');
  assert.equal(step1.create?.metadata.annotations?.[REVISION_ANNOTATION], '2');
  assert.deepEqual(step1.scale.get(steady.rs.metadata.name), { replicas: 3 }, 'one old pod may go: 3 of 4 stay available');
  assert.equal(step1.status.updatedReplicas, 0);
  // The new pod is ready: the new ReplicaSet grows by one more, the old one shrinks by one more.
  const step2 = planRollout(next, [owned(d, 3, 3, 1), owned(next, 1, 1, 2)]);
  assert.deepEqual(step2.scale.get(`web-${templateHash(next.spec.template)}`), { replicas: 2 });
  assert.deepEqual(step2.scale.get(steady.rs.metadata.name), { replicas: 2 });

  const recreate = deployment(4, 'nginx:2', { type: 'Recreate' });
  const r1 = planRollout(recreate, [owned(d, 4, 4, 1)]);
  assert.equal(r1.create?.spec.replicas, 0, 'Recreate starts nothing while old pods live');
  assert.deepEqual(r1.scale.get(steady.rs.metadata.name), { replicas: 0 });
  assert.equal(planRollout(recreate, [owned(d, 0, 0, 1), owned(recreate, 0, 0, 2)]).scale.get(`web-${templateHash(recreate.spec.template)}`)?.replicas, 4, 'then all at once');

  // Back to the first template: its ReplicaSet becomes the newest revision.
  const back = planRollout(d, [owned(d, 0, 0, 1), owned(next, 4, 4, 2)]);
  assert.equal(back.create, undefined);
  assert.deepEqual(back.scale.get(steady.rs.metadata.name), { replicas: 1, revision: '3' });

  // History: idle old ReplicaSets beyond revisionHistoryLimit go, oldest first.
  const images = ['a', 'b', 'c', 'd'].map((i) => deployment(2, i));
  const limited = { ...images[3]!, spec: { ...images[3]!.spec, revisionHistoryLimit: 1 } };
  const history = planRollout(limited, [owned(images[0]!, 0, 0, 1), owned(images[1]!, 0, 0, 2), owned(images[2]!, 0, 0, 3), owned(images[3]!, 2, 2, 4)]);
  assert.deepEqual(history.prune, [1, 2].map((i) => `web-${templateHash(images[i - 1]!.spec.template)}`));
});

test('Deployment controller on a store: a ReplicaSet, its pods with owner and hash, a new ReplicaSet on template change, all collected when the owner goes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-ctrl-'));
  const store = new Store(join(dir, 'db'));
  let ctx: Awaited<ReturnType<typeof startContext>> | undefined;
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    ctx = await startContext(new LocalClient(api, { shareObjects: true }));
    const d = api.create(deployment(3));
    const hash = templateHash(d.spec.template);
    const sync = async () => {
      await syncDeployment(ctx!, 'default', 'web');
      for (const rs of api.list('ReplicaSet', 'default').items) await syncReplicaSet(ctx!, 'default', rs.metadata.name);
      await syncDeployment(ctx!, 'default', 'web');
    };
    await sync();
    const rs = api.get({ kind: 'ReplicaSet', namespace: 'default', name: `web-${hash}` }) as ReplicaSet;
    assert.equal(rs.metadata.ownerReferences?.[0]?.uid, d.metadata.uid);
    let pods = api.list('Pod', 'default').items as Pod[];
    assert.equal(pods.length, 3);
    for (const p of pods) {
      assert.equal(p.metadata.labels?.['pod-template-hash'], hash);
      assert.equal(p.metadata.ownerReferences?.[0]?.uid, rs.metadata.uid);
      assert.match(p.metadata.name, new RegExp(`^web-${hash}-[a-z0-9]{5}$`));
    }
    // The scheduler binds them; the node agent reports them running and ready.
    for (const p of pods) api.mutate<Pod>({ kind: 'Pod', namespace: 'default', name: p.metadata.name }, (x) => ({ ...x, spec: { ...x.spec, nodeName: 'n1' } }));
    for (const p of pods) api.updateStatus({ kind: 'Pod', namespace: 'default', name: p.metadata.name }, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
    api.mutate<Deployment>({ kind: 'Deployment', namespace: 'default', name: 'web' }, (x) => ({ ...x, spec: { ...x.spec, template: { ...x.spec.template, spec: { containers: [{ name: 'web', image: 'nginx:2' }] } } } }));
    await sync();
    pods = api.list('Pod', 'default').items as Pod[];
    const fresh = pods.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);
    assert.equal(fresh.length, 1, 'maxSurge 25% of 3 rounds up to 1');
    assert.equal(pods.length, 4, 'maxUnavailable 25% of 3 rounds down to 0: no old pod goes before a new one is ready');
    assert.deepEqual(api.list('ReplicaSet', 'default').items.map((r) => r.metadata.annotations?.[REVISION_ANNOTATION]).sort(), ['1', '2']);
    const status = (api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }) as Deployment).status!;
    assert.equal(status.updatedReplicas, 1);
    assert.equal(status.observedGeneration, 2);

    api.delete({ kind: 'Deployment', namespace: 'default', name: 'web' });
    assert.equal(await collectOrphans(ctx), 2 + 4, 'both ReplicaSets, then their pods');
    assert.deepEqual(api.list('Pod').items.map((p) => Boolean(p.metadata.deletionTimestamp)), [true, true, true], 'the unbound new pod went at once; bound ones wait for their node');
  } finally {
    ctx?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a terminating namespace is emptied, then removed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-ns-'));
  const store = new Store(join(dir, 'db'));
  let ctx: Awaited<ReturnType<typeof startContext>> | undefined;
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    ctx = await startContext(new LocalClient(api, { shareObjects: true }));
    api.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'c', image: 'x' }], nodeName: 'n1' } });
    api.delete({ kind: 'Namespace', name: 'shop' });
    assert.equal(await syncNamespace(ctx, 'shop'), false);
    const p = api.get({ kind: 'Pod', namespace: 'shop', name: 'p' });
    assert.ok(p.metadata.deletionTimestamp, 'the bound pod waits for its node agent');
    api.finalize({ kind: 'Pod', namespace: 'shop', name: 'p' });
    assert.equal(await syncNamespace(ctx, 'shop'), true);
    assert.equal(api.tryGet({ kind: 'Namespace', name: 'shop' }), undefined);
  } finally {
    ctx?.stop();
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

test('Endpoints mirrored from slices: one subset per port set, not-ready apart, terminating left out; kubectl\'s column', () => {
  const svc: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } };
  const slice = (name: string, endpoints: EndpointSlice['endpoints']): EndpointSlice => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'default' }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints });
  const ep = endpointsOf(svc, [
    slice('a', [{ addresses: ['10.244.2.3'], conditions: { ready: true }, nodeName: 'n2', targetRef: { kind: 'Pod', name: 'web-b', namespace: 'default' } }, { addresses: ['10.244.1.9'], conditions: { ready: false } }]),
    slice('b', [{ addresses: ['10.244.1.2'], conditions: { ready: true } }, { addresses: ['10.244.1.7'], conditions: { ready: false, terminating: true } }]),
  ]);
  assert.deepEqual(ep.subsets, [{ ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], addresses: [{ ip: '10.244.1.2' }, { ip: '10.244.2.3', nodeName: 'n2', targetRef: { kind: 'Pod', name: 'web-b', namespace: 'default' } }], notReadyAddresses: [{ ip: '10.244.1.9' }] }]);
  assert.equal(ep.metadata.name, 'web');
  assert.equal(endpointsOf(svc, []).subsets, undefined, 'no endpoints: no subsets, as upstream');
  assert.equal(endpointsColumn(ep.subsets), '10.244.1.2:8080,10.244.2.3:8080');
  assert.equal(endpointsColumn([{ addresses: [1, 2, 3, 4, 5].map((i) => ({ ip: `10.0.0.${i}` })), ports: [{ port: 80 }] }]), '10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...');
  assert.equal(endpointsColumn(undefined), '<none>');
});

test('node Lease: created in kube-node-lease owned by its Node, renewed with a MicroTime', () => {
  const at = new Date('2026-12-06T10:00:00.123Z');
  assert.equal(microTime(at), '2026-12-06T10:00:00.123000Z');
  const lease = renewedLease({ name: 'n1', uid: 'u1' }, at);
  assert.deepEqual([lease.metadata.namespace, lease.spec.holderIdentity, lease.spec.leaseDurationSeconds, lease.metadata.ownerReferences?.[0]?.uid], ['kube-node-lease', 'n1', 40, 'u1']);
  const later = renewedLease({ name: 'n1' }, new Date('2026-12-06T10:00:10Z'), { ...lease, metadata: { ...lease.metadata, resourceVersion: '7' } });
  assert.equal(later.spec.renewTime, '2026-12-06T10:00:10.000000Z');
  assert.equal(later.metadata.resourceVersion, '7', 'an update of the one read');
});

test('every live namespace gets its default ServiceAccount, once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-sa-'));
  const store = new Store(join(dir, 'db'));
  let ctx: Awaited<ReturnType<typeof startContext>> | undefined;
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    ctx = await startContext(new LocalClient(api, { shareObjects: true }));
    await ensureDefaultServiceAccount(ctx, 'shop');
    await ensureDefaultServiceAccount(ctx, 'shop');
    assert.deepEqual(api.list('ServiceAccount', 'shop').items.map((o) => o.metadata.name), ['default']);
    await ensureDefaultServiceAccount(ctx, 'missing');
    assert.equal(api.list('ServiceAccount').items.length, 1, 'none for a namespace that does not exist');
  } finally {
    ctx?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the seam: the controllers over the REST API (the daemon\'s socket) as in process: a Deployment\'s pods, scheduled; a namespace emptied and finalized; writes retried on conflict', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-seam-'));
  const store = new Store(join(dir, 'db'));
  const api = new Api(store);
  const server = new ApiServer(api);
  await server.listen(join(dir, 'api.sock'));
  const client = new ApiClient(join(dir, 'api.sock'));
  const errors: string[] = [];
  const manager = new ControllerManager(client, { nodeCIDRMask: 24, clusterCIDR: '10.244.0.0/16', log: (l) => errors.push(l), resyncMs: 200 });
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(ok(), `${what} within 5 s (controller log: ${errors.join('; ')})`);
  };
  try {
    for (const name of ['default', 'shop']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    api.create({ ...node('n1'), spec: {} }, { system: true });
    await manager.start();
    await until('node IPAM gives n1 a podCIDR', () => Boolean((api.get({ kind: 'Node', name: 'n1' }) as Node).spec.podCIDR));
    api.create({ ...deployment(3), metadata: { name: 'web', namespace: 'shop' } });
    const pods = () => api.list('Pod', 'shop').items as Pod[];
    await until('3 pods, each bound to n1', () => pods().length === 3 && pods().every((p) => p.spec.nodeName === 'n1'));
    assert.equal(api.list('ReplicaSet', 'shop').items.length, 1);
    await until('default ServiceAccounts', () => api.list('ServiceAccount').items.length === 2);
    api.delete({ kind: 'Namespace', name: 'shop' });
    // Bound pods wait for their node agent: here the test is the agent (the kubelet's delete with its uid).
    await until('the namespace controller deletes the pods', () => pods().every((p) => p.metadata.deletionTimestamp));
    for (const p of pods()) await client.delete(resourceOfKind('Pod'), 'shop', p.metadata.name, { gracePeriodSeconds: 0, preconditions: { uid: p.metadata.uid } });
    await until('the namespace is finalized', () => !api.tryGet({ kind: 'Namespace', name: 'shop' }));
    // RetryOnConflict: a write that lost the race reads again and goes in.
    const stale = api.get({ kind: 'Node', name: 'n1' }) as Node;
    api.mutate<Node>({ kind: 'Node', name: 'n1' }, (n) => ({ ...n, metadata: { ...n.metadata, labels: { a: '1' } } }));
    let tries = 0;
    const updated = await updateWithRetry<Node>(client, resourceOfKind('Node'), stale, (n) => (tries++, { ...n, metadata: { ...n.metadata, labels: { ...n.metadata.labels, b: '2' } } }));
    assert.deepEqual([updated.metadata.labels, tries], [{ a: '1', b: '2' }, 2]);
    await assert.rejects(retryOnConflict(async () => { throw new StoreError('Invalid', 'no'); }), /no/, 'other failures are not retried');
    assert.deepEqual(errors.filter((e) => !/Conflict|modified/.test(e)), []);
  } finally {
    manager.stop();
    client.close();
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
