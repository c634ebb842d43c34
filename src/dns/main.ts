// The cluster DNS server process: what each pod of kube-system/coredns runs (its image,
// kubewire/dns, is kubewire's own; workloads/builtin.ts). In the pod's network namespace it
// serves port 53 (UDP and TCP) from informers over the daemon's API, CoreDNS's health (:8080
// /health), readiness (:8181 /ready, once the informers have listed) and Prometheus metrics
// with CoreDNS's names (:9153 /metrics).

import { createServer, type Server } from 'node:http';
import { ApiClient } from '../client/rest.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { loadCluster } from '../cluster/cluster.ts';
import { DEFAULT_CLUSTER_DOMAIN, podRange } from '../cluster/plan.ts';
import { parseHostPort } from '../netaddr/ip.ts';
import { daemonPaths } from '../state/paths.ts';
import { dnsMetrics } from './metrics.ts';
import { startProfile } from './profile.ts';
import { DnsServer } from './server.ts';
import { kernelThrottle, type Tools } from './throttle.ts';
import { InformerView } from './view.ts';

export const DNS_PORT = 53;
export const HEALTH_PORT = 8080;
export const READY_PORT = 8181;
export const METRICS_PORT = 9153;

/** Bounds of the health, readiness and metrics listeners: they answer any pod and the outside too. */
const HTTP_LIMITS = { headersTimeout: 5_000, requestTimeout: 10_000, maxConnections: 100 };

function serve(port: number, handler: (path: string) => { code: number; body: string; type?: string } | Promise<{ code: number; body: string; type?: string }>): Promise<Server> {
  const server = createServer((req, res) => {
    void Promise.resolve()
      .then(() => handler(req.url ?? '/'))
      .catch((e: Error): { code: number; body: string; type?: string } => ({ code: 500, body: e.message }))
      .then((r) => {
        res.writeHead(r.code, { 'content-type': r.type ?? 'text/plain' });
        res.end(r.body);
      });
  });
  Object.assign(server, HTTP_LIMITS);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}

export interface DnsOptions {
  client: ObjectClient;
  zone: string;
  /** The ranges whose reverse (PTR) names are this server's to answer (the pod and service ranges). */
  ranges: string[];
  upstream?: { host: string; port: number };
  /** runs nft in the pod's network namespace (throttle.ts); none: no kernel-side throttling. */
  tools?: Tools;
  ports?: { dns?: number; health?: number; ready?: number; metrics?: number };
  /** A line /health adds (the API server is away), or undefined. */
  healthNote?: () => string | undefined;
  log: (line: string) => void;
}

const stderrLog = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);

/** The cluster DNS of a kubewire cluster's coredns pods, over the daemon's socket. */
export async function runDnsServer(cluster: string, tools?: Tools, log: (line: string) => void = stderrLog): Promise<void> {
  const plan = loadCluster(cluster);
  const upstream = plan.spec.upstreamDns ? parseHostPort(plan.spec.upstreamDns, 53) : undefined;
  await runDns({ client: new ApiClient(daemonPaths(cluster).socket), zone: plan.spec.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN, ranges: [podRange(plan), plan.spec.serviceCIDR], ...(upstream ? { upstream } : {}), ...(tools ? { tools } : {}), log });
}

/** Serves DNS from informers over `client` until SIGTERM (after the lame duck) or SIGINT; resolves once serving. */
export async function runDns(o: DnsOptions): Promise<{ view: InformerView }> {
  const { zone, upstream, log } = o;
  const port = { dns: DNS_PORT, health: HEALTH_PORT, ready: READY_PORT, metrics: METRICS_PORT, ...o.ports };
  const metrics = dnsMetrics(zone, port.dns);
  const view = new InformerView(o.client, zone, o.ranges, log);
  const throttle = o.tools ? await kernelThrottle(port.dns, o.tools, log) : undefined;
  const dns = new DnsServer({ view, ...(upstream ? { upstream } : {}), observe: metrics.observe, ...(throttle ? { throttle } : {}) });
  // UDP on a thread of its own; TCP, HTTP and the informers here. Imported here, so that the
  // bundle holds it in a chunk of its own: the thread loads that, not this module's imports.
  const { udpThreadOrNot } = await import('./udp-thread.ts');
  const udp = await udpThreadOrNot(view, metrics, { port: port.dns, zone, ranges: o.ranges, ...(upstream ? { upstream } : {}), ...(throttle ? { throttle } : {}), log });
  await dns.listen(udp ? udp.port : port.dns, '0.0.0.0', { udp: !udp });
  // CoreDNS's health answers while the process lives; ours also says when it answers from a past state.
  await serve(port.health, () => {
    const note = o.healthNote?.();
    return { code: 200, body: note ? `OK (${note})` : 'OK' };
  });
  await serve(port.ready, () => (view.synced && (udp?.synced ?? true) ? { code: 200, body: 'OK' } : { code: 503, body: 'informers not synced' }));
  await serve(port.metrics, async (path) => (path.startsWith('/metrics') ? { code: 200, body: await metrics.registry.metrics(), type: metrics.registry.contentType } : { code: 404, body: 'not found' }));
  log(`cluster DNS for ${zone} on :${port.dns} (udp, tcp); ${upstream ? `other names forwarded to ${upstream.host}:${upstream.port}` : 'other names refused (no --upstream-dns)'}`);
  void view.start();
  // SIGUSR2 turns the profile's line a second on and off (bench:dns-abuse PROFILE=1).
  let profiling: (() => void) | undefined;
  process.on('SIGUSR2', () => {
    if (profiling) profiling = void profiling();
    else profiling = startProfile(() => ({ ...dns.counters }), () => dns.stats(), log, { inProcessMs: dns.inProcess });
    udp?.toggleProfile();
  });
  const stop = () => {
    view.stop();
    void Promise.all([dns.close(), udp?.close()]).then(() => process.exit(0));
  };
  // Lame duck, as kubeadm's Corefile has CoreDNS (`health { lameduck 5s }`): a pod being
  // deleted goes on answering while its endpoint leaves every node's rules, so that no
  // query is sent to a server that is already gone.
  process.once('SIGTERM', () => {
    log(`terminating: answering for ${LAMEDUCK_MS / 1000} s more (lame duck)`);
    setTimeout(stop, LAMEDUCK_MS).unref();
    process.once('SIGTERM', stop);
  });
  process.on('SIGINT', stop);
  return { view };
}

const LAMEDUCK_MS = 5_000;
