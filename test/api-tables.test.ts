// Server-side Tables (what `kubectl get` prints), upstream's defaults on create, watch
// timeoutSeconds and list limit/continue. Three parts:
//   1. pure: each kind's cells against what upstream's printers print for the same object
//      (kubernetes/kubernetes pkg/printers/internalversion/printers.go), Accept negotiation,
//      pagination, defaults;
//   2. the API server over its unix socket in a temporary directory (no root): Tables on
//      list, get and watch, 406, includeObject, timeoutSeconds, limit/continue;
//   3. root: a cluster "kapitab" over its api.sock, and the real kubectl v1.32 against its
//      HTTPS listener when the cluster has one (skipped with the reason otherwise).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultImagePullPolicy } from '../src/api/defaults/core.ts';
import { withDefaults } from '../src/api/defaults/index.ts';
import { RESOURCES } from '../src/api/resources.ts';
import { warningsFor } from '../src/api/unimplemented.ts';
import type { KubeObject } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { negotiateView } from '../src/apiserver/negotiate.ts';
import { decodeContinue, page } from '../src/apiserver/paging.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { humanDuration, PRINTERS, printerOf } from '../src/apiserver/tables.ts';
import { osImageOf } from '../src/node/node-info.ts';
import { daemonPaths } from '../src/state/paths.ts';
import { NOT_ROOT } from './helpers.ts';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, namespace: 'default', creationTimestamp: ago(303), ...extra });
const cells = (kind: string, obj: Record<string, unknown>) => printerOf(kind).row(obj, NOW).cells;
const names = (kind: string) => printerOf(kind).columns.map((c) => (c.priority ? `|${c.name}` : c.name)).join(' ');

