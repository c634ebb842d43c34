// Pod sandboxes on the nodes of a real cluster network: namespaces wired through CNI for lo
// and eth0, teardown, and recovery after a crash.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clusterDir } from '../src/cluster/cluster.ts';
import { down, up } from '../src/lifecycle/cluster.ts';
import type { ClusterPlan } from '../src/cluster/plan.ts';
import { nodeFiles } from '../src/cluster/topology.ts';
import { run } from '../src/dataplane/linux/exec.ts';
import { netnsPath } from '../src/dataplane/port.ts';
import { Lab } from '../src/lab/lab.ts';
import { SandboxManager, type PodRef } from '../src/node/sandbox.ts';
import { SandboxWorker } from '../src/daemon/sandbox-worker.ts';
import { NOT_ROOT, sh } from './helpers.ts';
import { linux } from '../src/dataplane/linux/host.ts';

describe('pod sandboxes', { skip: NOT_ROOT }, () => {
  const name = `kwt${process.pid % 100000}s`;
  let plan: ClusterPlan;
  let stateDir: string;
  let managers: SandboxManager[];
  const lab = new Lab(`kwt-sbx${process.pid % 100000}`);

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-state-'));
    process.env.KUBEWIRE_STATE_DIR = stateDir;
    ({ plan } = await up({ name, nodes: 2, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' }, () => {}, { daemon: false }));
    managers = plan.nodes.map((n) => new SandboxManager(name, n, nodeFiles(clusterDir(name), n), linux));
  });
  after(async () => {
    await lab.cleanup();
    await down(name).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const pod = (i: number): PodRef => ({ uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, namespace: 'default', name: `web-${i}` });
  const ipamFiles = (node: number) => readdirSync(join(nodeFiles(clusterDir(name), plan.nodes[node]!).ipamDir, 'kubewire')).filter((f) => /^\d/.test(f)).sort();

  test('16 pods started at once on two nodes: own namespaces, lo up, distinct IPs from each node\'s podCIDR, reachable across nodes', async () => {
    const pods = Array.from({ length: 16 }, (_, i) => pod(i));
    const sandboxes = await Promise.all(pods.map((p, i) => managers[i % 2]!.create(p)));
    const ips = sandboxes.map((s) => s.ip);
    assert.equal(new Set(ips).size, 16);
    sandboxes.forEach((s, i) => assert.ok(s.ip.startsWith(i % 2 ? '10.244.1.' : '10.244.0.'), `${s.ip} not in its node's podCIDR`));
    assert.match(await sh(sandboxes[0]!.netns, ['ip', 'addr', 'show', 'lo']), /inet 127\.0\.0\.1\/8/);
    assert.equal((await managers[0]!.namespaces()).length, 8);
    await lab.echoServer(sandboxes[1]!.netns, 8080, 'web-1');
    assert.equal((await lab.httpGet(sandboxes[0]!.netns, `http://${sandboxes[1]!.ip}:8080/`)).trim(), `hello from web-1, you are ${sandboxes[0]!.ip}`);
    assert.deepEqual(ipamFiles(0).length, 8);

    await Promise.all(pods.map((p, i) => managers[i % 2]!.remove(p)));
    await managers[0]!.remove(pods[0]!); // twice is fine
    assert.deepEqual(await managers[0]!.namespaces(), []);
    assert.deepEqual(ipamFiles(0), []);
    assert.equal((await sh(netnsPath(plan.nodes[0]!.netns), ['ip', '-o', 'link', 'show', 'master', 'cni0'])).trim(), '');
  });

  test('after a crash, gc keeps the wanted pods and removes the rest: sandboxes, half-made namespaces, IPs', async () => {
    const [a, b, c] = [pod(100), pod(101), pod(102)];
    await managers[0]!.create(a!);
    await managers[0]!.create(b!);
    // A crash between creating c's namespace and wiring it: a namespace with nothing in it.
    await run(['ip', 'netns', 'add', managers[0]!.netnsName(c!)]);
    // A new manager, as after a restart of the node agent; only `a` is still wanted.
    const restarted = new SandboxManager(name, plan.nodes[0]!, nodeFiles(clusterDir(name), plan.nodes[0]!), linux);
    const removed = await restarted.gc([a!]);
    assert.deepEqual(removed.sort(), [managers[0]!.netnsName(b!), managers[0]!.netnsName(c!)].sort());
    assert.deepEqual(await restarted.namespaces(), [managers[0]!.netnsName(a!)]);
    assert.equal(ipamFiles(0).length, 1);
    assert.equal((await sh(netnsPath(plan.nodes[0]!.netns), ['ip', '-o', 'link', 'show', 'master', 'cni0'])).trim().split('\n').length, 1);
    await restarted.remove(a!);
  });

  test('a crash mid-setup of a pod that is still wanted: creating it again replaces the half-made sandbox, one IP', async () => {
    const p = pod(103)!;
    await managers[1]!.create(p);
    // The agent died before recording the sandbox: the namespace and the IP exist, the record does not.
    const again = await managers[1]!.create(p);
    assert.deepEqual(await managers[1]!.namespaces(), [managers[1]!.netnsName(p)]);
    assert.deepEqual(ipamFiles(1), [again.ip]);
    assert.equal((await sh(again.netns, ['ip', '-o', '-4', 'addr', 'show', 'eth0'])).includes(again.ip), true);
    await managers[1]!.remove(p);
  });

  // The thread runs the CLI's entry, as in the daemon (the built bundle: npm run build).
  test("the daemon's sandbox thread: the same sandboxes made off the caller's event loop, errors as messages, a thread that died started again", async () => {
    const logged: string[] = [];
    const worker = new SandboxWorker({ cluster: name, nodes: plan.nodes.map((node) => ({ node, files: nodeFiles(clusterDir(name), node) })) }, (l) => logged.push(l));
    try {
      const node0 = worker.forNode(plan.nodes[0]!);
      const [p, q] = [pod(200), pod(201)];
      const made = await node0.create(p!);
      assert.ok(made.ip.startsWith('10.244.0.'), `${made.ip} not in node 1's podCIDR`);
      assert.equal(made.netns, netnsPath(node0.netnsName(p!)));
      assert.match(await sh(made.netns, ['ip', '-o', '-4', 'addr', 'show', 'eth0']), new RegExp(made.ip.replaceAll('.', '\\.')));
      assert.deepEqual(await node0.namespaces(), [node0.netnsName(p!)]);
      // A node the thread was not given: the caller's promise fails, naming it.
      await assert.rejects(worker.forNode({ ...plan.nodes[0]!, name: 'nope' }).namespaces(), /no node "nope"/);
      // The thread dies (as a crash would end it): what was asked fails, the next call starts another.
      const asked = node0.create(q!);
      await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await assert.rejects(asked, /sandbox worker exited/);
      assert.ok(logged.some((l) => /sandbox worker exited/.test(l)), logged.join('\n'));
      await node0.remove(q!); // whatever the dead thread left of q
      await node0.remove(p!);
      assert.deepEqual(await node0.namespaces(), []);
      assert.deepEqual(ipamFiles(0), []);
    } finally {
      await worker.close();
    }
  });
});
