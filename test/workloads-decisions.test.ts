// The manifests people bring, as data (no root): StatefulSet, DaemonSet and Job decisions
// and their controllers on an in-process API, the API server's wording for bad input, the
// table of fields kubewire ignores and its Warning headers, probe timing and the checks
// they make, and what a command container runs as and with.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConfigMap, Container, DaemonSet, Job, KubeObject, Node, Pod, Probe, Secret, Service, StatefulSet } from '../src/api/types.ts';
import { unimplementedFields, warningsFor } from '../src/api/unimplemented.ts';
import { validate } from '../src/api/validation.ts';
import { unknownFields } from '../src/api/fields.ts';
import { Api } from '../src/apiserver/api.ts';
import { parseWarnings } from '../src/client/rest.ts';
import { warningHeader } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { startContext, type ControllerContext } from '../src/controllers/context.ts';
import { planDaemonSet, syncDaemonSet } from '../src/controllers/daemonset.ts';
import { collectOrphans } from '../src/controllers/deployment.ts';
import { planJob, syncJob } from '../src/controllers/job.ts';
import { pickNode } from '../src/controllers/scheduler.ts';
import { ordinalOf, planStatefulSet, statefulPod, syncStatefulSet } from '../src/controllers/statefulset.ts';
import { ContainerConfigError, containerEnv, passwdGroups, runAs, serviceEnv, servicesForEnv } from '../src/node/container-config.ts';
import { grpcHealthRequest, grpcServing, initialProbeState, observeProbe, probeCommand, type ProbeState } from '../src/node/probes.ts';

const template = (labels: Record<string, string>, extra: Partial<Pod['spec']> = {}) => ({ metadata: { labels }, spec: { containers: [{ name: 'c', image: 'kubewire/echo', ports: [{ name: 'http', containerPort: 8080 }] }], ...extra } });

function sts(replicas: number, extra: Partial<StatefulSet['spec']> = {}): StatefulSet {
  return { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web', namespace: 'default', uid: 's-uid', generation: 1 }, spec: { replicas, serviceName: 'web', selector: { matchLabels: { app: 'web' } }, template: template({ app: 'web' }), ...extra } };
}

const readyPod = (p: Pod): Pod => ({ ...p, spec: { ...p.spec, nodeName: p.spec.nodeName ?? 'n1' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } });
const runningNotReady = (p: Pod): Pod => ({ ...p, spec: { ...p.spec, nodeName: 'n1' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] } });

const node = (name: string, labels: Record<string, string> = {}, podCIDR = '10.244.0.0/24'): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } }, spec: podCIDR ? { podCIDR } : {}, status: { conditions: [{ type: 'Ready', status: 'True' }] } });

