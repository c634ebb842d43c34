// What keeps one manifest from flooding the control plane, against a real store: pods made
// by the ReplicaSet in slow-start batches of at most 32 per sync, the cluster's pod limit refusing
// the rest as a quota does (ReplicaFailure on the ReplicaSet and its Deployment, one counted Event), generated names
// drawn again on a collision, Events combined and rate-limited as client-go's recorder does,
// nodes full at their maxPods, pods of missing nodes collected, and a work queue that lets
// the event loop breathe between keys.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freeGeneratedName, generateName } from '../src/api/names.ts';
import type { Deployment, Event, Node, Pod } from '../src/api/types.ts';
import { Api, ApplyError } from '../src/apiserver/api.ts';
import { COMBINED_PREFIX, EventRecorder } from '../src/apiserver/events.ts';
import { Store, StoreError } from '../src/apiserver/store.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { startContext, type ControllerContext } from '../src/controllers/context.ts';
import { BURST_REPLICAS, slowStart, syncDeployment } from '../src/controllers/deployment.ts';
import { syncReplicaSet } from '../src/controllers/replicaset.ts';
import { ORPHAN_QUARANTINE_MS, collectPodsOfMissingNodes, orphanedPods } from '../src/controllers/podgc.ts';
import { WorkQueue } from '../src/apiserver/workqueue.ts';
import { pickNode, schedulePending } from '../src/controllers/scheduler.ts';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'kwt-flood-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

let stores = 0;
function freshApi(podLimit?: number): { api: Api; store: Store } {
  const store = new Store(join(dir, `db${stores++}`));
  const api = new Api(store, podLimit === undefined ? {} : { podLimit: { pods: podLimit, why: 'test limit' } });
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  return { api, store };
}

/** The controllers' context over `api` (informers listed), stopped with the store. */
const contexts: Array<{ stop(): void }> = [];
after(() => contexts.forEach((c) => c.stop()));
async function contextOf(api: Api): Promise<ControllerContext> {
  const ctx = await startContext(new LocalClient(api, { shareObjects: true }));
  contexts.push(ctx);
  return ctx;
}

const deployment = (replicas: number): Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'default' },
  spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
});

const node = (name: string, pods?: number): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: '10.244.0.0/24' }, status: { conditions: [{ type: 'Ready', status: 'True' }], ...(pods === undefined ? {} : { allocatable: { pods: String(pods) } }) } });

test('slow start: batches of 1, 2, 4... and the first failure stops it', async () => {
  let calls = 0;
  assert.deepEqual(await slowStart(10, () => void calls++), { done: 10 });
  assert.equal(calls, 10);
  calls = 0;
  const r = await slowStart(1000, () => {
    if (++calls > 5) throw new Error('quota');
  });
  assert.equal(r.done, 5);
  assert.equal(calls, 6, 'one failing call, not 995');
});

