// The manifests people bring, end to end (root): a two-node cluster driven through the CLI.
// A StatefulSet behind a headless Service (ordinal pods, each its own DNS name through the
// cluster DNS), DaemonSets (a pod per node, or per node its nodeSelector picks), a Job run to
// completion as user 65534 with a ConfigMap's value, a readinessProbe on a 404 path keeping
// its pod out of the Service's endpoints until the path is fixed, a liveness failure
// restarting its container, and the API server's warnings for fields kubewire ignores.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DaemonSet, EndpointSlice, Event, Job, Pod, StatefulSet } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, Kube, waitFor } from './kube.ts';

const STATEFUL = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: kubewire/echo, ports: [{name: http, containerPort: 8080}]}]
`;

const daemonSets = (node2: string) => `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      containers: [{name: a, image: kubewire/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: picky}
spec:
  selector: {matchLabels: {app: picky}}
  template:
    metadata: {labels: {app: picky}}
    spec:
      nodeSelector: {kubernetes.io/hostname: ${node2}}
      containers: [{name: a, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;

const JOB = `apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data: {TEXT: hello-from-a-configmap}
---
apiVersion: batch/v1
kind: Job
metadata: {name: whoami}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsUser: 65534}
      containers:
      - name: c
        image: busybox
        command: [sh, -c, 'echo "uid=$(id -u) gid=$(id -g) $TEXT"']
        env: [{name: TEXT, valueFrom: {configMapKeyRef: {name: greeting, key: TEXT}}}]
`;

const readiness = (path: string) => `apiVersion: v1
kind: Service
metadata: {name: probed}
spec:
  selector: {app: probed}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: probed}
spec:
  selector: {matchLabels: {app: probed}}
  template:
    metadata: {labels: {app: probed}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.39
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: ${path}, port: 8080}, periodSeconds: 1}
        livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`;

describe('workloads: StatefulSet, DaemonSet, Job, probes, runAsUser, warnings', { skip: NOT_ROOT }, () => {
  const cluster = `kwwl${process.pid % 100000}`;
  let stateDir: string;
  let kube: Kube;
  let nodes: string[] = [];
  const pods = async (selector: string) => (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', selector)).items;
  const slices = async (svc: string) => (await kube.json<{ items: EndpointSlice[] }>('get', 'endpointslices', '-l', `kubernetes.io/service-name=${svc}`)).items.flatMap((s) => s.endpoints);
  const events = async (pod: string) => (await kube.json<{ items: Event[] }>('get', 'events')).items.filter((e) => e.involvedObject.name === pod);

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-wl-'));
    kube = new Kube(cluster, stateDir);
    await kube.ok('up', '--nodes', '2');
    nodes = (await kube.json<{ items: Array<{ metadata: { name: string } }> }>('get', 'nodes')).items.map((n) => n.metadata.name).sort();
    await kube.apply(echoPod('client'));
    await kube.ok('wait', '--for=condition=Ready', 'pod/client', '--timeout', '30s');
  });
  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('a StatefulSet: web-0, web-1, web-2 in order, each resolving as web-N.web.default.svc.cluster.local; scale down from the top; deleted with its pods', async () => {
    await kube.apply(STATEFUL);
    await waitFor('three ready replicas', async () => (await kube.json<StatefulSet>('get', 'statefulset', 'web')).status?.readyReplicas === 3, 40_000);
    const set = await pods('app=web');
    assert.deepEqual(set.map((p) => p.metadata.name).sort(), ['web-0', 'web-1', 'web-2']);
    const created = (n: string) => Date.parse(set.find((p) => p.metadata.name === n)!.metadata.creationTimestamp!);
    const readyAt = (n: string) => Date.parse(set.find((p) => p.metadata.name === n)!.status!.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime!);
    assert.ok(created('web-1') >= readyAt('web-0') && created('web-2') >= readyAt('web-1'), 'OrderedReady: each created once the one before was ready');
    for (const p of set) {
      assert.equal(p.spec.hostname, p.metadata.name);
      assert.equal(p.spec.subdomain, 'web');
      const answer = await kube.ok('exec', 'client', '--', 'getent', 'hosts', `${p.metadata.name}.web.default.svc.cluster.local`);
      assert.equal(answer.trim().split(/\s+/)[0], p.status!.podIP, `${p.metadata.name} resolves to its own IP`);
    }
    assert.equal((await kube.ok('exec', 'web-1', '--', 'hostname')).trim(), 'web-1');
    const web0 = set.find((p) => p.metadata.name === 'web-0')!.metadata.uid;
    await kube.ok('scale', 'statefulset/web', '--replicas=1');
    await waitFor('web-1 and web-2 gone', async () => (await pods('app=web')).length === 1, 30_000);
    const left = await pods('app=web');
    assert.deepEqual(left.map((p) => [p.metadata.name, p.metadata.uid]), [['web-0', web0]], 'web-0 stays, the same pod');
    await kube.ok('delete', 'statefulset', 'web');
    await waitFor('the set\'s pods gone', async () => (await pods('app=web')).length === 0, 30_000);
  });

  test('DaemonSets: a pod on every node; with a nodeSelector, on the nodes it picks', async () => {
    await kube.apply(daemonSets(nodes[1]!));
    await waitFor('everywhere on both nodes', async () => (await kube.json<DaemonSet>('get', 'daemonset', 'everywhere')).status?.numberReady === 2, 30_000);
    assert.deepEqual((await pods('app=everywhere')).map((p) => p.spec.nodeName).sort(), nodes);
    await waitFor('picky ready', async () => (await kube.json<DaemonSet>('get', 'daemonset', 'picky')).status?.numberReady === 1, 30_000);
    assert.deepEqual((await pods('app=picky')).map((p) => p.spec.nodeName), [nodes[1]]);
    assert.match(await kube.ok('get', 'daemonsets'), /picky\s+1\s+1\s+1\s+1\s+1\s+kubernetes\.io\/hostname=/);
    await kube.ok('delete', 'daemonset', 'everywhere', 'picky');
  });

  test('a Job runs to completion, its command as user 65534 (runAsUser) with a ConfigMap value in its environment', async () => {
    await kube.apply(JOB);
    await kube.ok('wait', '--for=condition=Complete', 'job/whoami', '--timeout', '30s');
    const job = await kube.json<Job>('get', 'job', 'whoami');
    assert.equal(job.status?.succeeded, 2);
    assert.ok(job.status?.completionTime);
    const done = await pods('job-name=whoami');
    assert.equal(done.length, 2);
    for (const p of done) {
      assert.equal(p.status?.phase, 'Succeeded');
      assert.equal((await kube.ok('logs', p.metadata.name)).trim(), 'uid=65534 gid=65534 hello-from-a-configmap');
    }
    assert.match(await kube.ok('get', 'jobs'), /whoami\s+Complete\s+2\/2/);
    const viaJob = await kube.run(['logs', 'job/whoami']);
    assert.deepEqual([viaJob.stdout.trim(), viaJob.stderr.trim()], ['uid=65534 gid=65534 hello-from-a-configmap', `Found 2 pods, using pod/${[...done].sort((a, b) => a.metadata.creationTimestamp!.localeCompare(b.metadata.creationTimestamp!) || a.metadata.name.localeCompare(b.metadata.name))[0]!.metadata.name}`]);
    await kube.ok('delete', 'job', 'whoami');
    await waitFor("the Job's pods gone", async () => (await pods('job-name=whoami')).length === 0, 30_000);
  });

  test('a Job with restartPolicy OnFailure: its container fails once, is restarted in its pod, and the Job completes', async () => {
    const flag = join(stateDir, 'tried');
    await kube.apply(`apiVersion: batch/v1
kind: Job
metadata: {name: retry}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: c, image: busybox, command: [sh, -c, 'test -e ${flag} || { touch ${flag}; exit 3; }']}]
`);
    await kube.ok('wait', '--for=condition=Complete', 'job/retry', '--timeout', '30s');
    const [pod] = await pods('job-name=retry');
    assert.equal(pod?.status?.phase, 'Succeeded');
    assert.equal(pod?.status?.containerStatuses?.[0]?.restartCount, 1);
    assert.equal(pod?.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 3);
    const job = await kube.json<Job>('get', 'job', 'retry');
    assert.deepEqual([job.status?.succeeded, job.status?.failed], [1, 0], 'one pod, restarted in place: no failed pod');
    await kube.ok('delete', 'job', 'retry');
  });

  test('a readinessProbe on a 404 path keeps the pod Running, not Ready, out of the endpoints; fixed, it comes in', async () => {
    await kube.apply(readiness('/nope'));
    const [pod] = await waitFor('the probed pod running', async () => {
      const ps = (await pods('app=probed')).filter((p) => p.status?.phase === 'Running');
      return ps.length === 1 ? ps : undefined;
    });
    await waitFor('an Unhealthy event', async () => (await events(pod!.metadata.name)).some((e) => e.reason === 'Unhealthy' && /Readiness probe failed: HTTP probe failed with statuscode: 404/.test(e.message)), 15_000);
    const now = (await kube.json<Pod>('get', 'pod', pod!.metadata.name));
    assert.equal(now.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    assert.equal(now.status?.containerStatuses?.[0]?.ready, false);
    assert.equal(now.status?.containerStatuses?.[0]?.restartCount, 0, 'its tcpSocket liveness probe passes: no restart');
    const eps = await slices('probed');
    assert.deepEqual(eps.map((e) => e.conditions), [{ ready: false, serving: false, terminating: false }], 'in the slice, not ready: no traffic');
    const r = await kube.run(['exec', 'client', '--', 'curl', '-s', '-m', '2', `http://${(await kube.json<{ spec: { clusterIP: string } }>('get', 'service', 'probed')).spec.clusterIP}/hostname`]);
    assert.notEqual(r.code, 0, 'the Service has no ready endpoint to send to');
    await kube.apply(readiness('/healthz'));
    await waitFor('a ready endpoint', async () => {
      const e = await slices('probed');
      return e.length === 1 && e[0]!.conditions.ready === true && e[0]!.conditions.serving === true;
    }, 30_000);
    await kube.ok('delete', 'deployment', 'probed');
  });

  test('a failing livenessProbe restarts the container (Unhealthy, Killing); a passing one leaves it alone', async () => {
    const flag = join(stateDir, 'alive');
    await kube.apply(`apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {exec: {command: [test, -e, ${flag}]}, periodSeconds: 1, failureThreshold: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: live-builtin}
spec:
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.39
    args: [netexec, --http-port=8080]
    ports: [{containerPort: 8080}]
    livenessProbe: {httpGet: {path: /nope, port: 8080}, periodSeconds: 1, failureThreshold: 2}
`);
    await waitFor('a restart', async () => ((await kube.json<Pod>('get', 'pod', 'live')).status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 20_000);
    const evs = await events('live');
    assert.ok(evs.some((e) => e.reason === 'Unhealthy' && /Liveness probe failed: command "test -e .*" exited with code 1/.test(e.message)), JSON.stringify(evs.map((e) => e.message)));
    assert.ok(evs.some((e) => e.reason === 'Killing' && e.message === 'Container c failed liveness probe, will be restarted'));
    const last = (await kube.json<Pod>('get', 'pod', 'live')).status?.containerStatuses?.[0]?.lastState?.terminated;
    assert.equal(last?.exitCode, 143, 'stopped by SIGTERM');
    writeFileSync(flag, '');
    await waitFor('running again', async () => (await kube.json<Pod>('get', 'pod', 'live')).status?.containerStatuses?.[0]?.state.running !== undefined, 40_000);
    const settled = (await kube.json<Pod>('get', 'pod', 'live')).status!.containerStatuses![0]!.restartCount;
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await kube.json<Pod>('get', 'pod', 'live')).status!.containerStatuses![0]!.restartCount, settled, 'no restart while the probe passes');
    // A built-in workload (served by the workload host) is restarted too, with the same back-off.
    const builtin = await waitFor('the built-in restarted twice', async () => {
      const p = await kube.json<Pod>('get', 'pod', 'live-builtin');
      return (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 2 ? p : undefined;
    }, 20_000);
    assert.equal(builtin.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 137);
    assert.ok((await events('live-builtin')).some((e) => e.reason === 'Killing'));
    await kube.ok('delete', 'pod', 'live', 'live-builtin', '--grace-period', '1');
  });

  test('a grpc readinessProbe asks the health service over HTTP/2: SERVING is ready, NOT_SERVING is not', async () => {
    // A gRPC health server (grpc.health.v1.Health/Check over h2c), run by Node as the pod's command.
    const server = join(stateDir, 'grpc-health.cjs');
    writeFileSync(server, `const http2 = require('http2');
const status = process.env.NOT_SERVING ? 2 : 1;
http2.createServer().on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, status]));
  });
}).listen(9090);
`);
    const pod = (name: string, env: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  containers:
  - name: c
    image: grpc-health
    command: [${process.execPath}, ${server}]
    env: [${env}]
    ports: [{containerPort: 9090}]
    readinessProbe: {grpc: {port: 9090}, periodSeconds: 1}
`;
    await kube.apply(`${pod('serving', '')}---
${pod('not-serving', '{name: NOT_SERVING, value: "1"}')}`);
    await kube.ok('wait', '--for=condition=Ready', 'pod/serving', '--timeout', '30s');
    await waitFor('an Unhealthy event', async () => (await events('not-serving')).some((e) => e.reason === 'Unhealthy' && /Readiness probe failed: service unhealthy/.test(e.message)), 15_000);
    assert.equal((await kube.json<Pod>('get', 'pod', 'not-serving')).status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    await kube.ok('delete', 'pod', 'serving', 'not-serving', '--grace-period', '1');
  });

  test("exec runs as the container's user, as kubectl exec does (runAsUser 65534: id -u says so)", async () => {
    await kube.apply(`apiVersion: v1
kind: Pod
metadata: {name: as-nobody}
spec:
  securityContext: {runAsUser: 65534}
  containers: [{name: c, image: busybox, command: [sleep, "600"]}]
`);
    await waitFor('as-nobody running', async () => (await kube.json('get', 'pod', 'as-nobody')).status?.phase === 'Running', 60_000);
    assert.equal((await kube.ok('exec', 'as-nobody', '--', 'id', '-u')).trim(), '65534');
    assert.equal((await kube.ok('exec', '--node', `${cluster}-node-1`, '--', 'id', '-u')).trim(), '0', 'a node is root');
    await kube.ok('delete', 'pod', 'as-nobody', '--grace-period', '1');
  });

  test("fields kubewire ignores are named on apply (kubectl's Warning: lines on stderr); the objects are applied", async () => {
    const r = await kube.run(['apply', '-f', '-'], {
      input: `apiVersion: v1
kind: Pod
metadata: {name: warned}
spec:
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: c
    image: kubewire/echo
    ports: [{containerPort: 8080}]
    resources: {limits: {cpu: "1"}}
    securityContext: {runAsUser: 1000}
`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'pod/warned created');
    const warnings = r.stderr.trim().split('\n');
    assert.deepEqual(warnings.map((w) => /^Warning: pod\/warned: ([^:]+): /.exec(w)?.[1]), ['spec.volumes', 'spec.containers[0].resources', 'spec.containers[0].securityContext.runAsUser'], r.stderr);
    assert.match(warnings[2]!, /built-in workload inside the workload host, which cannot drop privileges/);
    await kube.ok('delete', 'pod', 'warned', '--grace-period', '1');
  });
});