/** A store with namespace default, and the controllers' context over it (informers listed). */
async function withApi(fn: (api: Api, ctx: ControllerContext) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-wl-'));
  const store = new Store(join(dir, 'db'));
  let ctx: Awaited<ReturnType<typeof startContext>> | undefined;
  try {
    const api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    ctx = await startContext(new LocalClient(api, { shareObjects: true }));
    await fn(api, ctx);
  } finally {
    ctx?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('StatefulSet: ordinal pods with hostname and subdomain; OrderedReady makes one at a time, each once the one before is ready', () => {
  const s = sts(3);
  assert.deepEqual(planStatefulSet(s, []).create, [0], 'only web-0 first');
  const p0 = statefulPod(s, 0);
  assert.equal(p0.metadata.name, 'web-0');
  assert.equal(p0.spec.hostname, 'web-0');
  assert.equal(p0.spec.subdomain, 'web');
  assert.equal(p0.metadata.labels?.['statefulset.kubernetes.io/pod-name'], 'web-0');
  assert.equal(p0.metadata.labels?.['apps.kubernetes.io/pod-index'], '0');
  assert.deepEqual(planStatefulSet(s, [runningNotReady(p0)]).create, [], 'web-1 waits for web-0 to be Ready');
  assert.deepEqual(planStatefulSet(s, [readyPod(p0)]).create, [1]);
  assert.deepEqual(planStatefulSet(sts(3, { podManagementPolicy: 'Parallel' }), []).create, [0, 1, 2], 'Parallel: all at once');
  assert.equal(ordinalOf('web', 'web-12'), 12);
  assert.equal(ordinalOf('web', 'web-01'), undefined);
  assert.equal(ordinalOf('web', 'webby-1'), undefined);
});

test('StatefulSet: scale down from the highest ordinal, one at a time while the rest are healthy; a failed pod is made again', () => {
  const s = sts(3);
  const pods = [0, 1, 2, 3, 4].map((i) => readyPod(statefulPod(sts(5), i)));
  const down = planStatefulSet(s, pods);
  assert.deepEqual(down.delete.map((p) => p.metadata.name), ['web-4']);
  const terminating = { ...pods[4]!, metadata: { ...pods[4]!.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
  assert.deepEqual(planStatefulSet(s, [...pods.slice(0, 4), terminating]).delete, [], 'web-3 waits for web-4 to be gone');
  assert.deepEqual(planStatefulSet(sts(3, { podManagementPolicy: 'Parallel' }), pods).delete.map((p) => p.metadata.name), ['web-4', 'web-3']);
  const failed = { ...pods[1]!, status: { phase: 'Failed' as const } };
  assert.deepEqual(planStatefulSet(s, [pods[0]!, failed, pods[2]!]).delete.map((p) => p.metadata.name), ['web-1']);
  assert.deepEqual(planStatefulSet(s, [pods[0]!, pods[2]!]).create, [1], 'the missing ordinal is made again under its name');
  const st = planStatefulSet(s, pods.slice(0, 3)).status;
  assert.equal(st.replicas, 3);
  assert.equal(st.readyReplicas, 3);
});

test('StatefulSet: a new template replaces the highest ordinal first; OnDelete waits', () => {
  const old = [0, 1, 2].map((i) => readyPod(statefulPod(sts(3), i)));
  const next = sts(3, { template: template({ app: 'web' }, { terminationGracePeriodSeconds: 5 }) });
  assert.deepEqual(planStatefulSet(next, old).delete.map((p) => p.metadata.name), ['web-2']);
  assert.deepEqual(planStatefulSet({ ...next, spec: { ...next.spec, updateStrategy: { type: 'OnDelete' } } }, old).delete, []);
  assert.equal(planStatefulSet(next, old).status.updatedReplicas, 0);
});

test('StatefulSet controller on a store: web-0, then web-1 once web-0 is ready; scale down; the pods go with the set', async () => {
  await withApi(async (api, ctx) => {
    api.create(sts(2));
    await syncStatefulSet(ctx, 'default', 'web');
    assert.deepEqual(api.list('Pod', 'default').items.map((p) => p.metadata.name), ['web-0']);
    await syncStatefulSet(ctx, 'default', 'web');
    assert.equal(api.list('Pod', 'default').items.length, 1, 'still one: web-0 is not ready');
    api.mutate<Pod>({ kind: 'Pod', namespace: 'default', name: 'web-0' }, (x) => ({ ...x, spec: { ...x.spec, nodeName: 'n1' } }));
    api.updateStatus({ kind: 'Pod', namespace: 'default', name: 'web-0' }, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
    await syncStatefulSet(ctx, 'default', 'web');
    assert.deepEqual(api.list('Pod', 'default').items.map((p) => p.metadata.name).sort(), ['web-0', 'web-1']);
    const status = (api.get({ kind: 'StatefulSet', namespace: 'default', name: 'web' }) as StatefulSet).status!;
    assert.equal(status.replicas, 2);
    assert.equal(status.readyReplicas, 1);
    api.delete({ kind: 'StatefulSet', namespace: 'default', name: 'web' });
    assert.equal(await collectOrphans(ctx), 2);
    assert.deepEqual(api.list('Pod', 'default').items.map((p) => p.metadata.name), ['web-0'], 'the unbound web-1 went at once; web-0 waits for its node');
  });
});

test('DaemonSet: a pod per node its nodeSelector picks, bound to it; pods on nodes that stop matching go', async () => {
  const ds: DaemonSet = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: 'default', uid: 'ds-uid' }, spec: { selector: { matchLabels: { app: 'agent' } }, template: template({ app: 'agent' }) } };
  const nodes = [node('n1', { disk: 'ssd' }), node('n2'), node('n3', {}, '')];
  assert.deepEqual(planDaemonSet(ds, nodes, []).create, ['n1', 'n2'], 'n3 has no pod network yet');
  const picky: DaemonSet = { ...ds, spec: { ...ds.spec, template: template({ app: 'agent' }, { nodeSelector: { disk: 'ssd' } }) } };
  const plan = planDaemonSet(picky, nodes, []);
  assert.deepEqual(plan.create, ['n1']);
  assert.equal(plan.status.desiredNumberScheduled, 1);
  const onN2 = readyPod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-x', namespace: 'default' }, spec: { nodeName: 'n2', containers: [] } });
  const after = planDaemonSet(picky, nodes, [onN2]);
  assert.deepEqual(after.delete.map((p) => p.metadata.name), ['agent-x']);
  assert.equal(after.status.numberMisscheduled, 1);
  await withApi(async (api, ctx) => {
    for (const n of nodes) api.create(n, { system: true });
    api.create(ds);
    await syncDaemonSet(ctx, 'default', 'agent');
    const pods = api.list('Pod', 'default').items as Pod[];
    assert.deepEqual(pods.map((p) => p.spec.nodeName).sort(), ['n1', 'n2']);
    assert.ok(pods.every((p) => p.metadata.ownerReferences?.[0]?.kind === 'DaemonSet' && /^agent-[a-z0-9]{5}$/.test(p.metadata.name)));
    await syncDaemonSet(ctx, 'default', 'agent');
    assert.equal(api.list('Pod', 'default').items.length, 2, 'idempotent');
    assert.equal((api.get({ kind: 'DaemonSet', namespace: 'default', name: 'agent' }) as DaemonSet).status?.currentNumberScheduled, 2);
  });
});

test('scheduler: nodeSelector picks the nodes; none matching says so', () => {
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { nodeSelector: { disk: 'ssd' }, containers: [] } };
  assert.equal(pickNode(pod, [node('n1'), node('n2', { disk: 'ssd' })], []), 'n2');
  assert.deepEqual(pickNode(pod, [node('n1')], []), { unschedulable: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." });
});

function job(extra: Partial<Job['spec']> = {}, status?: Job['status']): Job {
  return { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'once', namespace: 'default', uid: 'j-uid' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox', command: ['true'] }] } }, ...extra }, ...(status ? { status } : {}) };
}
const jobPodIn = (phase: Pod['status'] extends infer S ? S extends { phase?: infer P } ? P : never : never, name: string, restarts = 0): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { nodeName: 'n1', containers: [] }, status: { phase, containerStatuses: [{ name: 'c', image: 'busybox', ready: false, started: false, restartCount: restarts, state: {} }] } });

test('Job: parallelism pods at a time until completions succeeded (Complete); more than backoffLimit failures (Failed)', () => {
  const stamp = '2026-01-01T00:00:00Z';
  assert.equal(planJob(job(), [], stamp).create, 1, 'completions and parallelism default to 1');
  assert.equal(planJob(job({ completions: 5, parallelism: 2 }), [], stamp).create, 2);
  assert.equal(planJob(job({ completions: 5, parallelism: 2 }), [jobPodIn('Succeeded', 'a'), jobPodIn('Succeeded', 'b'), jobPodIn('Succeeded', 'c'), jobPodIn('Succeeded', 'd')], stamp).create, 1, 'one more to go');
  const done = planJob(job({ completions: 2 }), [jobPodIn('Succeeded', 'a'), jobPodIn('Succeeded', 'b')], stamp);
  assert.equal(done.finished, 'Complete');
  assert.ok(done.status.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'));
  assert.equal(done.status.completionTime, stamp);
  assert.equal(done.status.succeeded, 2);
  const failed = planJob(job({ backoffLimit: 1 }), [jobPodIn('Failed', 'a'), jobPodIn('Failed', 'b'), jobPodIn('Running', 'c')], stamp);
  assert.equal(failed.finished, 'Failed');
  assert.ok(failed.status.conditions?.some((c) => c.type === 'Failed' && c.reason === 'BackoffLimitExceeded'));
  assert.deepEqual(failed.delete.map((p) => p.metadata.name), ['c'], 'what still runs is stopped');
  const onFailure = job({ backoffLimit: 2, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'c', image: 'x', command: ['false'] }] } } });
  assert.equal(planJob(onFailure, [jobPodIn('Running', 'a', 3)], stamp).finished, 'Failed', "OnFailure: the container's restarts count");
  assert.equal(planJob(job({ parallelism: 2 }), [jobPodIn('Succeeded', 'a'), jobPodIn('Running', 'b')], stamp).finished, undefined, 'a work queue: done when one succeeded and none runs');
  assert.equal(planJob(job({ parallelism: 2 }), [jobPodIn('Succeeded', 'a')], stamp).finished, 'Complete');
  assert.equal(planJob(job({}, { conditions: [{ type: 'Complete', status: 'True' }] }), [], stamp).create, 0, 'a finished Job stays finished');
  const failedAt = (name: string, at: string): Pod => ({ ...jobPodIn('Failed', name), status: { phase: 'Failed', containerStatuses: [{ name: 'c', image: 'x', ready: false, started: false, restartCount: 0, state: { terminated: { exitCode: 1, reason: 'Error', finishedAt: at } } }] } });
  const held = planJob(job(), [failedAt('a', stamp)], stamp);
  assert.deepEqual([held.create, held.retryInMs], [0, 10_000], "a failed pod's replacement waits 10 s");
  assert.equal(planJob(job(), [failedAt('a', stamp)], stamp, Date.parse(stamp) + 10_001).create, 1);
  assert.equal(planJob(job(), [failedAt('a', stamp), failedAt('b', stamp)], stamp, Date.parse(stamp) + 10_001).retryInMs, 9_999, 'doubled after the second failure');
});