test(`replicas: 1000000000 under a pod limit of 120: 120 pods, ReplicaFailure, one counted FailedCreate Event, never more than ${BURST_REPLICAS} a sync`, async () => {
  const { api, store } = freshApi(120);
  const ctx = await contextOf(api);
  try {
    api.create(deployment(1_000_000_000));
    const events = new EventRecorder(api, 'replicaset-controller');
    await syncDeployment(ctx, 'default', 'web');
    const [rs] = api.list('ReplicaSet', 'default').items;
    const syncRS = () => syncReplicaSet(ctx, 'default', rs!.metadata.name, events);
    const t0 = performance.now();
    let syncs = 1;
    for (let requeue = await syncRS(); requeue === 'now' && syncs < 10; syncs++) {
      assert.ok(api.list('Pod').items.length <= syncs * BURST_REPLICAS, `at most ${BURST_REPLICAS} a sync`);
      requeue = await syncRS();
    }
    const ms = performance.now() - t0;
    assert.equal(api.list('Pod').items.length, 120);
    assert.equal(syncs, Math.ceil(120 / BURST_REPLICAS), 'the sync that met the limit stopped asking for more');
    for (let i = 0; i < 5; i++) assert.equal(await syncRS(), 'backoff', 'a refused creation backs off');
    assert.equal(api.list('Pod').items.length, 120, 'still the limit');
    await syncDeployment(ctx, 'default', 'web');
    const d = api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }) as Deployment;
    const failure = d.status!.conditions!.find((c) => c.type === 'ReplicaFailure');
    assert.equal(failure?.reason, 'FailedCreate', 'the ReplicaSet\'s failure shows on its Deployment');
    assert.match(failure!.message!, /^Error creating: pods "web-[a-z0-9]+-" is forbidden: exceeded quota: cluster-pod-limit, requested: pods=1, used: pods=120, limited: pods=120 \(test limit\)$/);
    const all = api.list('Event').items as Event[];
    const failed = all.filter((e) => e.reason === 'FailedCreate');
    assert.equal(failed.length, 1, 'one Event for the refusals');
    assert.equal(failed[0]!.count, 6);
    assert.ok(all.length <= 30, `a storm of SuccessfulCreate became a few Events (got ${all.length})`);
    assert.ok(all.some((e) => e.message.startsWith(COMBINED_PREFIX)), 'combined from similar events');
    assert.ok(ms < 5000, `${ms} ms`);
    // Scaled down to what fits, the condition goes.
    api.mutate<Deployment>({ kind: 'Deployment', namespace: 'default', name: 'web' }, (x) => ({ ...x, spec: { ...x.spec, replicas: 100 } }));
    await syncDeployment(ctx, 'default', 'web');
    await syncRS();
    await syncDeployment(ctx, 'default', 'web');
    const after = api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }) as Deployment;
    assert.equal(after.status!.conditions!.some((c) => c.type === 'ReplicaFailure'), false);
  } finally {
    store.close();
  }
});

test(`without a limit, a sync creates at most ${BURST_REPLICAS} and asks to be called again`, async () => {
  const { api, store } = freshApi();
  const ctx = await contextOf(api);
  try {
    const replicas = 3 * BURST_REPLICAS - 1;
    api.create(deployment(replicas));
    await syncDeployment(ctx, 'default', 'web');
    const [rs] = api.list('ReplicaSet', 'default').items;
    assert.equal(await syncReplicaSet(ctx, 'default', rs!.metadata.name), 'now');
    assert.equal(api.list('Pod').items.length, BURST_REPLICAS);
    assert.equal(await syncReplicaSet(ctx, 'default', rs!.metadata.name), 'now');
    assert.equal(await syncReplicaSet(ctx, 'default', rs!.metadata.name), undefined);
    const names = api.list('Pod').items.map((p) => p.metadata.name);
    assert.equal(names.length, replicas);
    assert.equal(new Set(names).size, replicas);
  } finally {
    store.close();
  }
});

