// `kubewire dns` and `kubewire ingress`: the cluster DNS (a CoreDNS stand-in for the cluster's
// zone) and the ingress controller (an ingress-nginx stand-in) as programs of their own, with
// only a kubeconfig, as `kubewire proxy` is kube-proxy's: each runs in the network namespace it
// is started in and works against any conformant API server. While the API server is away they
// go on serving the state they had, say so in their log and health answer, and catch up when it
// returns (the informers' watches resume, or list again).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { resourceNamed } from '../api/resources.ts';
import type { Node, Secret } from '../api/types.ts';
import type { RestClient } from '../client/rest.ts';
import { DEFAULT_CLUSTER_DOMAIN, DEFAULT_SPEC } from '../cluster/plan.ts';
import { parseHostPort, tryParseIP, tryParsePrefix } from '../netaddr/ip.ts';
import { apiAway, componentLog as log, ComponentConfigError, connect, logReachability } from './component-client.ts';

const port = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ComponentConfigError(`${flag} ${JSON.stringify(v)}: must be a port, 1 to 65535`);
  return n;
};

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

interface DnsFlags {
  kubeconfig?: string;
  context?: string;
  clusterDomain: string;
  upstreamDns?: string;
  reverseCidrs: string[];
  dnsPort: number;
  healthPort: number;
  readyPort: number;
  metricsPort: number;
}

interface IngressFlags {
  kubeconfig?: string;
  context?: string;
  nodeName?: string;
  httpPort: number;
  httpsPort: number;
  healthzPort: number;
  publishStatusAddress?: string[];
  updateStatus: string;
  defaultSslCertificate?: string;
  useForwardedHeaders?: boolean;
  accessLog: string;
}

export function registerComponentCommands(program: Command): void {
  program
    .command('dns')
    .description("the cluster DNS (CoreDNS's kubernetes plugin) for the cluster's zone, from an API server reached through a kubeconfig; serves port 53 of the network namespace it runs in")
    .option('--kubeconfig <file>', "the kubeconfig of the API server (without one: $KUBECONFIG, ~/.kube/config, or the Pod's service account)")
    .option('--context <name>', "the kubeconfig's context to use (default: its current-context)")
    .option('--cluster-domain <zone>', "the zone served (CoreDNS's `kubernetes cluster.local`)", DEFAULT_CLUSTER_DOMAIN)
    .option('--upstream-dns <ip[:port]>', "where other names go (CoreDNS's `forward . IP`); without it they are refused")
    .option('--reverse-cidrs <cidrs>', 'the pod and service ranges whose PTR names are answered (comma-separated)', list, [DEFAULT_SPEC.podCIDR, DEFAULT_SPEC.serviceCIDR])
    .option('--dns-port <port>', "the DNS port, UDP and TCP (CoreDNS's -dns.port)", port('--dns-port'), 53)
    .option('--health-port <port>', "/health (CoreDNS's health plugin)", port('--health-port'), 8080)
    .option('--ready-port <port>', "/ready, once the informers have listed (CoreDNS's ready plugin)", port('--ready-port'), 8181)
    .option('--metrics-port <port>', "/metrics with CoreDNS's names (its prometheus plugin)", port('--metrics-port'), 9153)
    .action(async (f: DnsFlags) => {
      const upstream = f.upstreamDns === undefined ? undefined : parseHostPort(f.upstreamDns, 53);
      if (f.upstreamDns !== undefined && !upstream) throw new ComponentConfigError(`--upstream-dns ${JSON.stringify(f.upstreamDns)}: must be an IP address, optionally with :PORT`);
      const bad = f.reverseCidrs.find((c) => !tryParsePrefix(c));
      if (bad) throw new ComponentConfigError(`--reverse-cidrs: ${JSON.stringify(bad)} is not a CIDR such as 10.96.0.0/12`);
      const client = await connect({ kubeconfig: f.kubeconfig, context: f.context, component: 'dns' });
      logReachability(client, 'its answers', log);
      const { runDns } = await import('../dns/main.ts');
      const { run } = await import('../dataplane/linux/exec.ts');
      await runDns({
        client,
        zone: f.clusterDomain,
        ranges: f.reverseCidrs,
        ...(upstream ? { upstream } : {}),
        tools: (argv, input) => run(argv, { input }),
        ports: { dns: f.dnsPort, health: f.healthPort, ready: f.readyPort, metrics: f.metricsPort },
        healthNote: () => apiAway(client),
        log,
      });
      log(`against ${client.config.server}`);
    });

  program
    .command('ingress')
    .description('the ingress controller (an ingress-nginx stand-in for IngressClass kubewire) serving HTTP and HTTPS in the network namespace it runs in, from an API server reached through a kubeconfig')
    .option('--kubeconfig <file>', "the kubeconfig of the API server (without one: $KUBECONFIG, ~/.kube/config, or the Pod's service account)")
    .option('--context <name>', "the kubeconfig's context to use (default: its current-context)")
    .option('--node-name <name>', 'the node this runs on, for Events and the default status address (default: $NODE_NAME, else the hostname)')
    .option('--http-port <port>', 'the HTTP port', port('--http-port'), 80)
    .option('--https-port <port>', 'the HTTPS port', port('--https-port'), 443)
    .option('--healthz-port <port>', '/healthz and /metrics', port('--healthz-port'), 10254)
    .option('--publish-status-address <ips>', "what Ingresses' status.loadBalancer.ingress gets (comma-separated; default: the node's InternalIP)", list)
    .option('--update-status <bool>', 'write Ingress statuses and Events (one controller of a cluster should)', 'true')
    .option('--default-ssl-certificate <namespace/name>', 'the kubernetes.io/tls Secret served when no Ingress TLS matches (default: a fake certificate, as ingress-nginx makes)')
    .option('--use-forwarded-headers', "trust clients' X-Forwarded-* headers (only behind another proxy)")
    .option('--access-log <file>', 'where the access log goes', '/dev/stdout')
    .action(async (f: IngressFlags) => {
      if (f.updateStatus !== 'true' && f.updateStatus !== 'false') throw new ComponentConfigError(`--update-status ${JSON.stringify(f.updateStatus)}: must be true or false`);
      const bad = f.publishStatusAddress?.find((a) => !tryParseIP(a));
      if (bad) throw new ComponentConfigError(`--publish-status-address: ${JSON.stringify(bad)} is not an IP address`);
      const client = await connect({ kubeconfig: f.kubeconfig, context: f.context, component: 'ingress' });
      logReachability(client, 'its routes', log);
      const nodeName = f.nodeName ?? process.env.NODE_NAME ?? hostname().toLowerCase();
      const addresses = f.publishStatusAddress ?? (await nodeAddress(client, nodeName));
      const defaultCertificate = f.defaultSslCertificate ? await tlsSecret(client, f.defaultSslCertificate) : await fakeCertificate();
      const { serveIngress } = await import('../ingress/main.ts');
      await serveIngress({
        client,
        nodeName,
        addresses,
        leader: f.updateStatus === 'true',
        trustForwardedHeaders: !!f.useForwardedHeaders,
        defaultCertificate,
        accessLog: f.accessLog,
        ports: { http: f.httpPort, https: f.httpsPort, healthz: f.healthzPort },
        healthNote: () => apiAway(client),
        log,
      });
      log(`ingress controller of ${nodeName} serving :${f.httpPort} and :${f.httpsPort} against ${client.config.server}; /healthz and /metrics on :${f.healthzPort}`);
    });
}