test('Job controller on a store: pods labelled with the job, Complete once they succeeded', async () => {
  await withApi(async (api, ctx) => {
    api.create(job({ completions: 2, parallelism: 2 }));
    await syncJob(ctx, 'default', 'once');
    const pods = api.list('Pod', 'default').items as Pod[];
    assert.equal(pods.length, 2);
    assert.ok(pods.every((p) => p.metadata.labels?.['job-name'] === 'once' && p.metadata.labels?.['batch.kubernetes.io/job-name'] === 'once' && p.spec.restartPolicy === 'Never'));
    for (const p of pods) api.updateStatus({ kind: 'Pod', namespace: 'default', name: p.metadata.name }, { phase: 'Succeeded' });
    await syncJob(ctx, 'default', 'once');
    const j = api.get({ kind: 'Job', namespace: 'default', name: 'once' }) as Job;
    assert.equal(j.status?.succeeded, 2);
    assert.ok(j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'));
    assert.equal(api.list('Pod', 'default').items.length, 2, 'finished pods are kept');
  });
});

test("bad input: the API server's wording, naming the object and the field, and nothing stored", async () => {
  await withApi(async (api) => {
    const noService = sts(1, { serviceName: undefined as unknown as string });
    assert.throws(() => api.create(noService), /^.*StatefulSet\.apps "web" is invalid: spec\.serviceName: Required value/);
    assert.throws(() => api.create(job({ template: { spec: { containers: [{ name: 'c', image: 'x' }] } } })), /Job\.batch "once" is invalid: spec\.template\.spec\.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"/); // defaulted to Always first, as upstream
    assert.throws(() => api.create({ ...sts(1), spec: { ...sts(1).spec, template: template({ app: 'other' }) } }), /spec\.template\.metadata\.labels: Invalid value: `selector` does not match template `labels`/);
    const probe: Probe = { httpGet: { port: 'nope', path: 'x' }, periodSeconds: 0 };
    const bad = { ...sts(1), spec: { ...sts(1).spec, template: { ...template({ app: 'web' }), spec: { containers: [{ name: 'c', image: 'x', readinessProbe: probe, livenessProbe: { exec: { command: ['true'] }, successThreshold: 2 }, securityContext: { runAsUser: -1 } }] } } } } as StatefulSet;
    const fields = validate(bad).map((e) => e.field);
    assert.deepEqual(fields.sort(), ['spec.template.spec.containers[0].livenessProbe.successThreshold', 'spec.template.spec.containers[0].readinessProbe.httpGet.path', 'spec.template.spec.containers[0].readinessProbe.httpGet.port', 'spec.template.spec.containers[0].readinessProbe.periodSeconds', 'spec.template.spec.containers[0].securityContext.runAsUser'].sort());
    assert.throws(() => api.apply([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', namespace: 'default' }, data: { a: 'b' } } as ConfigMap, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bad', namespace: 'default' }, data: { 'a b': 'c' } } as ConfigMap]), /ConfigMap "bad" is invalid: data\[a b\]/);
    assert.equal(api.list('ConfigMap', 'default').items.length, 0, 'the whole apply or nothing');
    assert.equal(api.list('StatefulSet', 'default').items.length, 0);
    assert.deepEqual(unknownFields({ ...sts(1), spec: { ...sts(1).spec, replica: 3 } } as unknown as Record<string, unknown>), ['spec.replica']);
    assert.deepEqual(validate({ ...sts(1), metadata: { name: 'web.v1' } }).map((e) => e.field), ['metadata.name'], "a StatefulSet's name is a DNS label: its pods' names are hostnames");
    api.create(sts(1));
    assert.throws(() => api.update({ ...sts(1), spec: { ...sts(1).spec, serviceName: 'other' } }), /StatefulSet\.apps "web" is invalid: spec: Forbidden: updates to statefulset spec for fields other than/);
  });
});