test('humanDuration is apimachinery duration.HumanDuration', () => {
  const s = 1000;
  const cases: Array<[number, string]> = [
    [-3 * s, '<invalid>'], [-1.5 * s, '0s'], [0, '0s'], [119 * s, '119s'], [120 * s, '2m'], [303 * s, '5m3s'], [600 * s, '10m'],
    [179 * 60 * s, '179m'], [3 * 3600 * s, '3h'], [(3 * 3600 + 1200) * s, '3h20m'], [47 * 3600 * s, '47h'], [48 * 3600 * s, '2d'],
    [50 * 3600 * s, '2d2h'], [8 * 86400 * s, '8d'], [400 * 86400 * s, '400d'], [730 * 86400 * s, '2y'], [800 * 86400 * s, '2y70d'], [3000 * 86400 * s, '8y'],
  ];
  for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms} ms`);
});

test('every served kind has upstream printer columns (priority-1 columns after |)', () => {
  for (const rt of RESOURCES) assert.ok(PRINTERS[rt.kind], `${rt.kind} has no printer`);
  const want: Record<string, string> = {
    Pod: 'Name Ready Status Restarts Age |IP |Node |Nominated Node |Readiness Gates',
    Deployment: 'Name Ready Up-to-date Available Age |Containers |Images |Selector',
    ReplicaSet: 'Name Desired Current Ready Age |Containers |Images |Selector',
    StatefulSet: 'Name Ready Age |Containers |Images',
    DaemonSet: 'Name Desired Current Ready Up-to-date Available Node Selector Age |Containers |Images |Selector',
    Job: 'Name Status Completions Duration Age |Containers |Images |Selector',
    Service: 'Name Type Cluster-IP External-IP Port(s) Age |Selector',
    Endpoints: 'Name Endpoints Age',
    EndpointSlice: 'Name AddressType Ports Endpoints Age',
    Ingress: 'Name Class Hosts Address Ports Age',
    IngressClass: 'Name Controller Parameters Age',
    Node: 'Name Status Roles Age Version |Internal-IP |External-IP |OS-Image |Kernel-Version |Container-Runtime',
    Namespace: 'Name Status Age',
    Event: 'Last Seen Type Reason Object |Subobject |Source Message |First Seen |Count |Name',
    Secret: 'Name Type Data Age',
    ConfigMap: 'Name Data Age',
    ServiceAccount: 'Name Secrets Age',
    Lease: 'Name Holder Age',
  };
  for (const [kind, cols] of Object.entries(want)) assert.equal(names(kind), cols, kind);
  const pod = PRINTERS.Pod!.columns;
  assert.equal(pod[0]!.format, 'name');
  assert.equal(pod[3]!.type, 'string', 'Restarts is a string since "(Xs ago)"');
  assert.match(pod[0]!.description, /^Name must be unique within a namespace/);
  assert.match(pod[5]!.description, /^podIP address allocated to the pod/);
});

describe('pod cells as kubectl get pods prints them', () => {
  const pod = (status: Record<string, unknown>, spec: Record<string, unknown> = {}, m: Record<string, unknown> = {}) => ({
    kind: 'Pod',
    metadata: meta('web-1', m),
    spec: { containers: [{ name: 'web', image: 'nginx' }], ...spec },
    status,
  });
  const running = { state: { running: { startedAt: ago(300) } }, ready: true, restartCount: 0, name: 'web' };
  test('Running, 1/1, wide columns with <none>', () => {
    assert.deepEqual(cells('Pod', pod({ phase: 'Running', podIPs: [{ ip: '10.244.1.5' }], containerStatuses: [running] }, { nodeName: 'kw-node-1' })), ['web-1', '1/1', 'Running', '0', '5m3s', '10.244.1.5', 'kw-node-1', '<none>', '<none>']);
    assert.deepEqual(cells('Pod', pod({ phase: 'Pending' })), ['web-1', '0/1', 'Pending', '0', '5m3s', '<none>', '<none>', '<none>', '<none>']);
  });
  test('CrashLoopBackOff with restarts and when the last one was', () => {
    const c = { name: 'web', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: ago(30) } } };
    assert.deepEqual(cells('Pod', pod({ phase: 'Running', containerStatuses: [c] })).slice(1, 4), ['0/1', 'CrashLoopBackOff', '3 (30s ago)']);
  });
  test('Completed (with the row condition), Error, ExitCode, Evicted, NotReady', () => {
    const done = (reason: string, exitCode: number) => ({ name: 'web', ready: false, restartCount: 0, state: { terminated: { exitCode, reason, finishedAt: ago(10) } } });
    const completed = printerOf('Pod').row(pod({ phase: 'Succeeded', containerStatuses: [done('Completed', 0)] }), NOW);
    assert.equal(completed.cells[2], 'Completed');
    assert.deepEqual(completed.conditions, [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }]);
    assert.equal(cells('Pod', pod({ phase: 'Failed', containerStatuses: [done('Error', 2)] }))[2], 'Error');
    assert.equal(cells('Pod', pod({ phase: 'Failed', containerStatuses: [done('', 137)] }))[2], 'ExitCode:137');
    assert.equal(cells('Pod', pod({ phase: 'Failed', reason: 'Evicted' }))[2], 'Evicted');
    // One container done, one still running: NotReady unless the pod is Ready.
    const two = pod({ phase: 'Running', containerStatuses: [done('Completed', 0), { ...running, name: 'side' }] }, { containers: [{ name: 'web' }, { name: 'side' }] });
    assert.deepEqual(cells('Pod', two).slice(1, 3), ['1/2', 'NotReady']);
  });
  test('Terminating, Init:N/M, Init:reason, readiness gates', () => {
    assert.equal(cells('Pod', pod({ phase: 'Running', containerStatuses: [running] }, {}, { deletionTimestamp: ago(1) }))[2], 'Terminating');
    assert.equal(cells('Pod', pod({ phase: 'Succeeded' }, {}, { deletionTimestamp: ago(1) }))[2], 'Succeeded', 'a finished pod is not Terminating');
    const init = { initContainers: [{ name: 'init', image: 'busybox' }] };
    assert.equal(cells('Pod', pod({ phase: 'Pending', initContainerStatuses: [{ name: 'init', restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] }, init))[2], 'Init:0/1');
    assert.equal(cells('Pod', pod({ phase: 'Pending', initContainerStatuses: [{ name: 'init', restartCount: 0, state: { waiting: { reason: 'ErrImagePull' } } }] }, init))[2], 'Init:ErrImagePull');
    const gated = pod({ phase: 'Running', conditions: [{ type: 'a', status: 'True' }, { type: 'b', status: 'False' }] }, { readinessGates: [{ conditionType: 'a' }, { conditionType: 'b' }] });
    assert.equal(cells('Pod', gated)[8], '1/2');
  });
});

test('workload cells: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job', () => {
  const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }, { name: 'log', image: 'busybox' }] } };
  assert.deepEqual(cells('Deployment', { metadata: meta('web'), spec: { replicas: 3, selector: { matchLabels: { app: 'web', tier: 'fe' } }, template }, status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 } }), ['web', '2/3', 3, 2, '5m3s', 'web,log', 'nginx:1.27,busybox', 'app=web,tier=fe']);
  assert.deepEqual(cells('Deployment', { metadata: meta('web'), spec: { replicas: 1, selector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'dev'] }] }, template } }).slice(1, 4).concat(cells('Deployment', { metadata: meta('web'), spec: { replicas: 1, selector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'dev'] }] }, template } }).slice(7)), ['0/1', 0, 0, 'env in (dev,prod)']);
  assert.deepEqual(cells('ReplicaSet', { metadata: meta('web-abc'), spec: { replicas: 3, selector: { matchLabels: { app: 'web', 'pod-template-hash': 'abc' } }, template }, status: { replicas: 2, readyReplicas: 1 } }), ['web-abc', 3, 2, 1, '5m3s', 'web,log', 'nginx:1.27,busybox', 'app=web,pod-template-hash=abc']);
  assert.deepEqual(cells('StatefulSet', { metadata: meta('db'), spec: { replicas: 3, template }, status: { readyReplicas: 1 } }), ['db', '1/3', '5m3s', 'web,log', 'nginx:1.27,busybox']);
  assert.deepEqual(cells('DaemonSet', { metadata: meta('agent'), spec: { selector: { matchLabels: { app: 'agent' } }, template: { spec: { ...template.spec, nodeSelector: { 'kubernetes.io/os': 'linux' } } } }, status: { desiredNumberScheduled: 2, currentNumberScheduled: 2, numberReady: 1, updatedNumberScheduled: 2, numberAvailable: 1 } }), ['agent', 2, 2, 1, 2, 1, 'kubernetes.io/os=linux', '5m3s', 'web,log', 'nginx:1.27,busybox', 'app=agent']);
  assert.equal(cells('DaemonSet', { metadata: meta('agent'), spec: { template } })[6], '<none>');
  const job = (spec: Record<string, unknown>, status: Record<string, unknown>) => cells('Job', { metadata: meta('pi'), spec: { template, selector: { matchLabels: { 'batch.kubernetes.io/controller-uid': 'u1' } }, ...spec }, status });
  assert.deepEqual(job({ completions: 3 }, { succeeded: 1, startTime: ago(60) }).slice(1, 4), ['Running', '1/3', '60s']);
  assert.deepEqual(job({ parallelism: 2 }, { succeeded: 1, startTime: ago(100), completionTime: ago(55), conditions: [{ type: 'Complete', status: 'True' }] }).slice(1, 4), ['Complete', '1/1 of 2', '45s']);
  assert.deepEqual(job({}, { conditions: [{ type: 'Failed', status: 'True' }] }).slice(1, 4), ['Failed', '0/1', '']);
});

test('Service, Endpoints, EndpointSlice, Ingress and IngressClass cells', () => {
  const svc = (spec: Record<string, unknown>, status?: unknown) => cells('Service', { metadata: meta('web'), spec, status });
  assert.deepEqual(svc({ type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }], selector: { app: 'web' } }), ['web', 'ClusterIP', '10.96.0.10', '<none>', '80/TCP', '5m3s', 'app=web']);
  assert.deepEqual(svc({ type: 'NodePort', clusterIPs: ['10.96.0.11'], ports: [{ port: 80, nodePort: 30080, protocol: 'TCP' }, { port: 53, nodePort: 30053, protocol: 'UDP' }] }).slice(3, 5), ['<none>', '80:30080/TCP,53:30053/UDP']);
  assert.equal(svc({ type: 'LoadBalancer', clusterIPs: ['10.96.0.12'], ports: [] })[3], '<pending>');
  assert.equal(svc({ type: 'LoadBalancer', clusterIPs: ['10.96.0.12'], ports: [], externalIPs: ['203.0.113.9'] }, { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } })[3], '203.0.113.7,203.0.113.9');
  assert.deepEqual(svc({ type: 'ClusterIP', clusterIP: 'None', clusterIPs: ['None'], ports: [{ port: 5432, protocol: 'TCP' }] }).slice(2, 5), ['None', '<none>', '5432/TCP']);
  assert.deepEqual(svc({ type: 'ExternalName', externalName: 'db.example.com' }).slice(1, 5).concat(svc({ type: 'ExternalName', externalName: 'db.example.com' }).slice(6)), ['ExternalName', '<none>', 'db.example.com', '<none>', '<none>']);

  assert.deepEqual(cells('Endpoints', { metadata: meta('web'), subsets: [{ addresses: [{ ip: '10.244.1.2' }, { ip: '10.244.2.2' }], ports: [{ port: 8080 }, { port: 9090 }] }] }), ['web', '10.244.1.2:8080,10.244.2.2:8080,10.244.1.2:9090 + 1 more...', '5m3s']);
  assert.deepEqual(cells('Endpoints', { metadata: meta('web') }), ['web', '<none>', '5m3s']);

  const ep = (...ips: string[]) => ({ addresses: ips });
  assert.deepEqual(cells('EndpointSlice', { metadata: meta('web-abcde'), addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [ep('10.244.1.2'), ep('10.244.1.3'), ep('10.244.2.2'), ep('10.244.2.3'), ep('10.244.3.2')] }), ['web-abcde', 'IPv4', '8080', '10.244.1.2,10.244.1.3,10.244.2.2 + 2 more...', '5m3s']);
  assert.deepEqual(cells('EndpointSlice', { metadata: meta('web-abcde'), addressType: 'IPv4', ports: [{ name: 'http' }, {}], endpoints: [] }).slice(2, 4), ['http,*', '<unset>']);
  assert.deepEqual(cells('EndpointSlice', { metadata: meta('web-abcde'), addressType: 'IPv4', endpoints: [] }).slice(2, 4), ['<unset>', '<unset>']);

  const ing = (spec: Record<string, unknown>, status?: unknown) => cells('Ingress', { metadata: meta('shop'), spec, status });
  assert.deepEqual(ing({ ingressClassName: 'nginx', rules: [{ host: 'a.example' }, {}, { host: 'b.example' }], tls: [{ hosts: ['a.example'] }] }, { loadBalancer: { ingress: [{ ip: '172.18.0.11' }, { ip: '172.18.0.10' }, { ip: '172.18.0.11' }] } }), ['shop', 'nginx', 'a.example,b.example', '172.18.0.10,172.18.0.11', '80, 443', '5m3s']);
  assert.deepEqual(ing({ rules: [{ host: 'h1' }, { host: 'h2' }, { host: 'h3' }, { host: 'h4' }] }).slice(1, 5), ['<none>', 'h1,h2,h3 + 1 more...', '', '80']);
  assert.equal(ing({ defaultBackend: { service: { name: 'web', port: { number: 80 } } } })[2], '*');
  assert.deepEqual(cells('IngressClass', { metadata: meta('nginx'), spec: { controller: 'k8s.io/ingress-nginx', parameters: { apiGroup: 'k8s.example.com', kind: 'IngressParameters', name: 'external-lb' } } }), ['nginx', 'k8s.io/ingress-nginx', 'IngressParameters.k8s.example.com/external-lb', '5m3s']);
  assert.equal(cells('IngressClass', { metadata: meta('kubewire'), spec: { controller: 'kubewire.dev/ingress' } })[2], '<none>');
});

test('Node, Namespace, Event, Secret, ConfigMap, ServiceAccount cells', () => {
  const node = {
    metadata: { name: 'kw-node-1', creationTimestamp: ago(3 * 86400), labels: { 'node-role.kubernetes.io/control-plane': '', 'kubernetes.io/role': 'worker', 'node-role.kubernetes.io/': 'x' } },
    spec: { unschedulable: true },
    status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: '172.18.0.11' }, { type: 'Hostname', address: 'kw-node-1' }], nodeInfo: { kubeletVersion: 'v1.32.5', osImage: 'Debian GNU/Linux 12 (bookworm)', kernelVersion: '6.1.0-40-amd64', containerRuntimeVersion: '' } },
  };
  assert.deepEqual(cells('Node', node), ['kw-node-1', 'Ready,SchedulingDisabled', 'control-plane,worker', '3d', 'v1.32.5', '172.18.0.11', '<none>', 'Debian GNU/Linux 12 (bookworm)', '6.1.0-40-amd64', '<unknown>']);
  assert.deepEqual(cells('Node', { metadata: { name: 'n' }, status: {} }).slice(1, 4), ['Unknown', '<none>', '<unknown>']);
  assert.equal(cells('Node', { metadata: { name: 'n' }, status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } })[1], 'NotReady');
  assert.deepEqual(cells('Namespace', { metadata: { name: 'shop', creationTimestamp: ago(60) }, status: { phase: 'Terminating' } }), ['shop', 'Terminating', '60s']);
  const event = { metadata: meta('web-1.17e'), involvedObject: { kind: 'Pod', name: 'web-1', fieldPath: 'spec.containers{web}' }, reason: 'Started', message: ' Started container web\n', type: 'Normal', count: 2, firstTimestamp: ago(600), lastTimestamp: ago(120), source: { component: 'kubelet', host: 'kw-node-1' } };
  assert.deepEqual(cells('Event', event), ['2m', 'Normal', 'Started', 'pod/web-1', 'spec.containers{web}', 'kubelet, kw-node-1', 'Started container web', '10m', 2, 'web-1.17e']);
  assert.deepEqual(cells('Event', { ...event, count: 0, lastTimestamp: undefined, source: { component: 'default-scheduler' }, involvedObject: { kind: 'Node' } }).slice(0, 9), ['10m', 'Normal', 'Started', 'node', '', 'default-scheduler', 'Started container web', '10m', 1]);
  assert.deepEqual(cells('Secret', { metadata: meta('tls'), type: 'kubernetes.io/tls', data: { 'tls.crt': 'x', 'tls.key': 'y' } }), ['tls', 'kubernetes.io/tls', 2, '5m3s']);
  assert.deepEqual(cells('ConfigMap', { metadata: meta('cfg'), data: { a: '1' }, binaryData: { b: 'AA==' } }), ['cfg', 2, '5m3s']);
  assert.deepEqual(cells('ServiceAccount', { metadata: meta('default') }), ['default', 0, '5m3s']);
});

test('a node reports OS-IMAGE from os-release PRETTY_NAME, as the kubelet', () => {
  assert.equal(osImageOf('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'), 'Debian GNU/Linux 12 (bookworm)');
  assert.equal(osImageOf("PRETTY_NAME='Alpine Linux v3.20'"), 'Alpine Linux v3.20');
  assert.equal(osImageOf(undefined), 'Linux');
});

test('Accept negotiation: kubectl get, fallbacks, 406 for an as= nothing serves', () => {
  const kubectl = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
  assert.deepEqual(negotiateView(kubectl, true), { as: 'Table', version: 'v1' });
  assert.deepEqual(negotiateView('application/json;as=Table;v=v1beta1;g=meta.k8s.io', false), { as: 'Table', version: 'v1beta1' });
  assert.deepEqual(negotiateView(undefined, true), { as: 'Object' });
  assert.deepEqual(negotiateView('application/vnd.kubernetes.protobuf,application/json', false), { as: 'Object' });
  assert.deepEqual(negotiateView('application/json;as=Foo;v=v1;g=meta.k8s.io, application/json', true), { as: 'Object' });
  assert.deepEqual(negotiateView('application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io', true), { as: 'PartialObjectMetadata', version: 'v1' });
  assert.throws(() => negotiateView('application/json;as=Foo;v=v1;g=meta.k8s.io', true), (e: { code: number; reason: string }) => e.code === 406 && e.reason === 'NotAcceptable');
  assert.throws(() => negotiateView('application/json;as=Table;v=v2;g=meta.k8s.io', true), (e: { code: number }) => e.code === 406);
});

test('pagination: limit pages in list order, continue resumes after the last key, a bad token is 400', () => {
  const items = ['a', 'b', 'c', 'd', 'e'].map((n) => ({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: n, namespace: 'default' } }) as KubeObject);
  const first = page(items, 42, 2, null);
  assert.deepEqual(first.items.map((o) => o.metadata.name), ['a', 'b']);
  assert.equal(first.remainingItemCount, 3);
  assert.deepEqual(decodeContinue(first.continue!), { rv: 42, after: { namespace: 'default', name: 'b' } });
  const second = page(items, 50, 2, first.continue!);
  assert.deepEqual(second.items.map((o) => o.metadata.name), ['c', 'd']);
  assert.equal(second.resourceVersion, 42, 'later pages carry the first page\'s resourceVersion');
  const last = page(items, 50, 2, second.continue!);
  assert.deepEqual(last.items.map((o) => o.metadata.name), ['e']);
  assert.equal(last.continue, undefined);
  assert.equal(page(items, 1, undefined, null).items.length, 5);
  assert.throws(() => page(items, 1, 2, 'garbage'), (e: { code: number; reason: string }) => e.code === 400 && e.reason === 'BadRequest');
});

test('defaults: containers, pods, templates, Deployment, Job, StatefulSet, DaemonSet, Namespace, EndpointSlice', () => {
  assert.equal(defaultImagePullPolicy('nginx'), 'Always');
  assert.equal(defaultImagePullPolicy('nginx:latest'), 'Always');
  assert.equal(defaultImagePullPolicy('nginx:1.27'), 'IfNotPresent');
  assert.equal(defaultImagePullPolicy('localhost:5000/web'), 'Always', 'a registry port is not a tag');
  assert.equal(defaultImagePullPolicy('localhost:5000/web:v2'), 'IfNotPresent');
  assert.equal(defaultImagePullPolicy('nginx@sha256:0123'), 'IfNotPresent');
  const pod = withDefaults({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { port: 8080 } }, env: [{ name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }] }] } });
  const spec = pod.spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual(
    { dnsPolicy: spec.dnsPolicy, restartPolicy: spec.restartPolicy, schedulerName: spec.schedulerName, grace: spec.terminationGracePeriodSeconds, sc: spec.securityContext, links: spec.enableServiceLinks, sa: spec.serviceAccountName, sa2: spec.serviceAccount },
    { dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', schedulerName: 'default-scheduler', grace: 30, sc: {}, links: true, sa: 'default', sa2: 'default' },
  );
  const c = spec.containers[0];
  assert.deepEqual(c.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual([c.imagePullPolicy, c.terminationMessagePath, c.terminationMessagePolicy, c.resources], ['Always', '/dev/termination-log', 'File', {}]);
  assert.deepEqual(c.readinessProbe, { httpGet: { port: 8080, path: '/', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 });
  assert.deepEqual(c.env[0].valueFrom.fieldRef, { apiVersion: 'v1', fieldPath: 'status.podIP' });
  // Set values stay; defaulting twice changes nothing.
  assert.deepEqual(withDefaults(pod), pod);
  assert.equal((withDefaults({ ...pod, spec: { ...spec, dnsPolicy: 'Default', restartPolicy: 'Never' } }).spec as typeof spec).dnsPolicy, 'Default');

  const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } };
  const d = withDefaults({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { selector: { matchLabels: { app: 'web' } }, template } }).spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual([d.replicas, d.strategy, d.revisionHistoryLimit, d.progressDeadlineSeconds], [1, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } }, 10, 600]);
  assert.equal(d.template.spec.dnsPolicy, 'ClusterFirst');
  assert.equal(d.template.spec.containers[0].imagePullPolicy, 'IfNotPresent');
  assert.equal(d.template.spec.serviceAccountName, undefined, 'templates get no service account (admission is for pods)');
  const recreate = withDefaults({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { strategy: { type: 'Recreate' }, selector: {}, template } }).spec as typeof d;
  assert.deepEqual(recreate.strategy, { type: 'Recreate' });
  const j = withDefaults({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'pi' }, spec: { template: { spec: { ...template.spec, restartPolicy: 'Never' } } } }).spec as typeof d;
  assert.deepEqual([j.completions, j.parallelism, j.backoffLimit, j.completionMode, j.suspend, j.podReplacementPolicy], [1, 1, 6, 'NonIndexed', false, 'TerminatingOrFailed']);
  const j2 = withDefaults({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'pi' }, spec: { parallelism: 3, template } }).spec as typeof d;
  assert.equal(j2.completions, undefined, 'completions stay unset when parallelism is given');
  const s = withDefaults({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db' }, spec: { serviceName: 'db', selector: {}, template } }).spec as typeof d;
  assert.deepEqual([s.replicas, s.podManagementPolicy, s.updateStrategy, s.revisionHistoryLimit, s.persistentVolumeClaimRetentionPolicy], [1, 'OrderedReady', { type: 'RollingUpdate', rollingUpdate: { partition: 0 } }, 10, { whenDeleted: 'Retain', whenScaled: 'Retain' }]);
  const ds = withDefaults({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'a' }, spec: { selector: {}, template } }).spec as typeof d;
  assert.deepEqual(ds.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  const ns = withDefaults({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } } as KubeObject);
  assert.deepEqual([ns.metadata.labels, ns.spec], [{ 'kubernetes.io/metadata.name': 'shop' }, { finalizers: ['kubernetes'] }]);
  // Defaults ask for nothing kubewire does not do: an object written back as read earns no warning.
  for (const o of [pod, withDefaults({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { selector: {}, template } } as KubeObject), withDefaults({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db' }, spec: { serviceName: 'db', selector: {}, template } } as KubeObject), withDefaults({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'a' }, spec: { selector: {}, template } } as KubeObject), withDefaults({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'pi' }, spec: { template: { spec: { ...template.spec, restartPolicy: 'Never' } } } } as KubeObject)]) {
    assert.deepEqual(warningsFor(o), [], `${o.kind} with upstream's defaults`);
  }
  assert.equal(warningsFor(withDefaults({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { progressDeadlineSeconds: 60, selector: {}, template } } as KubeObject)).length, 1, 'a value of the user\'s own is still named');
  const es = withDefaults({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'x' }, addressType: 'IPv4', endpoints: [], ports: [{ port: 80 }] });
  assert.deepEqual(es.ports, [{ port: 80, name: '', protocol: 'TCP' }]);
});

