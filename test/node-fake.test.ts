// Without root: a node against the fake dataplane — the sandbox manager's and the node
// agent's reconcile (pods wanted vs found): sandboxes made through in-process CNI (bridge,
// host-local, portmap), pods reported Running with their IPs, a deleted pod torn down and
// finalized, and after a restart of the agent the wanted pods adopted as they were and the
// others' namespaces and IPs removed. The same on the real kernel: sandbox.test.ts, pods.test.ts.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Pod } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { Store } from '../src/apiserver/store.ts';
import { planCluster, type NodePlan } from '../src/cluster/plan.ts';
import { nodeConflist, nodeFiles } from '../src/cluster/topology.ts';
import { installPlugins } from '../src/cni/install.ts';
import { writeConfListAtomically } from '../src/cni/runtime/conflist.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { NodeAgent } from '../src/node/agent.ts';
import { SandboxManager } from '../src/node/sandbox.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kwt-nodefake-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("the sandbox manager's reconcile on a fake node: pods not wanted any more are torn down, their IPs released", async () => {
  const dp = new FakeDataplane();
  const node: NodePlan = { name: 'n1', ip: '172.18.0.11', podCIDR: '10.244.1.0/24', bridgeIP: '10.244.1.1', netns: 'kw_fk_n1', underlayPort: 'n1' };
  await dp.createNetns(node.netns);
  const files = nodeFiles(join(scratch, 'sandbox'), node);
  for (const dir of Object.values(files)) mkdirSync(dir, { recursive: true });
  installPlugins({ dir: files.binDir });
  writeConfListAtomically(join(files.confDir, '10-kubewire.conflist'), nodeConflist(node, files));
  const sm = new SandboxManager('fk', node, files, dp);
  const refs = ['a', 'b', 'c'].map((n) => ({ uid: `uid-${n}`, namespace: 'default', name: n }));
  const boxes = [];
  for (const r of refs) boxes.push(await sm.create(r));
  assert.deepEqual(boxes.map((b) => b.ip), ['10.244.1.2', '10.244.1.3', '10.244.1.4']);
  assert.deepEqual((await sm.namespaces()).length, 3);
  // A restarted agent wants only `a`.
  const removed = await new SandboxManager('fk', node, files, dp).gc([refs[0]!]);
  assert.deepEqual(removed.sort(), [sm.netnsName(refs[1]!), sm.netnsName(refs[2]!)].sort());
  assert.deepEqual(await sm.namespaces(), [sm.netnsName(refs[0]!)]);
  assert.deepEqual(readdirSync(join(files.ipamDir, 'kubewire')).filter((f) => /^\d/.test(f)), ['10.244.1.2']);
  assert.equal((await dp.at(dp.netnsPath(node.netns)).links('cni0')).length, 1, "only a's veth is left on the bridge");
});

test("the node agent's reconcile on a fake node: pods started, a deleted one torn down, and after a restart the wanted adopted and the rest removed", async () => {
  const plan = planCluster({ name: 'fa', nodes: 1, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' });
  const node = plan.nodes[0]!;
  const dp = new FakeDataplane();
  await dp.createNetns(node.netns);
  const root = join(scratch, 'agent');
  const files = nodeFiles(root, node);
  for (const dir of Object.values(files)) mkdirSync(dir, { recursive: true });
  installPlugins({ dir: files.binDir });
  writeConfListAtomically(join(files.confDir, '10-kubewire.conflist'), nodeConflist(node, files));
  const store = new Store(join(scratch, 'agent.db'));
  const api = new Api(store);
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  const served = new Map<string, string>(); // uid -> pod IP, as the workload host would serve it
  const host = {
    ensure: async (uid: string, spec: { pod: { ip: string } }) => void served.set(uid, spec.pod.ip),
    stop: async (uid: string) => void served.delete(uid),
  };
  const logs: string[] = [];
  const agentOf = () => new NodeAgent({ api, plan, node, files, stateDir: join(root, 'state'), host, dataplane: dp, log: (l) => logs.push(l) });
  const web = (name: string): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { nodeName: node.name, containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80 }] }] } });
  const podIP = (name: string) => (api.tryGet({ kind: 'Pod', namespace: 'default', name }) as Pod | undefined)?.status?.podIP;
  const settle = async (agent: { idle(): Promise<void> }, done: () => boolean) => {
    for (let i = 0; i < 200 && !done(); i++) {
      await agent.idle();
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(done(), `settled (${logs.slice(-3).join(' | ')})`);
  };
  let agent = agentOf();
  try {
    await agent.start();
    for (const n of ['a', 'b', 'c']) api.create(web(n));
    await settle(agent, () => ['a', 'b', 'c'].every((n) => podIP(n)));
    assert.deepEqual(['a', 'b', 'c'].map(podIP).sort(), ['10.244.0.2', '10.244.0.3', '10.244.0.4']);
    assert.equal((api.get({ kind: 'Pod', namespace: 'default', name: 'a' }) as Pod).status?.phase, 'Running');
    assert.equal(served.size, 3, 'each pod\'s built-in workload is served');
    assert.equal((await dp.listNetns(`kw_fa_pod_${node.name}_`)).length, 3);

    // A deletion: the agent stops the workload, removes the sandbox, and finalizes the pod.
    const ipB = podIP('b');
    api.delete({ kind: 'Pod', namespace: 'default', name: 'b' });
    await settle(agent, () => !api.tryGet({ kind: 'Pod', namespace: 'default', name: 'b' }));
    assert.equal([...served.values()].includes(ipB!), false);
    assert.equal((await dp.listNetns(`kw_fa_pod_${node.name}_`)).length, 2);

    // The agent goes down; meanwhile c is deleted for good. A new agent adopts a and removes c.
    await agent.stop();
    const aNetns = (await dp.listNetns(`kw_fa_pod_${node.name}_default_a`))[0];
    api.delete({ kind: 'Pod', namespace: 'default', name: 'c' }, { gracePeriodSeconds: 0 });
    agent = agentOf();
    await agent.start();
    await settle(agent, () => served.size === 1);
    assert.deepEqual(await dp.listNetns(`kw_fa_pod_${node.name}_`), [aNetns], "a's sandbox adopted as it was, c's removed");
    assert.equal(podIP('a'), '10.244.0.2', 'a kept its IP');
    assert.deepEqual(readdirSync(join(files.ipamDir, 'kubewire')).filter((f) => /^\d/.test(f)), ['10.244.0.2'], "c's IP is free");

    // The node's workload host dies: a's built-in container died with it. Not ready at once
    // (its endpoint leaves), then served again by a new host, restarted once.
    await agent.idle();
    served.clear();
    agent.workloadHostLost();
    const a = () => api.get({ kind: 'Pod', namespace: 'default', name: 'a' }) as Pod;
    const ready = () => a().status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    assert.equal(ready(), false, 'NotReady before any restart');
    assert.deepEqual(a().status?.containerStatuses?.[0]?.state.terminated?.exitCode, 137);
    await settle(agent, () => served.size === 1 && ready());
    assert.equal(a().status?.containerStatuses?.[0]?.restartCount, 1);
    assert.equal(a().status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 137);
    assert.ok(a().status?.containerStatuses?.[0]?.state.running);
  } finally {
    await agent.stop();
    store.close();
  }
});