/** The node's InternalIP (ingress-nginx publishes the addresses of the nodes it runs on), or none. */
async function nodeAddress(client: RestClient, nodeName: string): Promise<string[]> {
  const node = await client.get<Node>(resourceNamed('nodes')!, undefined, nodeName).catch(() => undefined);
  const ip = node?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!ip) log(`node ${JSON.stringify(nodeName)} has no InternalIP (or no Node object): Ingress statuses get no address; give --publish-status-address`);
  return ip ? [ip] : [];
}

async function tlsSecret(client: RestClient, ref: string): Promise<{ cert: string; key: string }> {
  const [ns, name, extra] = ref.split('/');
  if (!ns || !name || extra !== undefined) throw new ComponentConfigError(`--default-ssl-certificate ${JSON.stringify(ref)}: must be namespace/name of a Secret`);
  const secret = await client.get<Secret>(resourceNamed('secrets')!, ns, name).catch((e: Error) => {
    throw new ComponentConfigError(`--default-ssl-certificate ${ref}: ${e.message}`);
  });
  const field = (k: string) => {
    const v = secret.data?.[k];
    if (!v) throw new ComponentConfigError(`--default-ssl-certificate ${ref}: the Secret has no data.${k}`);
    return Buffer.from(v, 'base64').toString('utf8');
  };
  return { cert: field('tls.crt'), key: field('tls.key') };
}

/** ingress-nginx's fake certificate, made in a scratch directory and kept in memory only. */
async function fakeCertificate(): Promise<{ cert: string; key: string }> {
  const { makeFakeCertificate } = await import('../ingress/supervisor.ts');
  const dir = mkdtempSync(join(tmpdir(), 'kubewire-ingress-'));
  try {
    makeFakeCertificate(join(dir, 'tls.crt'), join(dir, 'tls.key'));
    return { cert: readFileSync(join(dir, 'tls.crt'), 'utf8'), key: readFileSync(join(dir, 'tls.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