// ---- the API server over its unix socket (no root) ----

const TABLE_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

function get(socketPath: string, path: string, accept?: string): Promise<{ code: number; type: string; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: accept ? { accept } : {}, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, type: String(res.headers['content-type']), body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A watch: resolves with the first `n` events' objects (or what came before the server ended it), and how long it took. */
function watchEvents(socketPath: string, path: string, n: number, accept = TABLE_ACCEPT, limitMs = 10_000): Promise<{ events: any[]; ended: boolean; ms: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: { accept } }, (res: IncomingMessage) => {
      let buf = '';
      const events: unknown[] = [];
      const timer = setTimeout(() => finish(false), limitMs);
      const finish = (ended: boolean) => {
        clearTimeout(timer);
        req.destroy();
        resolve({ events, ended, ms: Date.now() - t0 });
      };
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
          if (events.length === n) return finish(false);
        }
      });
      res.on('end', () => finish(true));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Tables, timeoutSeconds and paging over the unix socket', () => {
  let dir: string;
  let store: Store;
  let api: Api;
  let server: ApiServer;
  let sock: string;
  const podOf = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27', ports: [{ containerPort: 8080 }] }] } });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-tables-'));
    store = new Store(join(dir, 'store.db'));
    api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    for (const n of ['web-a', 'web-b', 'web-c']) api.create(podOf(n));
    for (const n of ['c1', 'c2', 'c3', 'c4', 'c5']) api.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n, namespace: 'default' }, data: { k: n } });
    server = new ApiServer(api);
    sock = join(dir, 'api.sock');
    await server.listen(sock);
  });
  after(async () => {
    await server?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('list and get as Table: columns, cells, PartialObjectMetadata rows, Content-Type', async () => {
    const list = await get(sock, '/api/v1/namespaces/default/pods?limit=500', TABLE_ACCEPT);
    assert.equal(list.code, 200);
    assert.equal(list.type, 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.equal(list.body.kind, 'Table');
    assert.equal(list.body.apiVersion, 'meta.k8s.io/v1');
    assert.equal(list.body.metadata.resourceVersion, String(store.currentRV()));
    assert.deepEqual(list.body.columnDefinitions.map((c: { name: string }) => c.name), ['Name', 'Ready', 'Status', 'Restarts', 'Age', 'IP', 'Node', 'Nominated Node', 'Readiness Gates']);
    assert.deepEqual(list.body.rows.map((r: { cells: unknown[] }) => r.cells.slice(0, 4)), ['web-a', 'web-b', 'web-c'].map((n) => [n, '0/1', 'Pending', '0']));
    assert.deepEqual(list.body.rows[0].object.kind, 'PartialObjectMetadata');
    assert.equal(list.body.rows[0].object.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(list.body.rows[0].object.metadata.labels, { app: 'web' });
    const one = await get(sock, '/api/v1/namespaces/default/pods/web-b', 'application/json;as=Table;v=v1beta1;g=meta.k8s.io');
    assert.equal(one.type, 'application/json;as=Table;v=v1beta1;g=meta.k8s.io');
    assert.equal(one.body.apiVersion, 'meta.k8s.io/v1beta1');
    assert.equal(one.body.rows.length, 1);
    assert.equal(one.body.rows[0].cells[0], 'web-b');
    assert.equal(one.body.metadata.resourceVersion, api.get({ kind: 'Pod', namespace: 'default', name: 'web-b' }).metadata.resourceVersion);
    // Without the Table Accept, the objects as before.
    const plain = await get(sock, '/api/v1/namespaces/default/pods/web-b');
    assert.equal(plain.body.kind, 'Pod');
    assert.equal(plain.type, 'application/json');
  });

  test('includeObject: Object, None, and a bad value is 400; an as= nothing serves is 406', async () => {
    const full = await get(sock, '/api/v1/namespaces/default/pods?includeObject=Object', TABLE_ACCEPT);
    assert.equal(full.body.rows[0].object.kind, 'Pod');
    assert.equal(full.body.rows[0].object.spec.containers[0].ports[0].protocol, 'TCP', 'stored with the defaults');
    const none = await get(sock, '/api/v1/namespaces/default/pods?includeObject=None', TABLE_ACCEPT);
    assert.equal(none.body.rows[0].object, null);
    const bad = await get(sock, '/api/v1/namespaces/default/pods?includeObject=Everything', TABLE_ACCEPT);
    assert.equal(bad.code, 400);
    assert.equal(bad.body.reason, 'BadRequest');
    const refused = await get(sock, '/api/v1/namespaces/default/pods', 'application/json;as=Foo;v=v1;g=meta.k8s.io');
    assert.equal(refused.code, 406);
    assert.deepEqual([refused.body.kind, refused.body.status, refused.body.reason, refused.body.code], ['Status', 'Failure', 'NotAcceptable', 406]);
    assert.match(refused.body.message, /^only the following media types are accepted: application\/json/);
    const meta = await get(sock, '/api/v1/namespaces/default/configmaps', 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io');
    assert.equal(meta.body.kind, 'PartialObjectMetadataList');
    assert.equal(meta.body.items[0].metadata.name, 'c1');
    assert.equal(meta.body.items[0].data, undefined);
  });

  test('watch as Table: one row per event, columnDefinitions in the first event only', async () => {
    const rv = store.currentRV();
    const seen = watchEvents(sock, `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${rv}`, 2);
    await new Promise((r) => setTimeout(r, 100));
    api.create(podOf('web-d'));
    api.delete({ kind: 'Pod', namespace: 'default', name: 'web-d' });
    const { events } = await seen;
    assert.deepEqual(events.map((e) => e.type), ['ADDED', 'DELETED']);
    for (const e of events) {
      assert.equal(e.object.kind, 'Table');
      assert.equal(e.object.rows.length, 1);
      assert.equal(e.object.rows[0].cells[0], 'web-d');
      assert.equal(e.object.rows[0].object.kind, 'PartialObjectMetadata');
    }
    assert.equal(events[0].object.columnDefinitions.length, 9);
    assert.equal(events[1].object.columnDefinitions, undefined, 'later events leave the columns out');
    // Without resourceVersion the current pods come first as ADDED, in Tables too.
    const initial = await watchEvents(sock, '/api/v1/namespaces/default/pods?watch=1', 3);
    assert.deepEqual(initial.events.map((e) => [e.type, e.object.rows[0].cells[0], Boolean(e.object.columnDefinitions)]), [['ADDED', 'web-a', true], ['ADDED', 'web-b', false], ['ADDED', 'web-c', false]]);
  });

  test('watch timeoutSeconds: the server ends the stream after it', async () => {
    const r = await watchEvents(sock, `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${store.currentRV()}&timeoutSeconds=1`, 100, 'application/json', 8_000);
    assert.ok(r.ended, 'the server ended the watch');
    assert.ok(r.ms >= 900 && r.ms < 4_000, `ended after ${r.ms} ms, not about 1 s`);
  });

  test('list limit and continue: pages, then the rest; Tables page too', async () => {
    const first = await get(sock, '/api/v1/namespaces/default/configmaps?limit=2');
    assert.deepEqual(first.body.items.map((o: KubeObject) => o.metadata.name), ['c1', 'c2']);
    assert.equal(first.body.metadata.remainingItemCount, 3);
    const seen: string[] = first.body.items.map((o: KubeObject) => o.metadata.name);
    let token: string | undefined = first.body.metadata.continue;
    for (let i = 0; token && i < 5; i++) {
      const next = await get(sock, `/api/v1/namespaces/default/configmaps?limit=2&continue=${encodeURIComponent(token)}`);
      assert.equal(next.body.metadata.resourceVersion, first.body.metadata.resourceVersion);
      seen.push(...next.body.items.map((o: KubeObject) => o.metadata.name));
      token = next.body.metadata.continue;
    }
    assert.deepEqual(seen, ['c1', 'c2', 'c3', 'c4', 'c5']);
    const table = await get(sock, '/api/v1/namespaces/default/configmaps?limit=4', TABLE_ACCEPT);
    assert.equal(table.body.rows.length, 4);
    assert.ok(table.body.metadata.continue);
    const whole = await get(sock, '/api/v1/namespaces/default/configmaps?limit=500');
    assert.equal(whole.body.items.length, 5);
    assert.equal(whole.body.metadata.continue, undefined);
    const bad = await get(sock, '/api/v1/namespaces/default/configmaps?limit=2&continue=nonsense');
    assert.deepEqual([bad.code, bad.body.reason], [400, 'BadRequest']);
    const badLimit = await get(sock, '/api/v1/namespaces/default/configmaps?limit=-1');
    assert.equal(badLimit.code, 400);
  });
});

// ---- root: a cluster, its api.sock, and the real kubectl when the HTTPS listener is there ----

const CLUSTER = 'kapitab';
const CLI = new URL('../bin/kubewire.js', import.meta.url).pathname;
const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';

let KUBECONFIG_FILE = ''; // up merges its context here (a file of this test's), never into ~/.kube/config

function kubewire(args: string[], timeout = 240_000) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout, env: { ...process.env, KUBECONFIG: KUBECONFIG_FILE } });
}

