// A cluster network on the real kernel: nodes on an underlay, per-node podCIDRs, pods wired
// by each node's own CNI configuration, and traffic across nodes with no NAT, in both
// routing modes. `down` leaves nothing; the machine's root namespace is never touched.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clusterDir, ipvsAvailable } from '../src/cluster/cluster.ts';
import { down, up } from '../src/lifecycle/cluster.ts';
import { nodeCIDR, planCluster, SpecError, type ClusterPlan } from '../src/cluster/plan.ts';
import { nodeFiles } from '../src/cluster/topology.ts';
import { loadDefaultConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime } from '../src/cni/runtime/runtime.ts';
import { run } from '../src/dataplane/linux/exec.ts';
import { netnsPath } from '../src/dataplane/port.ts';
import { withLab } from '../src/lab/lab.ts';
import { NOT_ROOT, rootState, sh } from './helpers.ts';
import { linux } from '../src/dataplane/linux/host.ts';

test('address plan: node CIDRs cut in order from the cluster range, node IPs on the underlay', () => {
  const plan = planCluster({ name: 'demo', nodes: 3, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' });
  assert.deepEqual(plan.nodes.map((n) => [n.name, n.ip, n.podCIDR, n.bridgeIP]), [
    ['demo-node-1', '172.18.0.11', '10.244.0.0/24', '10.244.0.1'],
    ['demo-node-2', '172.18.0.12', '10.244.1.0/24', '10.244.1.1'],
    ['demo-node-3', '172.18.0.13', '10.244.2.0/24', '10.244.2.1'],
  ]);
  assert.equal(nodeCIDR('10.100.0.0/16', 26, 5), '10.100.1.64/26');
  assert.equal(plan.networkNetns, 'kw_demo_network');
});

test('bad specs are refused naming the flag', () => {
  const base = { name: 'ok', nodes: 2, mode: 'routed' as const, podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' };
  const cases: Array<[object, RegExp]> = [
    [{ name: 'Bad_Name' }, /--cluster "Bad_Name"/],
    [{ nodes: 0 }, /--nodes 0/],
    [{ mode: 'bgp' as never }, /--mode "bgp": must be routed, host-gw, vxlan or vpc/],
    [{ externalSNAT: true }, /--external-snat need --mode vpc/],
    [{ mode: 'vpc', warmIPTarget: -1 }, /--warm-ip-target -1: must be a whole number from 0 to 1000/],
    [{ podCIDR: '10.244.0.0' }, /--pod-cidr "10\.244\.0\.0" is not a CIDR/],
    [{ podCIDR: '10.244.1.0/16' }, /host bits set; did you mean 10\.244\.0\.0\/16/],
    [{ podCIDR: '10.244.0.0/24', nodes: 3 }, /--node-cidr-mask 24|holds only 1 node CIDRs/],
    [{ podCIDR: '10.96.0.0/16' }, /overlap/],
    [{ podCIDR: '172.18.0.0/16' }, /overlaps the node network/],
    [{ proxyMode: 'userspace' }, /--proxy-mode "userspace": must be iptables, nftables or ipvs/],
  ];
  for (const [patch, re] of cases) assert.throws(() => planCluster({ ...base, ...patch }), (e: unknown) => e instanceof SpecError && re.test(e.message), JSON.stringify(patch));
});

for (const mode of ['routed', 'host-gw'] as const) {
  describe(`cluster network, ${mode}`, { skip: NOT_ROOT }, () => {
    const name = `kwt${process.pid % 100000}${mode === 'routed' ? 'r' : 'h'}`;
    let plan: ClusterPlan;
    let stateDir: string;
    let rootBefore: string;

    before(async () => {
      stateDir = mkdtempSync(join(tmpdir(), 'kwt-state-'));
      process.env.KUBEWIRE_STATE_DIR = stateDir;
      rootBefore = await rootState();
      ({ plan } = await up({ name, nodes: 3, mode, podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' }, () => {}, { daemon: false }));
    });
    after(async () => {
      await down(name).catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
    });

    test('pods on different nodes talk with their own IPs (no NAT); a node reaches its pods', async () => {
      await withLab(`kwt-pods-${mode}`, async (lab) => {
        const pods: Array<{ netns: string; ip: string }> = [];
        for (const [i, node] of plan.nodes.entries()) {
          const files = nodeFiles(clusterDir(name), node);
          const rt = new CniRuntime({ dataplane: linux, path: [files.binDir], cacheDir: files.cacheDir, hostNetns: netnsPath(node.netns), inProcess: true });
          const netns = await lab.netns(`p${i}`);
          const result = await rt.addNetworkList(loadDefaultConfList(files.confDir), { containerID: `pod${i}`, netns, ifName: 'eth0' });
          const ip = result.ips![0]!.address.split('/')[0]!;
          assert.ok(ip.startsWith(node.podCIDR!.split('.').slice(0, 3).join('.')), `${ip} outside ${node.podCIDR}`);
          pods.push({ netns, ip });
        }
        await lab.echoServer(pods[1]!.netns, 8080, 'pod1');
        assert.equal((await lab.httpGet(pods[0]!.netns, `http://${pods[1]!.ip}:8080/`)).trim(), `hello from pod1, you are ${pods[0]!.ip}`);
        assert.equal((await lab.httpGet(pods[2]!.netns, `http://${pods[1]!.ip}:8080/`)).trim(), `hello from pod1, you are ${pods[2]!.ip}`);
        // The node agent's view: node-2 reaches its own pod directly over cni0.
        assert.match(await lab.httpGet(netnsPath(plan.nodes[1]!.netns), `http://${pods[1]!.ip}:8080/`), /you are 10\.244\.1\.1\n/);
        // Leaving the cluster, pod traffic is masqueraded to its node's address.
        await lab.echoServer(netnsPath(plan.externalNetns), 8081, 'outside');
        assert.equal((await lab.httpGet(pods[1]!.netns, 'http://172.18.0.200:8081/')).trim(), `hello from outside, you are ${plan.nodes[1]!.ip}`);
        const path = await sh(pods[0]!.netns, ['ip', 'route', 'get', pods[1]!.ip]);
        assert.match(path, /via 10\.244\.0\.1 dev eth0/);
        if (mode === 'routed') {
          assert.match(await sh(netnsPath(plan.networkNetns), ['ip', 'route', 'show']), /10\.244\.1\.0\/24 via 172\.18\.0\.12/);
          assert.doesNotMatch(await sh(netnsPath(plan.nodes[0]!.netns), ['ip', 'route', 'show']), /10\.244\.1\.0\/24/);
        } else {
          assert.match(await sh(netnsPath(plan.nodes[0]!.netns), ['ip', 'route', 'show']), /10\.244\.1\.0\/24 via 172\.18\.0\.12 dev eth0/);
          assert.doesNotMatch(await sh(netnsPath(plan.networkNetns), ['ip', 'route', 'show']), /10\.244\./);
        }
      });
    });

    test('up on an existing cluster is refused; down removes everything; the root namespace is untouched', async () => {
      await assert.rejects(up({ name, nodes: 1, mode, podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' }, () => {}, { daemon: false }), /already exists/);
      const removed = await down(name);
      assert.equal(removed.length, 5);
      assert.deepEqual((await run(['ip', 'netns', 'list'])).split('\n').filter((l) => l.startsWith(`kw_${name}_`)), []);
      assert.ok(!existsSync(clusterDir(name)));
      assert.deepEqual(readdirSync(stateDir), []);
      await assert.rejects(down(name), /does not exist/);
      assert.equal(await rootState(), rootBefore);
    });
  });
}

test('--proxy-mode ipvs on a kernel without IPVS is refused before anything is made', { skip: ipvsAvailable() ? 'this kernel has IPVS' : NOT_ROOT }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'kwt-ipvs-'));
  process.env.KUBEWIRE_STATE_DIR = stateDir;
  try {
    await assert.rejects(up({ name: 'kwtipvs', nodes: 1, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12', proxyMode: 'ipvs' }), /--proxy-mode ipvs needs the kernel's IPVS \(the ip_vs module\), and this kernel has none/);
    assert.deepEqual(readdirSync(stateDir), []);
    assert.deepEqual((await run(['ip', 'netns', 'list'])).split('\n').filter((l) => l.startsWith('kw_kwtipvs_')), []);
  } finally {
    delete process.env.KUBEWIRE_STATE_DIR;
    rmSync(stateDir, { recursive: true, force: true });
  }
});
