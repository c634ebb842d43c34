// Cluster timings as a user meets them (issue 3's goals): `kubewire up` of 3 nodes (network,
// daemon, nodes Ready), then `apply` of a 100-replica Deployment until every pod is Running
// with an IP, then scaling it to 0 until every pod is gone, and `down`. For comparison in
// the same run, the raw cost of the same number of pod sandboxes (namespace + CNI lo/eth0)
// without the control plane, containers or status: what the rest adds on top.
//   npm run bench:cluster            (REPLICAS=100 by default)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resourceNamed } from '../src/api/resources.ts';
import type { Deployment, Pod } from '../src/api/types.ts';
import { ApiClient } from '../src/client/rest.ts';
import { clusterDir } from '../src/cluster/cluster.ts';
import { down, up } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { nodeFiles } from '../src/cluster/topology.ts';
import { SandboxManager } from '../src/node/sandbox.ts';
import { daemonPaths } from '../src/state/paths.ts';
import { nodeHostPaths } from '../src/workloads/client.ts';
import { linux } from '../src/dataplane/linux/host.ts';

const REPLICAS = Number(process.env.REPLICAS) || 100;
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-state-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const name = `kwb${process.pid % 100000}`;
const raw = `${name}r`;
const spec = { nodes: 3, mode: 'routed' as const, podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12' };
const seconds = (ms: number): string => (ms / 1000).toFixed(2);
const line = (what: string, value: string, goal = '') => console.log(`${what.padEnd(44)}${value.padEnd(30)}${goal}`);
const cleanup = async () => {
  await down(name).catch(() => undefined);
  await down(raw).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100)); // coarse enough not to load the daemon it measures
  }
  return performance.now() - t0;
}

try {
  let t0 = performance.now();
  await up({ name, ...spec });
  line('up, 3 nodes (network + daemon + Ready)', `${seconds(performance.now() - t0)} s`, 'goal < 3 s');

  const client = new ApiClient(daemonPaths(name).socket);
  const deployments = resourceNamed('deployments')!;
  const pods = resourceNamed('pods')!;
  const deployment: Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'bench', namespace: 'default' },
    spec: { replicas: REPLICAS, selector: { matchLabels: { app: 'bench' } }, template: { metadata: { labels: { app: 'bench' } }, spec: { containers: [{ name: 'web', image: 'hello', ports: [{ containerPort: 80 }] }] } } },
  };
  t0 = performance.now();
  await client.create(deployments, deployment);
  const ready = await until(`${REPLICAS} pods Running`, async () => {
    const list = await client.list<Pod>(pods, 'default');
    return list.items.filter((p) => p.status?.phase === 'Running' && p.status.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === REPLICAS;
  });
  line(`apply ${REPLICAS} replicas -> all Running with IPs`, `${seconds(ready)} s (${(REPLICAS / (ready / 1000)).toFixed(1)} pods/s)`, 'goal < 10 s');
  const list = await client.list<Pod>(pods, 'default');
  const perNode = new Map<string, number>();
  for (const p of list.items) perNode.set(p.spec.nodeName!, (perNode.get(p.spec.nodeName!) ?? 0) + 1);
  line('  spread over nodes', [...perNode.values()].join(' / '));
  const rss = (pidFile: string) => Number(readFileSync(`/proc/${readFileSync(pidFile, 'utf8').trim()}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
  const daemonRss = rss(daemonPaths(name).pidFile);
  const hostRss = [...perNode.keys()].map((node) => rss(nodeHostPaths(daemonPaths(name).dir, node).pidFile));
  line('  memory: daemon / workload hosts, one per node (RSS)', `${daemonRss.toFixed(0)} MB / ${hostRss.map((r) => r.toFixed(0)).join(' + ')} MB`);

  await client.call('PATCH', `/apis/apps/v1/namespaces/default/deployments/bench/scale`, { spec: { replicas: 0 } });
  const gone = await until('all pods gone', async () => (await client.list(pods, 'default')).items.length === 0);
  line(`scale to 0 -> all ${REPLICAS} pods gone`, `${seconds(gone)} s`);
  t0 = performance.now();
  await down(name);
  line('down', `${seconds(performance.now() - t0)} s`);

  // The same number of sandboxes without the control plane: the floor for the above.
  const { plan } = await up({ name: raw, ...spec }, () => {}, { daemon: false });
  const managers = plan.nodes.map((n) => new SandboxManager(raw, n, nodeFiles(clusterDir(raw), n), linux));
  const refs = Array.from({ length: REPLICAS }, (_, i) => ({ uid: `bench-${i}`, namespace: 'default', name: `p-${i}` }));
  t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 24 }, async () => {
    while (next < REPLICAS) { const i = next++; await managers[i % 3]!.create(refs[i]!); }
  }));
  const sandboxes = performance.now() - t0;
  line(`reference: ${REPLICAS} bare sandboxes, same machine`, `${seconds(sandboxes)} s (${(REPLICAS / (sandboxes / 1000)).toFixed(1)} pods/s)`, `cluster/bare = ${(ready / sandboxes).toFixed(2)}x`);
  await down(raw);
} finally {
  await cleanup();
}