test('fields kubewire ignores are named, and only those; Warning headers carry them and the client reads them back', () => {
  const d = sts(1, {
    volumeClaimTemplates: [{ metadata: { name: 'data' } }],
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        volumes: [{ name: 'v', emptyDir: {} }],
        securityContext: { runAsUser: 1000, fsGroup: 2000 },
        containers: [
          { name: 'cmd', image: 'x', command: ['sleep', '9'], resources: { limits: { cpu: '1' } }, volumeMounts: [{ name: 'v', mountPath: '/v' }], readinessProbe: { tcpSocket: { port: 1 } } } as Container,
          { name: 'builtin', image: 'kubewire/echo', ports: [{ containerPort: 8080 }] },
        ],
      },
    },
  });
  assert.deepEqual(unimplementedFields(d).map((u) => u.field), [
    'spec.volumeClaimTemplates',
    'spec.template.spec.volumes',
    'spec.template.spec.securityContext.fsGroup',
    'spec.template.spec.containers[0].resources',
    'spec.template.spec.containers[0].volumeMounts',
    'spec.template.spec.containers[1].securityContext.runAsUser',
  ]);
  assert.match(warningsFor(d)[5]!, /built-in workload inside the workload host, which cannot drop privileges/);
  assert.deepEqual(unimplementedFields(sts(2)), [], 'a plain StatefulSet: no warning');
  assert.deepEqual(unimplementedFields(job({ suspend: false, completionMode: 'NonIndexed' })), [], 'values that change nothing: no warning');
  assert.deepEqual(unimplementedFields(job({ ttlSecondsAfterFinished: 100 })).map((u) => u.field), ['spec.ttlSecondsAfterFinished']);
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { initContainers: [{ name: 'i', image: 'x' }], containers: [{ name: 'c', image: 'x', command: ['true'], securityContext: { runAsUser: 1, privileged: true } }] } };
  assert.deepEqual(unimplementedFields(pod).map((u) => u.field), ['spec.initContainers', 'spec.containers[0].securityContext.privileged']);
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/8'], allocateLoadBalancerNodePorts: true, ports: [{ port: 80 }] } } as KubeObject;
  assert.deepEqual(unimplementedFields(svc).map((u) => u.field), ['spec.loadBalancerSourceRanges']);
  assert.deepEqual(warningsFor({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app' } }), ['stored only: no tokens are made or mounted, and nothing is authorized by it']);
  assert.deepEqual(validate({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'App' } }).map((e) => e.field), ['metadata.name']);
  const texts = ['statefulset.apps/web: spec.volumes: say "hi" \\ there', 'pod/p: é'];
  assert.deepEqual(parseWarnings(warningHeader(texts)), ['statefulset.apps/web: spec.volumes: say "hi" \\ there', 'pod/p: ?']);
  assert.deepEqual(parseWarnings([warningHeader(texts).join(', ')]), ['statefulset.apps/web: spec.volumes: say "hi" \\ there', 'pod/p: ?'], 'several in one header value');
});

