// Cluster network timings: `up` of a 3-node cluster, 100 pod sandboxes (namespace + CNI lo
// and eth0) started at once across the nodes, their teardown, and `down`.
//   npm run bench:cluster
// Reference points (issue 3): the cluster should start "in seconds"; for pods, upstream's
// pod-startup SLO is 5 s p99 per pod at 100 pods/node (containers included, which this
// does not measure yet).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterDir, down, up } from '../src/cluster/cluster.ts';
import { nodeFiles } from '../src/cluster/topology.ts';
import { SandboxManager } from '../src/node/sandbox.ts';

const PODS = Number(process.env.PODS) || 100;
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-state-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
const name = `kwb${process.pid % 100000}`;
const seconds = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(2);

try {
  let t0 = performance.now();
  const { plan } = await up({ name, nodes: 3, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' }, () => {}, { daemon: false });
  console.log(`up, 3 nodes:                ${seconds(t0)} s`);
  const managers = plan.nodes.map((n) => new SandboxManager(name, n, nodeFiles(clusterDir(name), n)));
  const pods = Array.from({ length: PODS }, (_, i) => ({ uid: `bench-${i}`, namespace: 'default', name: `p-${i}` }));
  t0 = performance.now();
  // At most 8 sandboxes in flight per node, as a kubelet's parallel pod workers would.
  const startOne = async (i: number): Promise<number> => {
    const t = performance.now();
    await managers[i % 3]!.create(pods[i]!);
    return performance.now() - t;
  };
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 24 }, async () => {
    while (next < PODS) latencies.push(await startOne(next++));
  }));
  const total = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(`${PODS} pod sandboxes:           ${total.toFixed(2)} s (${(PODS / total).toFixed(1)} pods/s; per pod p50 ${latencies[Math.floor(PODS / 2)]!.toFixed(0)} ms, p99 ${latencies[Math.floor(PODS * 0.99)]!.toFixed(0)} ms)`);
  t0 = performance.now();
  next = 0;
  await Promise.all(Array.from({ length: 24 }, async () => {
    while (next < PODS) { const i = next++; await managers[i % 3]!.remove(pods[i]!); }
  }));
  console.log(`${PODS} pod sandboxes removed:   ${seconds(t0)} s`);
  t0 = performance.now();
  await down(name);
  console.log(`down:                       ${seconds(t0)} s`);
} finally {
  await down(name).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
}
