// A cluster's processes through failures, as a user runs `up` and `down`: `up` after a
// crash says what the daemon is doing; a daemon that hangs while starting makes `up` fail
// and is stopped, not left behind; a stray daemon (no pid file, as one stuck loading leaves)
// is found by its command line and stopped by `up` and by `down`; after `down` no process
// of the cluster remains.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Deployment, Event, KubeObject, Pod } from '../src/api/types.ts';
import { clusterProcesses, roleOf } from '../src/daemon/process.ts';
import { parentPid } from '../src/supervisor/supervisor.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor } from './kube.ts';

test('processes of a cluster are known by their command lines', () => {
  const cli = '/opt/kubewire/bin/kubewire.js';
  assert.equal(roleOf(['node', cli, 'daemon', '--cluster', 'a'], 'a'), 'daemon');
  assert.equal(roleOf(['node', '--expose-gc', cli, 'daemon', '--cluster', 'a'], 'a'), 'daemon', "node's flags first");
  assert.equal(roleOf(['/usr/bin/node', cli, 'ingress-controller', '--cluster', 'a', '--node', 'a-node-1'], 'a'), 'ingress-controller');
  assert.equal(roleOf(['node', cli, 'workload-host', '--cluster', 'a', '--socket', 's'], 'a'), 'workload-host');
  assert.equal(roleOf(['node', cli, 'daemon', '--cluster', 'ab'], 'a'), undefined, 'another cluster');
  assert.equal(roleOf(['node', cli, 'down', '--cluster', 'a'], 'a'), undefined, 'a user command');
  assert.equal(roleOf(['node', '/x/other.js', 'daemon', '--cluster', 'a'], 'a'), undefined);
});