test("probes: upstream's thresholds; readiness starts failed, liveness succeeded; liveness trips and holds", () => {
  const p: Probe = { httpGet: { port: 80 }, failureThreshold: 3, successThreshold: 2 };
  let r = initialProbeState('readiness');
  assert.equal(r.result, false);
  const step = (kind: 'readiness' | 'liveness' | 'startup', s: ProbeState, ok: boolean, probe = p) => observeProbe(kind, probe, s, ok);
  let o = step('readiness', r, true);
  assert.deepEqual([o.state.result, o.changed], [false, false], 'one success of two');
  o = step('readiness', o.state, true);
  assert.deepEqual([o.state.result, o.changed], [true, true]);
  r = o.state;
  for (let i = 0; i < 2; i++) r = step('readiness', r, false).state;
  assert.equal(r.result, true, 'two failures of three');
  o = step('readiness', r, false);
  assert.deepEqual([o.state.result, o.changed, o.tripped], [false, true, false], 'readiness never trips');
  let l = initialProbeState('liveness');
  assert.equal(l.result, true);
  const lp: Probe = { exec: { command: ['x'] }, failureThreshold: 2 };
  l = step('liveness', l, false, lp).state;
  o = step('liveness', l, false, lp);
  assert.deepEqual([o.state.result, o.tripped, o.state.onHold], [false, true, true]);
  const s = step('startup', initialProbeState('startup'), true, { tcpSocket: { port: 1 } });
  assert.deepEqual([s.state.done, s.changed], [true, true], 'startup is done after its first success');
});

