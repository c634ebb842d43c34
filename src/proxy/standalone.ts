// kube-proxy as a program of its own (`kubewire proxy`): a Proxier in the network namespace
// it runs in, fed by an API server over HTTPS. It learns its node (podCIDR, addresses) from
// the Node object, writes through the iptables the namespace already uses, and while the API
// server is away keeps the kernel's rules as they are, says so in its log and on /healthz, and
// catches up when the server answers again (the watches resume, or list again on 410).

import { resourceNamed } from '../api/resources.ts';
import type { Node } from '../api/types.ts';
import { isNotFound } from '../apiserver/status.ts';
import type { RestClient } from '../client/rest.ts';
import type { Netns } from '../dataplane/port.ts';
import { pickIptables, type ProxyConfig } from './config.ts';
import { IptablesBackend } from './iptables/backend.ts';
import { IpvsBackend } from './ipvs/backend.ts';
import type { HealthNote } from './metrics.ts';
import { NftablesBackend } from './nftables/backend.ts';
import { Proxier, type ProxyBackend } from './proxier.ts';

export interface StandaloneOptions {
  client: RestClient;
  netns: Netns;
  config: ProxyConfig;
  nodeName: string;
  log: (line: string) => void;
}

/** Without --cluster-cidr kube-proxy masquerades no off-cluster traffic (its no-op local detector): `! -s 0.0.0.0/0` never matches. */
const NO_CLUSTER_CIDR = '0.0.0.0/0';

async function nodeOf(o: StandaloneOptions): Promise<Node | undefined> {
  try {
    return await o.client.get<Node>(resourceNamed('nodes')!, undefined, o.nodeName);
  } catch (e) {
    o.log(isNotFound(e) ? `node ${JSON.stringify(o.nodeName)} does not exist (--hostname-override names it): no node podCIDR, no node IPs` : `cannot read node ${o.nodeName}: ${(e as Error).message}; going on without its podCIDR`);
    return undefined;
  }
}

const ruleCount = (save: string) => save.split('\n').filter((l) => l.startsWith('-A ')).length;

async function backendFor(o: StandaloneOptions, node: Node | undefined): Promise<ProxyBackend> {
  const { netns, config } = o;
  const cfg = { clusterCIDR: config.clusterCIDR ?? NO_CLUSTER_CIDR, nodePodCIDR: node?.spec?.podCIDR };
  if (config.mode === 'nftables') return new NftablesBackend(netns, cfg);
  const count = async (b: 'legacy' | 'nft') => {
    const saves = await Promise.all((['nat', 'filter'] as const).map((t) => netns.iptablesSave(t, 4, b).catch(() => '')));
    return ruleCount(saves.join('\n'));
  };
  const iptables = pickIptables(await count('legacy'), await count('nft'));
  o.log(`iptables: ${iptables ?? "the system's default"}${iptables ? ' (it holds this namespace\'s rules)' : ''}`);
  if (config.mode === 'ipvs') {
    const nodeIPs = (node?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address);
    return new IpvsBackend(netns, { ...cfg, nodeIPs, ...(config.ipvsScheduler ? { scheduler: config.ipvsScheduler } : {}), ...(config.ipvsStrictARP ? { strictARP: true } : {}) }, iptables);
  }
  return new IptablesBackend(netns, cfg, iptables);
}

/** Starts the proxy; returns it (stop() leaves the rules in the kernel, as kube-proxy's exit does). */
export async function runStandaloneProxy(o: StandaloneOptions): Promise<Proxier> {
  const { client, config, log } = o;
  if (!config.clusterCIDR) log('no --cluster-cidr: traffic to Services from outside the cluster is not masqueraded (kube-proxy\'s no-op local detector)');
  const node = await nodeOf(o);
  const backend = await backendFor(o, node);
  client.onReachability = (r) => {
    if (r.since) log(`the API server is away (${r.why}): the ${config.mode} rules stay in the kernel as they are; watching again with backoff`);
    else log('the API server answers again: catching up');
  };
  const health = (): HealthNote | undefined => {
    const r = client.reachability;
    return r.since ? { apiServer: `unreachable since ${new Date(r.since).toISOString()} (${r.why}); the rules of ${new Date(proxier.metrics.syncedAt || Date.now()).toISOString()} are kept` } : undefined;
  };
  const proxier: Proxier = new Proxier({
    client,
    nodeName: o.nodeName,
    netns: o.netns,
    backend,
    log,
    minSyncMs: config.minSyncMs,
    metricsBindAddress: config.metricsBindAddress,
    healthzBindAddress: config.healthzBindAddress,
    healthTimeoutMs: config.healthTimeoutMs,
    health,
  });
  await proxier.start();
  log(`kube-proxy (${config.mode}) for node ${o.nodeName} against ${client.config.server}; healthz on ${config.healthzBindAddress}, metrics on ${config.metricsBindAddress}`);
  return proxier;
}
