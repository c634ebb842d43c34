// `kubewire up --components external`: every node component runs as its own program with only
// a kubeconfig, as it would on a real cluster, instead of inside the daemon:
//   - on each node, in the node's network namespace (hostNetwork): `kubewire proxy` and
//     `kubewire ingress`, detached (they outlive a daemon restart, as the kubelet's static
//     pods do), named by pid files, started again by the daemon's watchdog if they die;
//   - the cluster DNS: the coredns Deployment's pods run `kubewire dns`, reaching the API at
//     the kubernetes Service's ClusterIP (through the nodes' proxies), as CoreDNS does.
// Their kubeconfigs are the admin's, written under the cluster's directory: the node's one
// points at the API's door in each node's namespace (https://127.0.0.1:PORT), the pods' one
// at https://KUBERNETES-SERVICE-IP:443.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Container } from '../api/types.ts';
import { addToIP, firstIP, formatIP, tryParsePrefix } from '../netaddr/ip.ts';
import { DEFAULT_CLUSTER_DOMAIN, podRange, type ClusterPlan, type ClusterSpec, type NodePlan } from '../cluster/plan.ts';
import { netnsPath } from '../dataplane/port.ts';
import { clusterKubeconfig } from '../identity/access.ts';
import { printKubeconfig } from '../identity/kubeconfig.ts';
import { cliEnv, cliPath, clusterDir } from '../state/paths.ts';
import { livePid } from '../state/pidfile.ts';
import { startDetached } from '../supervisor/supervisor.ts';

export type ComponentLayout = 'internal' | 'external';

/** The programs each node runs in the external layout (the DNS runs in pods). */
const NODE_COMPONENTS = ['proxy', 'ingress'] as const;
type NodeComponent = (typeof NODE_COMPONENTS)[number];

export const externalComponents = (spec: Pick<ClusterSpec, 'components'>): boolean => spec.components === 'external';

export function componentPaths(cluster: string) {
  const dir = join(clusterDir(cluster), 'components');
  return {
    dir,
    nodeKubeconfig: join(dir, 'node.kubeconfig'),
    podKubeconfig: join(dir, 'pod.kubeconfig'),
    pidFile: (c: NodeComponent, node: string) => join(dir, `${c}-${node}.pid`),
    log: (c: NodeComponent, node: string) => join(dir, `${c}-${node}.log`),
  };
}

/** The kubernetes Service's ClusterIP: the service range's first address. */
function apiServiceIP(spec: ClusterSpec): string {
  const range = tryParsePrefix(spec.serviceCIDR);
  if (!range) throw new Error(`service CIDR ${spec.serviceCIDR} is not a prefix`);
  return formatIP(addToIP(firstIP(range), 1n));
}

/** Writes the two kubeconfigs (the admin's credentials; 0600, root's). */
export function writeComponentKubeconfigs(cluster: string, spec: ClusterSpec): void {
  const p = componentPaths(cluster);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const k = clusterKubeconfig(cluster, clusterDir(cluster));
  writeFileSync(p.nodeKubeconfig, printKubeconfig(k), { mode: 0o600 });
  const inPods = { ...k, clusters: k.clusters.map((c) => ({ ...c, cluster: { ...c.cluster, server: `https://${apiServiceIP(spec)}:443` } })) };
  writeFileSync(p.podKubeconfig, printKubeconfig(inPods), { mode: 0o600 });
}

/** A component's argv on `node` (pure). The first node's ingress controller writes Ingress statuses and Events. */
export function componentArgv(c: NodeComponent, plan: ClusterPlan, node: NodePlan, kubeconfig: string): string[] {
  const base = [cliPath(), c, '--kubeconfig', kubeconfig];
  if (c === 'proxy') {
    return [...base, '--hostname-override', node.name, '--proxy-mode', plan.spec.proxyMode ?? 'iptables', '--cluster-cidr', podRange(plan), ...(plan.spec.metricsBindAddress ? ['--metrics-bind-address', plan.spec.metricsBindAddress] : [])];
  }
  return [
    ...base, '--node-name', node.name, '--publish-status-address', plan.nodes.map((n) => n.ip).join(','),
    `--update-status=${plan.nodes[0]!.name === node.name}`, '--access-log', componentPaths(plan.spec.name).log(c, node.name).replace(/\.log$/, '.access.log'),
    ...(plan.spec.ingressUseForwardedHeaders ? ['--use-forwarded-headers'] : []),
  ];
}

const pidOf = (cluster: string, c: NodeComponent, node: string) => livePid(componentPaths(cluster).pidFile(c, node), c, node);

/** Starts every node's proxy and ingress controller that does not run; returns what it started ("proxy on node-1"). */
export async function ensureNodeComponents(plan: ClusterPlan): Promise<string[]> {
  const cluster = plan.spec.name;
  const p = componentPaths(cluster);
  if (!existsSync(p.nodeKubeconfig)) writeComponentKubeconfigs(cluster, plan.spec);
  const started: string[] = [];
  for (const node of plan.nodes) {
    if (!existsSync(netnsPath(node.netns))) continue;
    for (const c of NODE_COMPONENTS) {
      if (pidOf(cluster, c, node.name)) continue;
      const rec = await startDetached({ argv: [process.execPath, ...componentArgv(c, plan, node, p.nodeKubeconfig)], env: cliEnv(), netns: netnsPath(node.netns), logFile: p.log(c, node.name) });
      writeFileSync(p.pidFile(c, node.name), `${rec.pid}\n`, { mode: 0o600 });
      started.push(`${c} on ${node.name}`);
    }
  }
  return started;
}

/** The pids of the cluster's running node components (for `down`). */
export function nodeComponentPids(cluster: string): number[] {
  const dir = componentPaths(cluster).dir;
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pid')) : [];
  return files
    .map((f) => {
      const [c, ...node] = f.slice(0, -4).split('-');
      return (NODE_COMPONENTS as readonly string[]).includes(c!) ? pidOf(cluster, c as NodeComponent, node.join('-')) : undefined;
    })
    .filter((pid): pid is number => pid !== undefined);
}

/** The coredns pods' container in the external layout: `kubewire dns` with the pods' kubeconfig. */
export function externalDnsContainer(spec: ClusterSpec, base: Container): Container {
  const upstream = spec.upstreamDns ? ['--upstream-dns', spec.upstreamDns] : [];
  return {
    ...base,
    image: 'kubewire/kubewire',
    // Young generation semi-spaces of 2 MB, as the kubewire/dns image runs (workload-kind.ts).
    command: [process.execPath, '--max-semi-space-size=2', cliPath(), 'dns', '--kubeconfig', componentPaths(spec.name).podKubeconfig, '--cluster-domain', spec.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN, '--reverse-cidrs', `${spec.podCIDR},${spec.serviceCIDR}`, ...upstream],
  };
}