test('probe checks: curl from the node to the pod IP, nc for tcpSocket, a gRPC health frame, exec in the pod as its user', () => {
  const c: Container = { name: 'web', image: 'x', ports: [{ name: 'http', containerPort: 8080 }] };
  const t = { podIP: '10.244.1.5', podNetns: '/run/netns/pod', nodeNetns: '/run/netns/node', user: { uid: 65534, gid: 65534 } };
  const http = probeCommand({ httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'X-A', value: 'b' }] }, timeoutSeconds: 2 }, c, t);
  assert.ok(typeof http !== 'string');
  assert.equal(http.netns, '/run/netns/node');
  assert.deepEqual(http.argv, ['nc', '-N', '-w', '2', '10.244.1.5', '8080']);
  assert.equal(http.input, 'GET /healthz HTTP/1.1\r\nHost: 10.244.1.5:8080\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nX-A: b\r\nConnection: close\r\n\r\n');
  assert.deepEqual(http.judge('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), { ok: true, message: '' });
  assert.deepEqual(http.judge('HTTP/1.1 302 Found\r\n\r\n'), { ok: true, message: '' }, '3xx counts as success');
  assert.deepEqual(http.judge('HTTP/1.1 404 Not Found\r\n\r\n'), { ok: false, message: 'HTTP probe failed with statuscode: 404' });
  assert.equal(http.judge('').ok, false, 'no answer');
  const https = probeCommand({ httpGet: { path: '/', port: 8443, scheme: 'HTTPS', httpHeaders: [{ name: 'Host', value: 'a.example' }] } }, c, t);
  assert.ok(typeof https !== 'string');
  assert.equal(https.argv[0], 'curl');
  assert.equal(https.argv.at(-1), 'https://10.244.1.5:8443/');
  assert.ok(https.argv.includes('Host: a.example'));
  assert.deepEqual(https.judge('503'), { ok: false, message: 'HTTP probe failed with statuscode: 503' });
  const tcp = probeCommand({ tcpSocket: { port: 8080 } }, c, t);
  assert.ok(typeof tcp !== 'string');
  assert.deepEqual(tcp.argv, ['nc', '-z', '-w', '1', '10.244.1.5', '8080']);
  assert.equal(probeCommand({ tcpSocket: { port: 'nope' } }, c, t), 'port "nope" is not a port of container web');
  const exec = probeCommand({ exec: { command: ['cat', '/tmp/ok'] } }, c, t);
  assert.ok(typeof exec !== 'string');
  assert.equal(exec.netns, '/run/netns/pod');
  assert.deepEqual(exec.argv, ['timeout', '-s', 'KILL', '1s', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', 'cat', '/tmp/ok']);
  assert.equal(grpcHealthRequest(''), '\x00\x00\x00\x00\x00');
  assert.equal(grpcHealthRequest('db'), '\x00\x00\x00\x00\x04\x0a\x02db');
  assert.equal(grpcServing('\x00\x00\x00\x00\x02\x08\x01'), true);
  assert.equal(grpcServing('\x00\x00\x00\x00\x02\x08\x02'), false, 'NOT_SERVING');
  assert.equal(grpcServing(''), false);
});

test('a command container runs as runAsUser/runAsGroup (the container over the pod), its group from passwd; env from ConfigMaps, Secrets and the pod', () => {
  const groups = passwdGroups('root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  const pod = (sc?: Pod['spec']['securityContext'], csc?: Container['securityContext']): [Pod, Container] => {
    const c: Container = { name: 'c', image: 'x', command: ['id'], ...(csc ? { securityContext: csc } : {}) };
    return [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: 'u1', labels: { tier: 'db' } }, spec: { nodeName: 'n1', containers: [c], ...(sc ? { securityContext: sc } : {}) } }, c];
  };
  assert.equal(runAs(...pod(), groups), undefined, 'as kubewire runs: root');
  assert.deepEqual(runAs(...pod({ runAsUser: 65534 }), groups), { uid: 65534, gid: 65534 });
  assert.deepEqual(runAs(...pod({ runAsUser: 65534 }, { runAsUser: 1000 }), groups), { uid: 1000, gid: 0 }, "the container's wins; an unknown user's group is 0");
  assert.deepEqual(runAs(...pod({ runAsUser: 1000, runAsGroup: 3000 }, { runAsGroup: 4000 }), groups), { uid: 1000, gid: 4000 });
  assert.throws(() => runAs(...pod({ runAsNonRoot: true }), groups), ContainerConfigError);
  assert.deepEqual(runAs(...pod({ runAsNonRoot: true, runAsUser: 7 }), groups), { uid: 7, gid: 0 });

  const cm: ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { MODE: 'fast', LEVEL: '3' } };
  const secret: Secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, data: { PASSWORD: Buffer.from('s3cret').toString('base64') } };
  const src = { configMap: (n: string) => (n === 'cfg' ? cm : undefined), secret: (n: string) => (n === 'creds' ? secret : undefined) };
  const [p, c] = pod();
  c.envFrom = [{ configMapRef: { name: 'cfg' }, prefix: 'APP_' }];
  c.env = [
    { name: 'APP_MODE', value: 'slow' },
    { name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'PASSWORD' } } },
    { name: 'LVL', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'LEVEL' } } },
    { name: 'ME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'TIER', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
    { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
  ];
  assert.deepEqual(containerEnv(p, c, src, { podIP: '10.244.0.9', hostIP: '172.18.0.11' }), { APP_MODE: 'slow', APP_LEVEL: '3', PW: 's3cret', LVL: '3', ME: 'p', TIER: 'db', IP: '10.244.0.9' });
  c.env = [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k' } } }];
  assert.throws(() => containerEnv(p, c, src, { podIP: '', hostIP: '' }), /configmap "missing" not found/);
  c.env = [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k', optional: true } } }];
  assert.deepEqual(containerEnv(p, c, src, { podIP: '', hostIP: '' }), { APP_MODE: 'fast', APP_LEVEL: '3' });
});

test("Services' variables, as the kubelet sets them: the namespace's and default/kubernetes; the user's own win; enableServiceLinks: false keeps only the API server's", () => {
  const svc = (namespace: string, name: string, clusterIP: string, ports: Array<{ name?: string; port: number; protocol?: string }>): Service =>
    ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { clusterIP, ports } }) as unknown as Service;
  const all = [
    svc('default', 'kubernetes', '10.96.0.1', [{ name: 'https', port: 443, protocol: 'TCP' }]),
    svc('shop', 'redis-primary', '10.96.12.7', [{ port: 6379 }, { name: 'metrics', port: 9121, protocol: 'TCP' }]),
    svc('shop', 'dns-like', '10.96.0.99', [{ name: 'dns', port: 53, protocol: 'UDP' }]),
    svc('shop', 'headless', 'None', [{ port: 80 }]),
    svc('other', 'elsewhere', '10.96.3.3', [{ port: 80 }]),
  ];
  const p = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'c', image: 'x' }] } } as unknown as Pod;
  assert.deepEqual(servicesForEnv(p, all).map((s) => s.metadata.name), ['dns-like', 'headless', 'kubernetes', 'redis-primary']);
  const env = serviceEnv(servicesForEnv(p, all));
  // Upstream's names for upstream's example (kubernetes.io "Discovering services": REDIS_PRIMARY_SERVICE_HOST...).
  assert.deepEqual(Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('REDIS_PRIMARY'))), {
    REDIS_PRIMARY_SERVICE_HOST: '10.96.12.7',
    REDIS_PRIMARY_SERVICE_PORT: '6379',
    REDIS_PRIMARY_SERVICE_PORT_METRICS: '9121',
    REDIS_PRIMARY_PORT: 'tcp://10.96.12.7:6379',
    REDIS_PRIMARY_PORT_6379_TCP: 'tcp://10.96.12.7:6379',
    REDIS_PRIMARY_PORT_6379_TCP_PROTO: 'tcp',
    REDIS_PRIMARY_PORT_6379_TCP_PORT: '6379',
    REDIS_PRIMARY_PORT_6379_TCP_ADDR: '10.96.12.7',
    REDIS_PRIMARY_PORT_9121_TCP: 'tcp://10.96.12.7:9121',
    REDIS_PRIMARY_PORT_9121_TCP_PROTO: 'tcp',
    REDIS_PRIMARY_PORT_9121_TCP_PORT: '9121',
    REDIS_PRIMARY_PORT_9121_TCP_ADDR: '10.96.12.7',
  });
  assert.equal(env.KUBERNETES_SERVICE_HOST, '10.96.0.1');
  assert.equal(env.KUBERNETES_SERVICE_PORT_HTTPS, '443');
  assert.equal(env.DNS_LIKE_PORT_53_UDP, 'udp://10.96.0.99:53');
  assert.ok(!Object.keys(env).some((k) => k.startsWith('HEADLESS') || k.startsWith('ELSEWHERE')), 'no ClusterIP, or another namespace: no variables');
  const noLinks = { ...p, spec: { ...p.spec, enableServiceLinks: false } } as Pod;
  assert.deepEqual(servicesForEnv(noLinks, all).map((s) => s.metadata.name), ['kubernetes']);
  const c = { name: 'c', image: 'x', env: [{ name: 'REDIS_PRIMARY_SERVICE_HOST', value: 'mine' }] } as Container;
  const none = { configMap: () => undefined, secret: () => undefined, services: () => servicesForEnv(p, all) };
  assert.equal(containerEnv(p, c, none, { podIP: '', hostIP: '' }).REDIS_PRIMARY_SERVICE_HOST, 'mine', "the user's own variable wins");
});

