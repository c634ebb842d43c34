// `kubewire up` and `down`: the cluster network, its control plane and its node agents;
// and the background processes `up` starts (`daemon`, `workload-host`, `ingress-controller`).

import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ClusterError } from '../cluster/cluster.ts';
import { down, up } from '../lifecycle/cluster.ts';
import { clusterKernel } from '../kernel/client.ts';
import { DEFAULT_SPEC, IPVS_SCHEDULERS, validateSpec, type ClusterSpec, type ProxyMode, type RoutingMode } from '../cluster/plan.ts';
import { defaultCluster } from './kubectl.ts';
import { exportKubeconfig, forgetKubeconfig } from './kubeconfig.ts';
import { table } from './print.ts';
import { linux } from '../dataplane/linux/host.ts';
import { upInKernel } from '../lifecycle/kernel.ts';
import { chooseKernel, mayUseHostKernel } from '../lifecycle/privileges.ts';
import { umlMissing } from '../supervisor/uml.ts';

/**
 * A kubewire command line as the user would type it next (pure in its inputs): with sudo when
 * they ran this one through sudo, and --cluster only for a cluster that is not the default.
 */
export function typed(args: string, cluster: string, env: NodeJS.ProcessEnv = process.env): string {
  const sudo = env.SUDO_USER && !env.KUBEWIRE_GUEST ? 'sudo ' : '';
  const clusterFlag = cluster === (env.KUBEWIRE_CLUSTER || 'kubewire') ? '' : ` --cluster ${cluster}`;
  return `${sudo}kubewire ${args}${clusterFlag}`;
}

/** A command line without some options and their values (`--flag V` or `--flag=V`) (pure). */
export function withoutOptions(argv: string[], flags: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (flags.includes(a)) i++;
    else if (!flags.some((f) => a.startsWith(`${f}=`))) out.push(a);
  }
  return out;
}

function integer(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new ClusterError(`${flag} ${JSON.stringify(v)} is not a whole number`);
    return Number(v);
  };
}