describe(`a cluster (${CLUSTER}): Tables over its api.sock, and kubectl ${KUBECTL.split('.').slice(-2).join('.')}`, { skip: NOT_ROOT }, () => {
  let work: string;
  let kubeconfig: string | undefined;
  const sock = daemonPaths(CLUSTER).socket;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'kwt-tables-root-'));
    kubewire(['down', '--cluster', CLUSTER], 120_000); // a leftover of an earlier run
    KUBECONFIG_FILE = join(work, 'kubeconfig');
    writeFileSync(KUBECONFIG_FILE, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n', { mode: 0o600 });
    const up = kubewire(['up', '--cluster', CLUSTER, '--nodes', '2']);
    assert.equal(up.status, 0, `up: ${up.stderr}`);
    const manifest = join(work, 'web.yaml');
    writeFileSync(
      manifest,
      [
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: "nginx:1.27", ports: [{containerPort: 8080}]}]',
        'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]',
      ].join('\n---\n'),
    );
    const applied = kubewire(['apply', '--cluster', CLUSTER, '-f', manifest], 60_000);
    assert.equal(applied.status, 0, applied.stderr);
    const wait = kubewire(['wait', '--cluster', CLUSTER, '--for=condition=Available', 'deployment/web', '--timeout=90s'], 120_000);
    if (wait.status !== 0) kubewire(['get', '--cluster', CLUSTER, 'pods'], 30_000); // best effort: the checks below say what is missing
    // The kubeconfig, when the HTTPS listener and `kubewire kubeconfig` have landed.
    const kc = kubewire(['kubeconfig', '--cluster', CLUSTER], 30_000);
    if (kc.status === 0 && /server: https:\/\/127\.0\.0\.1:\d+/.test(kc.stdout)) {
      kubeconfig = join(work, 'kubeconfig.print');
      writeFileSync(kubeconfig, kc.stdout, { mode: 0o600 });
    }
  });
  after(() => {
    kubewire(['down', '--cluster', CLUSTER], 180_000);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('list, get and watch Tables over api.sock', async () => {
    const list = await get(sock, '/api/v1/namespaces/default/pods?limit=500', TABLE_ACCEPT);
    assert.equal(list.body.kind, 'Table');
    const rows = list.body.rows.filter((r: { cells: string[] }) => r.cells[0]!.startsWith('web-'));
    assert.equal(rows.length, 2, JSON.stringify(list.body.rows.map((r: { cells: unknown[] }) => r.cells)));
    for (const r of rows) {
      assert.equal(r.cells[1], '1/1');
      assert.equal(r.cells[2], 'Running');
      assert.match(r.cells[5], /^10\.244\.\d+\.\d+$/, 'IP');
      assert.match(r.cells[6], new RegExp(`^${CLUSTER}-`), 'NODE');
    }
    const svc = await get(sock, '/api/v1/namespaces/default/services/web', TABLE_ACCEPT);
    assert.deepEqual(svc.body.rows[0].cells.slice(1, 5).map((c: string, i: number) => (i === 1 ? /^10\.\d+\.\d+\.\d+$/.test(c) : c)), ['NodePort', true, '<none>', '80:30080/TCP']);
    const nodes = await get(sock, '/api/v1/nodes', TABLE_ACCEPT);
    assert.equal(nodes.body.rows.length, 2);
    assert.equal(nodes.body.rows[0].cells[1], 'Ready');
    const pod = await get(sock, `/api/v1/namespaces/default/pods/${rows[0].cells[0]}`);
    assert.equal(pod.body.spec.containers[0].ports[0].protocol, 'TCP');
    assert.equal(pod.body.spec.dnsPolicy, 'ClusterFirst');
    const w = await watchEvents(sock, '/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb', 2);
    assert.equal(w.events.length, 2);
    assert.ok(w.events[0].object.columnDefinitions, 'first event has the columns');
    assert.equal(w.events[1].object.columnDefinitions, undefined, 'second event has none');
  });

  test('kubectl 1.32 prints the upstream columns', async (t) => {
    if (!existsSync(KUBECTL)) return t.skip(`${KUBECTL} is not installed`);
    if (!kubeconfig) return t.skip('no HTTPS listener yet: `kubewire kubeconfig --cluster kapitab` printed no https://127.0.0.1 server');
    const kubectl = (...args: string[]) => spawnSync(KUBECTL, ['--kubeconfig', kubeconfig!, '--cache-dir', join(work, 'cache'), ...args], { encoding: 'utf8', timeout: 30_000 });
    const wide = kubectl('get', 'pods', '-o', 'wide');
    assert.equal(wide.status, 0, wide.stderr);
    t.diagnostic(`kubectl get pods -o wide:\n${wide.stdout}`);
    assert.match(wide.stdout.split('\n')[0]!, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/);
    assert.match(wide.stdout, /web-\S+\s+1\/1\s+Running\s+0\s+\S+\s+10\.244\.\d+\.\d+\s+kapitab-\S+\s+<none>\s+<none>/);
    const three = kubectl('get', 'deploy,svc,endpointslices');
    assert.equal(three.status, 0, three.stderr);
    t.diagnostic(`kubectl get deploy,svc,endpointslices:\n${three.stdout}`);
    assert.match(three.stdout, /NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\ndeployment\.apps\/web\s+2\/2\s+2\s+2\s+/);
    assert.match(three.stdout, /NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE[\s\S]*service\/web\s+NodePort\s+10\.\d+\.\d+\.\d+\s+<none>\s+80:30080\/TCP/);
    assert.match(three.stdout, /NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE[\s\S]*endpointslice\.discovery\.k8s\.io\/web-\S+\s+IPv4\s+8080\s+10\.244\./);
    const nodes = kubectl('get', 'nodes', '-o', 'wide');
    assert.equal(nodes.status, 0, nodes.stderr);
    t.diagnostic(`kubectl get nodes -o wide:\n${nodes.stdout}`);
    assert.match(nodes.stdout.split('\n')[0]!, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME$/);
    assert.match(nodes.stdout, /kapitab-\S+\s+Ready\s+/);
    const describe = kubectl('describe', 'pod', '-l', 'app=web');
    assert.equal(describe.status, 0, describe.stderr);
    assert.match(describe.stdout, /Port:\s+8080\/TCP/);
    // get -w: the list, then the watch's rows (no header again) as the deployment scales to 3;
    // ended once the new pod's row says Running (at most 30 s).
    const watching = spawn(KUBECTL, ['--kubeconfig', kubeconfig!, '--cache-dir', join(work, 'cache'), 'get', 'pods', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const bound = setTimeout(() => watching.kill(), 30_000);
    let out = '';
    let err = '';
    watching.stdout.on('data', (c) => (out += c));
    watching.stderr.on('data', (c) => (err += c));
    const closed = new Promise((r) => watching.on('close', r));
    const running = () => new Set([...out.matchAll(/^(web-\S+)\s+1\/1\s+Running\s/gm)].map((m) => m[1]));
    const until = async (done: () => boolean) => {
      for (const end = Date.now() + 30_000; !done() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    };
    await until(() => running().size >= 2); // the list
    const scaled = kubewire(['scale', '--cluster', CLUSTER, 'deployment/web', '--replicas=3'], 30_000);
    assert.equal(scaled.status, 0, scaled.stderr);
    await until(() => running().size >= 3);
    watching.kill();
    clearTimeout(bound);
    await closed;
    const watch = { stdout: out, stderr: err };
    t.diagnostic(`kubectl get pods -w (scaled to 3 once it listed the two):\n${watch.stdout}${watch.stderr}`);
    assert.match(watch.stdout.split('\n')[0]!, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    assert.equal(watch.stdout.match(/^NAME\s/gm)?.length, 1, 'one header');
    assert.ok(watch.stdout.trim().split('\n').length >= 4, 'rows of the watch after the two of the list');
    assert.match(watch.stdout, /\n(web-\S+\s+1\/1\s+Running\s+0\s+\S+\n?)+$/, 'the new pod ends Running');
    assert.doesNotMatch(watch.stderr, /Unable to decode server response into a Table/);
  });
});