test('create configmap: literals and files as data, binary files as binaryData, bad keys refused', async () => {
  const { configMapOf } = await import('../src/cli/create.ts');
  const dir = mkdtempSync(join(tmpdir(), 'kwt-cm-'));
  try {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'app.conf'), 'port=80\n');
    writeFileSync(join(dir, 'blob'), Buffer.from([0xff, 0x00, 0xfe]));
    const cm = configMapOf('cfg', 'default', ['MODE=fast'], [join(dir, 'app.conf'), `raw=${join(dir, 'blob')}`]);
    assert.deepEqual(cm.data, { MODE: 'fast', 'app.conf': 'port=80\n' });
    assert.deepEqual(cm.binaryData, { raw: '/wD+' });
    assert.deepEqual(validate(cm), []);
    assert.throws(() => configMapOf('cfg', 'default', ['a b=c'], []), /not a valid key name/);
    assert.throws(() => configMapOf('cfg', 'default', ['A=1', 'A=2'], []), /another key by that name already exists/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the probe manager: a probe at once (no initial delay), startup gating the others, a trip reported, a new container instance starting afresh', async () => {
  const { ProbeManager } = await import('../src/node/probes.ts');
  const calls: string[] = [];
  const seen: string[] = [];
  let healthy = true;
  const mgr = new ProbeManager(
    async (_netns, argv) => {
      calls.push(argv.join(' '));
      if (argv.includes('/startup-ok')) return '';
      if (argv.join(' ').includes('never')) throw new Error('nsenter ...: exit code 1');
      if (!healthy) throw new Error('nsenter ...: exit code 1');
      return '';
    },
    { changed: (k) => seen.push(`changed ${k}`), failed: (_k, c, kind, m) => seen.push(`failed ${c} ${kind}: ${m}`), tripped: (_k, c, kind) => seen.push(`tripped ${c} ${kind}`) },
  );
  const t = { podIP: '10.244.0.9', podNetns: '/p', nodeNetns: '/n' };
  const settle = () => new Promise((r) => setTimeout(r, 100));
  try {
    const gated: Container = { name: 'g', image: 'x', startupProbe: { exec: { command: ['never'] }, periodSeconds: 60, failureThreshold: 5 }, readinessProbe: { exec: { command: ['ok'] }, periodSeconds: 60 } };
    mgr.ensure('default/p', 'u1', gated, 'i1', t);
    await settle();
    assert.deepEqual(calls, ['timeout -s KILL 1s never'], 'readiness waits for the startup probe');
    assert.deepEqual([mgr.started('u1', 'g'), mgr.ready('u1', 'g')], [false, false]);

    const live: Container = { name: 'l', image: 'x', readinessProbe: { exec: { command: ['ok'] }, periodSeconds: 60 }, livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 60, failureThreshold: 1 } };
    assert.equal(mgr.ready('u1', 'l'), true, 'no probes known yet: as a container without probes');
    healthy = false;
    mgr.ensure('default/p', 'u1', live, 'i1', t);
    await settle();
    assert.equal(mgr.ready('u1', 'l'), false);
    assert.ok(seen.includes('tripped l liveness'), seen.join('\n'));
    assert.ok(seen.some((s) => s === 'failed l liveness: Liveness probe failed: command "alive" exited with code 1'), seen.join('\n'));
    healthy = true;
    mgr.ensure('default/p', 'u1', live, 'i1', t);
    await settle();
    assert.equal(mgr.ready('u1', 'l'), false, 'the same instance: no new probe before its period');
    mgr.ensure('default/p', 'u1', live, 'i2', t);
    await settle();
    assert.equal(mgr.ready('u1', 'l'), true, 'a new instance is probed afresh');
    assert.ok(seen.includes('changed default/p'));
    mgr.hold('u1', 'l');
    const before = calls.length;
    mgr.ensure('default/p', 'u1', live, 'i2', t);
    await settle();
    assert.equal(calls.length, before, 'a held instance (being killed) is not probed again by a sync');
  } finally {
    mgr.stop();
  }
});

test("a node's workload host that dies is started again at once; one that keeps dying young backs off to 30 s", async () => {
  const { restartDelayMs, nodeHostPaths } = await import('../src/workloads/client.ts');
  assert.deepEqual([0, 1, 2, 3, 4, 8, 20].map(restartDelayMs), [0, 0, 500, 1000, 2000, 30_000, 30_000]);
  assert.deepEqual(nodeHostPaths('/s/c', 'c-node-1'), { socket: '/s/c/nodes/c-node-1/workloads.sock', pidFile: '/s/c/nodes/c-node-1/workloads.pid', log: '/s/c/nodes/c-node-1/workloads.log' });
});
