// One workload host per node (root, real kernel): `up` starts none; the first pod with a
// built-in server on a node starts that node's; kill -9 of node 1's host while a client loops
// against a Service with pods on both nodes: node 2's pods answer throughout, node 1's go
// NotReady and leave the Service's ready endpoints, then come back (restarted, as containers
// that died), and the client sees no more than one node's pods gone for a moment.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { EndpointSlice, KubeObject, Pod, Service } from '../src/api/types.ts';
import { RESOURCES } from '../src/api/resources.ts';
import { ApiClient } from '../src/client/rest.ts';
import { clusterProcesses } from '../src/daemon/process.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor, webApp } from './kube.ts';

const rt = (kind: string) => RESOURCES.find((r) => r.kind === kind)!;
const isReady = (p: Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;


/** A client in node 2's namespace: fresh connections to the Service, and to each pod directly, until `stop` exists; JSON per target. */
const loadScript = (svc: string, pods: Array<{ ip: string; node: string }>, stop: string) => `
const http = require('node:http');
const fs = require('node:fs');
const t0 = Date.now();
const out = {};
const one = (name, ip) => new Promise((resolve) => {
  const r = (out[name] ??= { ok: 0, failed: 0, failures: [], answered: {} });
  const done = (ok, what) => { if (ok) { r.ok++; r.answered[what] = (r.answered[what] || 0) + 1; } else { r.failed++; r.failures.push([Date.now() - t0, what]); } resolve(); };
  const req = http.get({ host: ip, port: name === 'svc' ? 80 : 8080, path: '/', agent: false, timeout: 2000 }, (res) => {
    let body = ''; res.on('data', (d) => (body += d));
    res.on('end', () => done(res.statusCode === 200, (body.match(/^pod: (.*)$/m) || [])[1] || String(res.statusCode)));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => done(false, e.code || e.message));
});
const loop = async (name, ip) => { while (!fs.existsSync(${JSON.stringify(stop)}) && Date.now() - t0 < 60000) { await one(name, ip); await new Promise((r) => setTimeout(r, 5)); } };
const targets = [['svc', ${JSON.stringify(svc)}], ['svc', ${JSON.stringify(svc)}], ${pods.map((p) => JSON.stringify([`${p.node} ${p.ip}`, p.ip])).join(', ')}];
Promise.all(targets.map(([n, ip]) => loop(n, ip))).then(() => console.log(JSON.stringify({ t0, out })));`;

describe('a workload host per node', { skip: NOT_ROOT }, () => {
  const cluster = `kwh${process.pid % 100000}`;
  const node1 = `${cluster}-node-1`;
  const node2 = `${cluster}-node-2`;
  let stateDir: string;
  let kube: Kube;
  let client: ApiClient;
  const hostPidFile = (node: string) => join(stateDir, cluster, 'nodes', node, 'workloads.pid');
  const hosts = () => clusterProcesses(cluster).filter((p) => p.role === 'workload-host');

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-hosts-'));
    kube = new Kube(cluster, stateDir);
    await kube.ok('up');
    client = new ApiClient(join(stateDir, cluster, 'api.sock'));
  });
  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('up starts no workload host; the first built-in pod on a node starts that node\'s', async () => {
    assert.deepEqual(hosts(), [], 'none after up (the cluster DNS runs as processes of its own)');
    await kube.apply(webApp({ replicas: 4 }));
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    const pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
    assert.deepEqual([...new Set(pods.map((p) => p.spec.nodeName))].sort(), [node1, node2], 'pods on both nodes');
    const pids = [node1, node2].map((n) => Number(readFileSync(hostPidFile(n), 'utf8')));
    assert.deepEqual(hosts().map((h) => h.pid).sort(), [...pids].sort(), 'one host per node, each named by its pid file');
  });

  test("kill -9 of node 1's host: node 2's pods answer throughout; node 1's go NotReady, leave the endpoints, and come back", async () => {
    const pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
    const on = (node: string) => pods.filter((p) => p.spec.nodeName === node);
    const svc = await kube.json<Service>('get', 'service', 'web');
    const stop = join(stateDir, 'stop');
    rmSync(stop, { force: true });

    // Every change of the pods and the Service's endpoints, as a controller sees them.
    const seen: Array<{ at: number; kind: string; object: KubeObject }> = [];
    const rv = (await client.list(rt('Pod'), 'default')).metadata.resourceVersion;
    const rvEps = (await client.list(rt('EndpointSlice'), 'default')).metadata.resourceVersion;
    const unwatch = [
      await client.watch(rt('Pod'), 'default', { resourceVersion: rv }, (e) => seen.push({ at: Date.now(), kind: 'Pod', object: e.object })),
      await client.watch(rt('EndpointSlice'), 'default', { resourceVersion: rvEps }, (e) => seen.push({ at: Date.now(), kind: 'EndpointSlice', object: e.object })),
    ];

    const script = loadScript(svc.spec.clusterIP!, pods.map((p) => ({ ip: p.status!.podIP!, node: p.spec.nodeName! })), stop);
    const load = kube.run(['exec', '--node', node2, '--', process.execPath, '-e', script], { timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const oldPid = Number(readFileSync(hostPidFile(node1), 'utf8'));
    const node2Pid = Number(readFileSync(hostPidFile(node2), 'utf8'));
    const killedAt = Date.now();
    process.kill(oldPid, 'SIGKILL');

    const back = await waitFor('node 1\'s pods Ready again, restarted', async () => {
      const now = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
      return now.filter((p) => p.spec.nodeName === node1).every((p) => isReady(p) && p.status?.containerStatuses?.[0]?.restartCount === 1) ? now : undefined;
    }, 20_000);
    await new Promise((r) => setTimeout(r, 1500)); // the client sees them serve again
    writeFileSync(stop, '');
    const result = await load;
    for (const u of unwatch) u();
    assert.equal(result.code, 0, result.stderr);
    const { t0, out } = JSON.parse(result.stdout) as { t0: number; out: Record<string, { ok: number; failed: number; failures: Array<[number, string]>; answered: Record<string, number> }> };
    const report = JSON.stringify(out);

    // Node 2's pods: never a failure, the Service's requests landing there included.
    for (const p of on(node2)) {
      const r = out[`${node2} ${p.status!.podIP}`]!;
      assert.ok(r.ok > 20, `node 2's pod ${p.metadata.name} was asked (${report})`);
      assert.equal(r.failed, 0, `node 2's pod ${p.metadata.name} answered throughout: ${report}`);
    }
    assert.equal(Number(readFileSync(hostPidFile(node2), 'utf8')), node2Pid, "node 2's host untouched");
    assert.ok(hosts().some((h) => h.pid === node2Pid));
    // Node 1's pods were down for a moment (their containers died) and served again.
    for (const p of on(node1)) {
      const r = out[`${node1} ${p.status!.podIP}`]!;
      assert.ok(r.ok > 20, report);
      assert.ok(r.failures.every(([t]) => t0 + t >= killedAt - 50), `node 1's pod ${p.metadata.name} failed only after the kill: ${report}`);
      assert.ok(r.answered[p.metadata.name]! > 0, report);
    }
    assert.notEqual(Number(readFileSync(hostPidFile(node1), 'utf8')), oldPid, 'a new host on node 1');
    // Through the Service: failures only in a short window after the kill (until the endpoints left), every pod answering again after.
    const svcOut = out.svc!;
    const window = svcOut.failures.map(([t]) => t0 + t - killedAt);
    assert.ok(window.every((ms) => ms >= -50 && ms < 2000), `Service failures within 2 s of the kill: ${JSON.stringify(window)} (${report})`);
    assert.ok(svcOut.failed <= svcOut.ok / 10, `a few failures at most: ${report}`);
    assert.deepEqual(Object.keys(svcOut.answered).sort(), pods.map((p) => p.metadata.name).sort(), `every pod answered through the Service: ${report}`);
    process.stdout.write(`# Service: ${svcOut.ok} ok, ${svcOut.failed} failed (${JSON.stringify(window)} ms after the kill)\n`);

    // Readiness saw it: node 1's pods went NotReady and out of the ready endpoints, node 2's never did.
    const node1IPs = new Set(on(node1).map((p) => p.status!.podIP!));
    const podEvents = seen.filter((e) => e.kind === 'Pod').map((e) => ({ at: e.at, pod: e.object as Pod }));
    for (const p of on(node1)) assert.ok(podEvents.some((e) => e.pod.metadata.name === p.metadata.name && !isReady(e.pod)), `${p.metadata.name} reported NotReady`);
    const notReadyAt = Math.min(...podEvents.filter((e) => node1IPs.has(e.pod.status?.podIP ?? '') && !isReady(e.pod)).map((e) => e.at)) - killedAt;
    const readyAt = Math.max(...podEvents.filter((e) => node1IPs.has(e.pod.status?.podIP ?? '') && isReady(e.pod)).map((e) => e.at)) - killedAt;
    process.stdout.write(`# node 1's pods: NotReady ${notReadyAt} ms after the kill, Ready again ${readyAt} ms after it\n`);
    for (const p of on(node2)) assert.ok(!podEvents.some((e) => e.pod.metadata.name === p.metadata.name && !isReady(e.pod)), `${p.metadata.name} stayed Ready`);
    const readyIPs = (s: EndpointSlice) => (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses);
    const slices = seen.filter((e) => e.kind === 'EndpointSlice' && e.object.metadata.labels?.['kubernetes.io/service-name'] === 'web').map((e) => readyIPs(e.object as EndpointSlice));
    assert.ok(slices.some((ips) => ![...node1IPs].some((ip) => ips.includes(ip)) && on(node2).every((p) => ips.includes(p.status!.podIP!))), `node 1's endpoints left, node 2's stayed: ${JSON.stringify(slices)}`);
    // As containers that died: restarted once, their last state the kill.
    for (const p of back.filter((x) => x.spec.nodeName === node1)) {
      const c = p.status!.containerStatuses![0]!;
      assert.equal(c.lastState?.terminated?.exitCode, 137, JSON.stringify(c));
    }
    for (const p of back.filter((x) => x.spec.nodeName === node2)) assert.equal(p.status!.containerStatuses![0]!.restartCount, 0);
    assert.ok(!existsSync(join(stateDir, cluster, 'workloads.sock')), 'no cluster-wide host');
  });
});
