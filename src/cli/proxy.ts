// `kubewire proxy`: kube-proxy as a program, against any conformant API server through a
// kubeconfig, programming the network namespace it is started in (a node's:
// `ip netns exec NODE-NETNS kubewire proxy --kubeconfig FILE --hostname-override NODE`).
// kube-proxy's flags; --config takes a KubeProxyConfiguration, the flags given win over it.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { connect } from './component-client.ts';
import { linux } from '../dataplane/linux/host.ts';
import { parseConfigFile, parseDuration, ProxyConfigError, resolveConfig, type ProxyConfig } from '../proxy/config.ts';
import { runStandaloneProxy } from '../proxy/standalone.ts';

interface Flags {
  kubeconfig?: string;
  context?: string;
  hostnameOverride?: string;
  proxyMode?: string;
  clusterCidr?: string;
  config?: string;
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  iptablesMinSyncPeriod?: string;
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

export function registerProxyCommand(program: Command): void {
  program
    .command('proxy')
    .description("kube-proxy: program Services into the kernel of the network namespace this runs in (a node's: ip netns exec NODE-NETNS kubewire proxy ...), from an API server reached through a kubeconfig")
    .option('--kubeconfig <file>', 'the kubeconfig of the API server (without one: $KUBECONFIG, ~/.kube/config, or the Pod\'s service account)')
    .option('--context <name>', "the kubeconfig's context to use (default: its current-context)")
    .option('--hostname-override <name>', 'the name of the node this runs for (default: the hostname)')
    .option('--proxy-mode <mode>', 'iptables (default), nftables or ipvs')
    .option('--cluster-cidr <cidr>', "the cluster's pod range: traffic to Services from outside it is masqueraded")
    .option('--config <file>', 'a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1); the flags given win over it')
    .option('--healthz-bind-address <ip:port>', 'where /healthz and /livez are served (default 0.0.0.0:10256)')
    .option('--metrics-bind-address <ip:port>', 'where /metrics is served (default 127.0.0.1:10249)')
    .option('--iptables-min-sync-period <duration>', 'least time between two syncs, e.g. 1s or 100ms (default 1s)')
    .action(async (f: Flags) => {
      const file: Partial<ProxyConfig> = f.config ? parseConfigFile(readText(f.config), f.config) : {};
      const flags: Partial<ProxyConfig> = {};
      if (f.kubeconfig) flags.kubeconfig = f.kubeconfig;
      if (f.hostnameOverride) flags.hostnameOverride = f.hostnameOverride;
      if (f.proxyMode) flags.mode = f.proxyMode as ProxyConfig['mode'];
      if (f.clusterCidr) flags.clusterCIDR = f.clusterCidr;
      if (f.healthzBindAddress) flags.healthzBindAddress = f.healthzBindAddress;
      if (f.metricsBindAddress) flags.metricsBindAddress = f.metricsBindAddress;
      if (f.iptablesMinSyncPeriod !== undefined) {
        const ms = parseDuration(f.iptablesMinSyncPeriod);
        if (ms === undefined) throw new ProxyConfigError(`--iptables-min-sync-period ${JSON.stringify(f.iptablesMinSyncPeriod)} is not a duration such as 1s or 100ms`);
        flags.minSyncMs = ms;
      }
      const config = resolveConfig(file, flags);
      const client = await connect({ kubeconfig: config.kubeconfig, context: f.context, component: 'proxy' });
      const nodeName = config.hostnameOverride ?? hostname().toLowerCase();
      const proxier = await runStandaloneProxy({ client, netns: linux.at(undefined), config, nodeName, log });
      // As kube-proxy: a stop leaves the rules in the kernel (the next start takes them over).
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log(`${sig}: stopping; the rules stay in the kernel`);
          resolve();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await proxier.stop();
      client.close();
    });
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProxyConfigError(`--config ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}