test('generateName: a taken name is drawn again; the pod limit names the prefix; the limit counts pods that still run', () => {
  const { api, store } = freshApi(3);
  try {
    const pod = (n?: string): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: n ? { name: n, namespace: 'default' } : { name: '', generateName: 'x-', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
    // Every name of the 1-letter space but one taken: generation retries and lands on the free one, or says so.
    const made = api.create(pod());
    assert.match(made.metadata.name, /^x-[a-z0-9]{5}$/);
    api.create(pod('a'));
    api.create(pod('b'));
    assert.throws(() => api.create(pod()), (e: unknown) => e instanceof StoreError && e.code === 403 && /pods "x-" is forbidden: exceeded quota/.test(e.message));
    api.updateStatus({ kind: 'Pod', namespace: 'default', name: 'a' }, { phase: 'Succeeded' });
    assert.ok(api.create(pod('c')), 'a pod that ran to completion frees its place');
  } finally {
    store.close();
  }
  // Collisions, with a drawing that repeats itself: the taken names are skipped, and after every try, a clear refusal.
  const draws = ['x-aaaaa', 'x-aaaaa', 'x-bbbbb'];
  const taken = new Set(['x-aaaaa']);
  assert.equal(freeGeneratedName('x-', (n) => taken.has(n), 8, () => draws.shift()!), 'x-bbbbb');
  assert.equal(freeGeneratedName('x-', () => true, 8), undefined);
  assert.match(generateName('a'.repeat(80)), /^a{58}[a-z0-9]{5}$/, 'the prefix is cut so the name stays a DNS label');
});

test('events: identical ones counted, more than 10 messages of a reason combined, 25 per object and type then one per 5 minutes', () => {
  const { api, store } = freshApi();
  try {
    let t = 1_000_000;
    const recorder = new EventRecorder(api, 'test', undefined, () => t);
    const pod = api.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
    for (let i = 0; i < 3; i++) recorder.record(pod, 'Warning', 'BackOff', 'same');
    let events = api.list('Event').items as Event[];
    assert.deepEqual(events.map((e) => [e.message, e.count]), [['same', 3]]);
    for (let i = 0; i < 30; i++) recorder.record(pod, 'Normal', 'Created', `message ${i}`);
    events = api.list('Event').items as Event[];
    const created = events.filter((e) => e.reason === 'Created');
    assert.equal(created.length, 11, '10 distinct, then one combined');
    const combined = created.find((e) => e.message.startsWith(COMBINED_PREFIX))!;
    // 10 + combined ones: the object's 25 tokens for Normal events were spent at the 25th.
    assert.equal(combined.count, 25 - 10);
    recorder.record(pod, 'Warning', 'BackOff', 'same');
    assert.equal((api.list('Event').items as Event[]).find((e) => e.reason === 'BackOff')!.count, 4, 'Warnings have their own tokens: a Normal storm never hides them');
    t += 5 * 60 * 1000; // one token back
    recorder.record(pod, 'Normal', 'Created', 'message late');
    recorder.record(pod, 'Normal', 'Created', 'message later');
    const again = (api.list('Event').items as Event[]).find((e) => e.message.startsWith(COMBINED_PREFIX))!;
    assert.equal(again.count, combined.count + 1);
    assert.equal(again.message, `${COMBINED_PREFIX}message late`);
  } finally {
    store.close();
  }
});

test("scheduler: a node takes its allocatable pods; a pod nobody can take stays Pending with FailedScheduling", async () => {
  const { api, store } = freshApi();
  const ctx = await contextOf(api);
  try {
    for (const n of [node('n1', 2), node('n2', 1)]) api.create(n, { system: true });
    const events = new EventRecorder(api, 'default-scheduler');
    for (let i = 0; i < 4; i++) api.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
    assert.equal(await schedulePending(ctx, events), 3);
    const pods = api.list('Pod').items as Pod[];
    assert.deepEqual(pods.map((p) => p.spec.nodeName ?? '-').sort(), ['-', 'n1', 'n1', 'n2']);
    const failed = (api.list('Event').items as Event[]).filter((e) => e.reason === 'FailedScheduling');
    assert.deepEqual(failed.map((e) => e.message), ['0/2 nodes are available: 2 Too many pods.']);
    assert.deepEqual(pickNode(pods[0]!, [node('n1', 0)], []), { unschedulable: '0/1 nodes are available: 1 Too many pods.' });
  } finally {
    store.close();
  }
});

test('pods of a node that does not exist: a Warning, then gone after the quarantine; terminating ones at once', async () => {
  const since = new Map<string, number>();
  const pod = (name: string, nodeName: string, deleting = false): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', uid: name, ...(deleting ? { deletionTimestamp: 'x' } : {}) }, spec: { nodeName, containers: [] } });
  const pods = [pod('ok', 'n1'), pod('lost', 'ghost'), pod('leaving', 'ghost', true)];
  const first = orphanedPods(pods, new Set(['n1']), since, 0);
  assert.deepEqual([first.found.map((p) => p.metadata.name), first.remove.map((p) => p.metadata.name), first.recheckInMs], [['lost', 'leaving'], ['leaving'], ORPHAN_QUARANTINE_MS]);
  const later = orphanedPods(pods.slice(0, 2), new Set(['n1']), since, ORPHAN_QUARANTINE_MS);
  assert.deepEqual([later.found.length, later.remove.map((p) => p.metadata.name)], [0, ['lost']]);
  assert.deepEqual([...since.keys()], ['lost'], 'forgotten once gone');

  const { api, store } = freshApi();
  const ctx = await contextOf(api);
  try {
    api.create(node('n1'), { system: true });
    api.create<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stray', namespace: 'default' }, spec: { nodeName: 'nowhere', containers: [{ name: 'c', image: 'i' }] } });
    const seen = new Map<string, number>();
    const events = new EventRecorder(api, 'pod-garbage-collector');
    assert.equal(await collectPodsOfMissingNodes(ctx, seen, events, 0), ORPHAN_QUARANTINE_MS);
    const warning = (api.list('Event').items as Event[]).find((e) => e.reason === 'NodeNotFound');
    assert.match(warning!.message, /node "nowhere" does not exist: the pod cannot start, and is deleted in 40 s/);
    assert.equal((api.get({ kind: 'Pod', namespace: 'default', name: 'stray' }) as Pod).status?.phase, 'Pending');
    api.delete({ kind: 'Pod', namespace: 'default', name: 'stray' });
    assert.ok(api.get({ kind: 'Pod', namespace: 'default', name: 'stray' }).metadata.deletionTimestamp, 'graceful: waits for a node agent that will never come');
    await collectPodsOfMissingNodes(ctx, seen, events, 1);
    assert.equal(api.tryGet({ kind: 'Pod', namespace: 'default', name: 'stray' }), undefined, 'so the collector finishes it');
  } finally {
    store.close();
  }
});

test('the work queue yields to the event loop between keys', async () => {
  let ticks = 0;
  const tick = setInterval(() => ticks++, 1);
  const handled: number[] = [];
  const q = new WorkQueue((key) => {
    const end = performance.now() + 5;
    while (performance.now() < end); // 5 ms of synchronous work per key
    handled.push(ticks);
  });
  for (let i = 0; i < 40; i++) q.add(`k${i}`);
  await q.idle();
  clearInterval(tick);
  assert.equal(handled.length, 40);
  assert.ok(new Set(handled).size > 10, `timers ran between keys (tick counts seen: ${[...new Set(handled)].join(',')})`);
});

test('a 2,000-object apply with one bad object in the middle changes nothing and names the object', () => {
  const { api, store } = freshApi();
  try {
    const items = Array.from({ length: 1000 }, (_, i) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'default' }, spec: { clusterIP: `10.100.${(i + 1) >> 8}.${(i + 1) & 255}`, ports: [{ port: 80 }] } }));
    const bad = structuredClone(items);
    bad[500]!.spec.clusterIP = bad[499]!.spec.clusterIP; // taken by the one before, in the same apply
    const rv = store.currentRV();
    assert.throws(() => api.apply(bad), (e: unknown) => e instanceof ApplyError && e.index === 500 && /Service "s500" is invalid: spec\.clusterIPs: Invalid value: \["10\.100\.1\.244"\]: failed to allocate IP 10\.100\.1\.244: provided IP is already allocated/.test(e.message));
    assert.equal(store.count('Service'), 0, 'nothing was applied');
    assert.equal(store.currentRV(), rv, 'not even a resourceVersion');
    assert.deepEqual(new Set(api.apply(items)), new Set(['created']));
    assert.equal(store.count('Service'), 1000);
    const again = api.apply(items.map((s, i) => (i === 7 ? { ...s, metadata: { ...s.metadata, labels: { changed: 'yes' } } } : s)));
    assert.deepEqual([again[7], again.filter((r) => r === 'unchanged').length], ['configured', 999]);
  } finally {
    store.close();
  }
});