describe('up and down through failures', { skip: NOT_ROOT }, () => {
  const cluster = `kwl${process.pid % 100000}`;
  let stateDir: string;
  let kube: Kube;
  const fakes: number[] = [];

  /** A process that looks like a daemon of the cluster (its command line) and does nothing: what a stuck daemon without a pid file is to `down`. */
  const strayDaemon = (): number => {
    const dir = join(stateDir, 'fake', 'bin');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'kubewire.js'), 'setInterval(() => {}, 1000);\n');
    const child = spawn(process.execPath, [join(dir, 'kubewire.js'), 'daemon', '--cluster', cluster], { detached: true, stdio: 'ignore' });
    child.unref();
    fakes.push(child.pid!);
    return child.pid!;
  };
  const alive = (pid: number) => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
    } catch {
      return false;
    }
  };
  /** The cluster's daemons; not a child the daemon has forked and not yet exec'd (`ip -batch`, ...), which wears its command line for a moment. */
  const daemons = () => {
    const pids = clusterProcesses(cluster).filter((p) => p.role === 'daemon').map((p) => p.pid);
    return pids.filter((pid) => !pids.includes(parentPid(pid) ?? 0));
  };

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-life-'));
    kube = new Kube(cluster, stateDir);
    const out = await kube.ok('up', '--nodes', '1', '--max-pods', '6');
    assert.match(out, /daemon: store opened: \d+ objects/, 'up says what the daemon does');
    assert.match(out, /daemon: node agents: 1 of 1 started/);
  });
  after(async () => {
    for (const pid of fakes) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('up after a kill -9 stops a stray daemon first and says what the new one does', async () => {
    const [daemon] = daemons();
    process.kill(daemon!, 'SIGKILL');
    await waitFor('the daemon gone', async () => !alive(daemon!));
    const stray = strayDaemon();
    await waitFor('the stray daemon found', async () => daemons().includes(stray));
    const out = await kube.ok('up');
    assert.match(out, /daemon restarted/);
    assert.match(out, /daemon: store opened/);
    assert.equal(alive(stray), false, 'the stray daemon was stopped');
    const left = daemons();
    assert.equal(left.length, 1, `daemons left: ${left.map((pid) => `${pid}: ${(() => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return 'gone'; } })()}`).join('; ')}`);
  });

  test('a daemon that hangs while starting: up fails saying so, and stops it', async () => {
    const [daemon] = daemons();
    process.kill(daemon!, 'SIGKILL');
    await waitFor('the daemon gone', async () => !alive(daemon!));
    const r = await kube.run(['up'], { env: { KUBEWIRE_FAULT_DAEMON_HANG: '1', KUBEWIRE_DAEMON_STALL_SECONDS: '2' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: the daemon of cluster kwl\d+ made no progress for 2 s \(last: store opened: [^)]*\); it was stopped/);
    assert.deepEqual(daemons(), [], 'no daemon left running');
    assert.match(await kube.ok('up'), /daemon restarted/, 'and the next up works');
    assert.match(await kube.ok('get', 'nodes'), /Ready/);
  });

  test('replicas: 1000000000: apply returns at once, the cluster holds its limit, ReplicaFailure and one FailedCreate Event, delete clears it', async () => {
    const t0 = performance.now();
    await kube.apply(`apiVersion: apps/v1
kind: Deployment
metadata: {name: huge}
spec:
  replicas: 1000000000
  selector: {matchLabels: {app: huge}}
  template:
    metadata: {labels: {app: huge}}
    spec: {containers: [{name: web, image: hello, ports: [{containerPort: 8080}]}]}
`);
    assert.ok(performance.now() - t0 < 5000, 'apply returned');
    const d = await waitFor('ReplicaFailure', async () => {
      const x = await kube.json<Deployment>('get', 'deployment', 'huge');
      return x.status?.conditions?.some((c) => c.type === 'ReplicaFailure') ? x : undefined;
    });
    assert.match(d.status!.conditions!.find((c) => c.type === 'ReplicaFailure')!.message!, /exceeded quota: cluster-pod-limit, requested: pods=1, used: pods=6, limited: pods=6 \(6 per node × 1 node; kubewire up --max-pods\)/);
    // The cluster DNS's two pods (kube-system) hold two of the six places.
    await waitFor('4 pods Running', async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items.filter((p) => p.status?.phase === 'Running').length === 4, 30_000);
    const t1 = performance.now();
    assert.equal((await kube.json<{ items: Pod[] }>('get', 'pods')).items.length, 4);
    assert.ok(performance.now() - t1 < 1000, 'get pods answers within a second');
    const failed = (await kube.json<{ items: Event[] }>('get', 'events')).items.filter((e) => e.reason === 'FailedCreate');
    assert.equal(failed.length, 1, 'one Event, counted');
    // The refusals are the ReplicaSet's events (it makes the pods), as upstream; its Deployment shows the condition.
    const [rs] = (await kube.json<{ items: KubeObject[] }>('get', 'replicasets', '-l', 'app=huge')).items;
    assert.match(await kube.ok('describe', 'replicaset', rs!.metadata.name), /FailedCreate .*\(x\d+ over/);
    await kube.ok('delete', 'deployment', 'huge');
    await waitFor('every pod gone', async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items.length === 0, 30_000);
  });

  test('kill -9 of the daemon during a 4,000-object apply: after up the store holds all of it or none, and the node\'s rules match it', async () => {
    const n = 2000;
    const docs = Array.from({ length: n }, (_, i) => `apiVersion: v1\nkind: Service\nmetadata: {name: bulk-${i}}\nspec: {clusterIP: 10.100.${(i + 1) >> 8}.${(i + 1) & 255}, ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bulk-${i}-1, labels: {kubernetes.io/service-name: bulk-${i}}}\naddressType: IPv4\nports: [{port: 80, protocol: TCP}]\nendpoints: [{addresses: [10.244.0.${2 + (i % 200)}], conditions: {ready: true}}]`);
    const file = join(stateDir, 'bulk.yaml');
    writeFileSync(file, docs.join('\n---\n'));
    const applying = kube.run(['apply', '-f', file]);
    // Somewhere in the apply: reading, sending, or inside the server's transaction.
    await new Promise((r) => setTimeout(r, 600 + Math.random() * 900));
    const [daemon] = daemons();
    process.kill(daemon!, 'SIGKILL');
    const outcome = await applying;
    await waitFor('the daemon gone', async () => !alive(daemon!));
    await kube.ok('up');
    const names = (await kube.json<{ items: Array<{ metadata: { name: string } }> }>('get', 'services')).items.map((x) => x.metadata.name).filter((x) => x.startsWith('bulk-'));
    assert.ok(names.length === 0 || names.length === n, `all or nothing: ${names.length} of ${n} (apply ${outcome.code === 0 ? 'returned' : 'failed'})`);
    if (outcome.code === 0) assert.equal(names.length, n, 'an apply that returned is in the store');
    const rules = async () => (await kube.ok('exec', '--node', `${cluster}-node-1`, '--', 'iptables-save', '-t', 'nat')).split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES ') && /"default\/bulk-\d+ cluster IP"/.test(l)).length;
    await waitFor(`the node's rules for ${names.length} Services`, async () => (await rules()) === names.length, 60_000);
    process.stdout.write(`# killed ${outcome.code === 0 ? 'after' : 'before the end of'} the apply: ${names.length} of ${n} Services kept\n`);
    if (names.length) await kube.ok('delete', '-f', file, '--wait=false');
  });

  test('the first Ingress starts the ingress controllers; down stops every process of the cluster, pid file or not', async () => {
    assert.ok(!clusterProcesses(cluster).some((p) => p.role === 'ingress-controller'), 'no ingress controller runs before the first Ingress');
    await kube.apply('apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: first}\nspec:\n  defaultBackend: {service: {name: nothing, port: {number: 80}}}\n');
    await waitFor('the node\'s ingress controller', async () => clusterProcesses(cluster).some((p) => p.role === 'ingress-controller'), 30_000);
    const stray = strayDaemon();
    const before = clusterProcesses(cluster);
    assert.deepEqual([...new Set(before.map((p) => p.role))].sort(), ['daemon', 'ingress-controller', 'workload-host']);
    assert.match(await kube.ok('down'), /removed/);
    assert.deepEqual(clusterProcesses(cluster), [], 'nothing of the cluster runs');
    assert.equal(alive(stray), false);
    assert.match((await kube.ok('up', '--nodes', '1')), /is up/, 'up again for after()');
  });
});