export function registerClusterCommands(program: Command): void {
  program
    .command('up')
    .description('create a cluster: an underlay with its router, N nodes, an external client, the control plane and node agents')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .option('--nodes <n>', 'number of nodes', integer('--nodes'), DEFAULT_SPEC.nodes)
    .option('--mode <mode>', 'routed (the underlay router holds a route per podCIDR), host-gw (nodes route to each other), vxlan (nodes wrap pod packets in VXLAN, as flannel does) or vpc (pods take addresses of the underlay itself, as the AWS VPC CNI); or KUBEWIRE_MODE', process.env.KUBEWIRE_MODE || DEFAULT_SPEC.mode)
    .option('--warm-ip-target <n>', 'vpc mode: free addresses each node keeps in its pool (WARM_IP_TARGET, default 5)', integer('--warm-ip-target'))
    .option('--minimum-ip-target <n>', 'vpc mode: addresses each node holds at least (MINIMUM_IP_TARGET)', integer('--minimum-ip-target'))
    .option('--ip-cooldown-period <seconds>', 'vpc mode: how long a freed address waits before another pod gets it (IP_COOLDOWN_PERIOD, default 30)', integer('--ip-cooldown-period'))
    .option('--external-snat', 'vpc mode: pod traffic leaving the VPC keeps its pod address (a NAT outside translates it; AWS_VPC_K8S_CNI_EXTERNALSNAT)')
    .option('--pod-cidr <cidr>', 'cluster pod range', DEFAULT_SPEC.podCIDR)
    .option('--node-cidr-mask <bits>', 'prefix length of each node podCIDR', integer('--node-cidr-mask'), DEFAULT_SPEC.nodeCIDRMask)
    .option('--service-cidr <cidr>', 'Service ClusterIP range', DEFAULT_SPEC.serviceCIDR)
    .option('--proxy-mode <mode>', 'service proxy: iptables or nftables (ipvs where the kernel has it)', DEFAULT_SPEC.proxyMode)
    .option('--ingress-workers <n>', 'worker processes of each node\'s ingress controller (default: one per two CPUs)', integer('--ingress-workers'))
    .option('--ingress-use-forwarded-headers', "ingress controllers trust clients' X-Forwarded-* headers (only behind another proxy; ingress-nginx's use-forwarded-headers)", false)
    .option('--max-pods <n>', "pods each node takes (the kubelet's --max-pods); the cluster refuses pods past this many times its nodes", integer('--max-pods'))
    .option('--iptables-backend <backend>', 'legacy or nft: which iptables the nodes use (default: legacy where the kernel has it, it scales)')
    .option('--cluster-domain <domain>', "the cluster's DNS zone (the kubelet's --cluster-domain)", 'cluster.local')
    .option('--upstream-dns <addr>', 'the resolver the cluster DNS forwards other names to (IP[:PORT]); without it they are refused (the lab has no internet)')
    .option('--ipvs-scheduler <name>', `IPVS mode: the virtual servers' scheduler (${IPVS_SCHEDULERS.join(', ')})`)
    .option('--ipvs-strict-arp', 'IPVS mode: nodes do not answer ARP for the Service addresses on kube-ipvs0 (arp_ignore=1, arp_announce=2)')
    .option('--kernel <kernel>', "host (this machine's kernel; root's default) or uml: a user-mode Linux kernel of the cluster's own, which has IPVS and dummy links and needs no root (an ordinary user's default); every command for the cluster then runs in it")
    .option('--kernel-memory <MB>', 'memory of a --kernel uml kernel', integer('--kernel-memory'), 2048)
    .option('--metrics-bind-address <ip:port>', "where each node's service proxy serves /metrics (kube-proxy's flag; default 127.0.0.1:10249, 0.0.0.0:10249 for every address)")
    .option('--external-proxy <nodes>', "nodes (comma-separated) whose service proxy you run yourself, e.g. sudo ip netns exec kw_CLUSTER_node-2 kubewire proxy --kubeconfig FILE --hostname-override CLUSTER-node-2: the daemon runs none there", (v: string) => v.split(',').filter(Boolean))
    .option('--components <layout>', "internal (the daemon runs each node's proxy and ingress controller) or external: each runs as its own program with only a kubeconfig (kubewire proxy, ingress, dns), as on a real cluster", 'internal')
    .option('--kubeconfig <file>', "the kubeconfig to merge the cluster's context into (default: the first existing file of $KUBECONFIG, else ~/.kube/config)")
    .action(async (o: { kubeconfig?: string; cluster: string; nodes: number; mode: RoutingMode; podCidr: string; nodeCidrMask: number; serviceCidr: string; proxyMode: ProxyMode; ingressUseForwardedHeaders: boolean; ingressWorkers?: number; maxPods?: number; metricsBindAddress?: string; iptablesBackend?: 'legacy' | 'nft'; ipvsScheduler?: string; ipvsStrictArp?: boolean; clusterDomain: string; upstreamDns?: string; kernel?: string; kernelMemory: number; warmIpTarget?: number; minimumIpTarget?: number; ipCooldownPeriod?: number; externalSnat?: boolean; externalProxy?: string[]; components: string }) => {
      const t0 = performance.now();
      const spec: ClusterSpec = { name: o.cluster, nodes: o.nodes, mode: o.mode, podCIDR: o.podCidr, nodeCIDRMask: o.nodeCidrMask, serviceCIDR: o.serviceCidr, proxyMode: o.proxyMode, ...(o.ingressUseForwardedHeaders ? { ingressUseForwardedHeaders: true } : {}), ...(o.ingressWorkers ? { ingressWorkers: o.ingressWorkers } : {}), ...(o.maxPods ? { maxPods: o.maxPods } : {}), ...(o.metricsBindAddress ? { metricsBindAddress: o.metricsBindAddress } : {}), ...(o.iptablesBackend ? { iptablesBackend: o.iptablesBackend } : {}), ...(o.ipvsScheduler ? { ipvsScheduler: o.ipvsScheduler } : {}), ...(o.ipvsStrictArp ? { ipvsStrictARP: true } : {}), ...(o.clusterDomain !== 'cluster.local' ? { clusterDomain: o.clusterDomain } : {}), ...(o.upstreamDns ? { upstreamDns: o.upstreamDns } : {}), ...(o.warmIpTarget !== undefined ? { warmIPTarget: o.warmIpTarget } : {}), ...(o.minimumIpTarget !== undefined ? { minimumIPTarget: o.minimumIpTarget } : {}), ...(o.ipCooldownPeriod !== undefined ? { ipCooldownSeconds: o.ipCooldownPeriod } : {}), ...(o.externalSnat ? { externalSNAT: true } : {}), ...(o.externalProxy?.length ? { externalProxy: o.externalProxy } : {}), ...(o.components !== 'internal' ? { components: o.components as 'external' } : {}) };
      if (o.kernel === 'uml' && process.env.KUBEWIRE_GUEST) throw new ClusterError(`cluster ${JSON.stringify(o.cluster)} already exists, in a kernel of its own (kubewire down --cluster ${o.cluster} removes it)`);
      const { kernel, note } = chooseKernel(o.kernel, mayUseHostKernel(), umlMissing());
      if (note) process.stdout.write(` • ${note}\n`);
      if (kernel === 'uml') {
        validateSpec(spec); // before booting a kernel for it
        // In there the ordinary `up` runs, with the same options (iptables-legacy: the only one that kernel has).
        const upArgv = withoutOptions(process.argv.slice(3), ['--kernel', '--kernel-memory', '--kubeconfig']);
        if (!o.iptablesBackend) upArgv.push('--iptables-backend', 'legacy');
        const code = await upInKernel(spec, upArgv, o.kernelMemory, process, (line) => process.stdout.write(` • ${line}\n`));
        if (code === 0) process.stdout.write(`cluster ${o.cluster} is up in its own kernel in ${((performance.now() - t0) / 1000).toFixed(2)} s: every kubewire command for it runs there\n\ntry: ${typed('get nodes -o wide', o.cluster)}\n`);
        if (code === 0) await exportKubeconfig(o.cluster, o.kubeconfig, process.stdout);
        process.exitCode = code;
        return;
      }
      const { plan, restarted } = await up(spec, (line) => process.stdout.write(` • ${line}\n`));
      const secs = ((performance.now() - t0) / 1000).toFixed(2);
      process.stdout.write(restarted ? `cluster ${plan.spec.name}: daemon restarted in ${secs} s\n` : `cluster ${plan.spec.name} is up in ${secs} s (${plan.spec.mode})\n`);
      process.stdout.write(`${table([['NODE', 'INTERNAL-IP', 'POD-CIDR'], ...plan.nodes.map((n) => [n.name, n.ip, n.podCIDR ?? '<none> (pods take VPC addresses)'])])}\n`);
      if (!process.env.KUBEWIRE_GUEST) process.stdout.write(`\ntry: ${typed('get nodes -o wide', plan.spec.name)}\n`); // in a kernel of its own, the host says it
      if (!process.env.KUBEWIRE_GUEST) await exportKubeconfig(plan.spec.name, o.kubeconfig, process.stdout);
    });

  program
    .command('down')
    .description('remove a cluster: every namespace, link, process and file it made')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .option('--kubeconfig <file>', "the kubeconfig to remove the cluster's context from (default: every file of $KUBECONFIG, else ~/.kube/config)")
    .action(async (o: { cluster: string; kubeconfig?: string }) => {
      const inKernel = clusterKernel(o.cluster) !== undefined;
      // As kind's delete: the kubeconfig entries go even when the cluster is already gone.
      const forget = () => forgetKubeconfig(o.cluster, o.kubeconfig, process.stdout);
      const removed = await down(o.cluster).catch(async (e: unknown) => {
        await forget().catch(() => undefined);
        throw e;
      });
      process.stdout.write(inKernel ? `cluster ${o.cluster} removed (its kernel powered off)\n` : `cluster ${o.cluster} removed (${removed.length} namespaces)\n`);
      await forget();
    });

  program
    .command('daemon', { hidden: true })
    .description('run the control plane and node agents of a cluster (kubewire up starts it)')
    .option('--cluster <name>', 'cluster name', defaultCluster())
    .action(async (o: { cluster: string }) => {
      // Loaded by this command alone: the user's commands start without the control plane's code.
      const { runDaemon } = await import('../daemon/daemon.ts');
      await runDaemon(o.cluster);
    });

  program
    .command('dns-server', { hidden: true })
    .description('serve the cluster DNS in a pod of kube-system/coredns (its image, kubewire/dns, runs this)')
    .option('--cluster <name>', 'cluster name', defaultCluster())
    .action(async (o: { cluster: string }) => {
      const { runDnsServer } = await import('../dns/main.ts');
      const { run } = await import('../dataplane/linux/exec.ts');
      await runDnsServer(o.cluster, (argv, input) => run(argv, { input })); // nft in the pod's namespace: a flooding source throttled
    });

  program
    .command('kernel-host', { hidden: true })
    .description("boot a cluster's own kernel and relay commands into it (kubewire up --kernel uml starts it)")
    .option('--cluster <name>', 'cluster name', defaultCluster())
    .option('--memory <MB>', 'kernel memory', integer('--memory'), 2048)
    .action(async (o: { cluster: string; memory: number }) => {
      const { runKernelHost } = await import('../kernel/host.ts');
      await runKernelHost(o.cluster, o.memory);
      process.exit(0);
    });

  program
    .command('ingress-controller', { hidden: true })
    .description("serve a node's :80 and :443 for the cluster's Ingresses (the daemon starts one per node)")
    .option('--cluster <name>', 'cluster name', defaultCluster())
    .requiredOption('--node <name>', 'the node whose network namespace this runs in')
    .action(async (o: { cluster: string; node: string }) => {
      const { runIngressController } = await import('../ingress/main.ts');
      await runIngressController(o.cluster, o.node);
    });

  program
    .command('workload-host', { hidden: true })
    .description("serve the pods' built-in workloads (the daemon starts it)")
    .option('--cluster <name>', 'cluster name', defaultCluster())
    .requiredOption('--socket <path>', 'control socket')
    .requiredOption('--pid-file <path>', 'pid file')
    .action(async (o: { socket: string; pidFile: string }) => {
      const { runWorkloadHost } = await import('../workloads/host.ts');
      await runWorkloadHost(linux, o.socket);
      writeFileSync(o.pidFile, `${process.pid}\n`, { mode: 0o600 });
    });
}
