// `kubewire up`, `down`, `get nodes`, `exec --node|--external`: the cluster network.

import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { ClusterError, down, loadCluster, up } from '../cluster/cluster.ts';
import { DEFAULT_SPEC, type RoutingMode } from '../cluster/plan.ts';
import { clusterNamespaces } from '../cluster/topology.ts';
import { netnsPath } from '../lab/lab.ts';

const defaultCluster = (): string => process.env.KUBEWIRE_CLUSTER || 'kubewire';

function integer(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new ClusterError(`${flag} ${JSON.stringify(v)} is not a whole number`);
    return Number(v);
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n');
}

export function registerClusterCommands(program: Command): void {
  program
    .command('up')
    .description('create a cluster network: an underlay with its router, N nodes, an external client')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .option('--nodes <n>', 'number of nodes', integer('--nodes'), DEFAULT_SPEC.nodes)
    .option('--mode <mode>', 'routed (the underlay router holds a route per podCIDR) or host-gw (nodes route to each other)', DEFAULT_SPEC.mode)
    .option('--pod-cidr <cidr>', 'cluster pod range', DEFAULT_SPEC.podCIDR)
    .option('--node-cidr-mask <bits>', 'prefix length of each node podCIDR', integer('--node-cidr-mask'), DEFAULT_SPEC.nodeCIDRMask)
    .option('--service-cidr <cidr>', 'Service ClusterIP range', DEFAULT_SPEC.serviceCIDR)
    .action(async (o: { cluster: string; nodes: number; mode: RoutingMode; podCidr: string; nodeCidrMask: number; serviceCidr: string }) => {
      const t0 = performance.now();
      const plan = await up(
        { name: o.cluster, nodes: o.nodes, mode: o.mode, podCIDR: o.podCidr, nodeCIDRMask: o.nodeCidrMask, serviceCIDR: o.serviceCidr },
        (line) => process.stdout.write(` • ${line}\n`),
      );
      process.stdout.write(`cluster ${plan.spec.name} is up in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
      process.stdout.write(`${table([['NODE', 'INTERNAL-IP', 'POD-CIDR'], ...plan.nodes.map((n) => [n.name, n.ip, n.podCIDR])])}\n`);
    });

  program
    .command('down')
    .description('remove a cluster: every namespace, link, process and file it made')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .action(async (o: { cluster: string }) => {
      const removed = await down(o.cluster);
      process.stdout.write(`cluster ${o.cluster} removed (${removed.length} namespaces)\n`);
    });

  const get = program.command('get').description('display resources');
  get
    .command('nodes')
    .description('list the nodes of the cluster')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .option('-o, --output <format>', 'wide or json')
    .action(async (o: { cluster: string; output?: string }) => {
      const plan = loadCluster(o.cluster);
      const present = new Set(await clusterNamespaces(o.cluster));
      const items = plan.nodes.map((n) => ({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: n.name },
        spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
        status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }], conditions: [{ type: 'Ready', status: present.has(n.netns) ? 'True' : 'False' }] },
      }));
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2)}\n`);
        return;
      }
      const wide = o.output === 'wide';
      const rows = [['NAME', 'STATUS', ...(wide ? ['INTERNAL-IP', 'POD-CIDR', 'NETNS'] : [])]];
      for (const [i, n] of plan.nodes.entries()) {
        rows.push([n.name, items[i]!.status.conditions[0]!.status === 'True' ? 'Ready' : 'NotReady', ...(wide ? [n.ip, n.podCIDR, n.netns] : [])]);
      }
      process.stdout.write(`${table(rows)}\n`);
    });

  program
    .command('exec')
    .description('run a command in a node\'s root namespace (--node) or in the external client (--external)')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .option('--node <name>', 'node name')
    .option('--external', 'the client outside the cluster')
    .argument('<command...>', 'command and arguments, after --')
    .action(async (command: string[], o: { cluster: string; node?: string; external?: boolean }) => {
      const plan = loadCluster(o.cluster);
      let netns: string;
      if (o.external) netns = plan.externalNetns;
      else if (o.node) {
        const node = plan.nodes.find((n) => n.name === o.node);
        if (!node) throw new ClusterError(`node ${JSON.stringify(o.node)} not found in cluster ${o.cluster} (nodes: ${plan.nodes.map((n) => n.name).join(', ')})`);
        netns = node.netns;
      } else throw new ClusterError('exec needs --node NAME or --external (pods come with the control plane)');
      const child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', ...command], { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => {
        child.on('error', (e) => { process.stderr.write(`error: ${e.message}\n`); resolve(1); });
        child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    });
}
