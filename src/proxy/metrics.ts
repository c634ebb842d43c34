// The proxy's Prometheus metrics and health, with kube-proxy's names, served as kube-proxy
// serves them: /metrics on 127.0.0.1:10249 (up --metrics-bind-address) and /healthz on
// port 10256 inside the node's own network namespace (`kubewire exec --node N -- curl -s
// localhost:10249/metrics`).

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parseHostPort } from '../netaddr/ip.ts';
import type { Netns } from '../dataplane/port.ts';

export const METRICS_PORT = 10249;
export const HEALTHZ_PORT = 10256;

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram;
  readonly fullSyncDuration: Histogram;
  readonly partialSyncDuration: Histogram;
  readonly lastSync: Gauge;
  readonly lastQueued: Gauge;
  readonly rules: Gauge;
  readonly restoreFailures: Counter;
  readonly objects: Gauge;
  readonly serviceChangesPending: Gauge;
  readonly endpointChangesPending: Gauge;
  readonly serviceChanges: Counter;
  readonly endpointChanges: Counter;
  /** For /healthz (kube-proxy's ProxierHealthServer): since when the oldest change not yet in the kernel waits (0: none), and when rules last went in. */
  pendingSince = 0;
  syncedAt = 0;

  constructor(readonly nodeName: string) {
    const r = [this.registry];
    const buckets = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i); // upstream: ExponentialBuckets(0.001, 2, 15)
    this.syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets, registers: r });
    this.fullSyncDuration = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for full resyncs', buckets, registers: r });
    this.partialSyncDuration = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for partial resyncs', buckets, registers: r });
    this.lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers: r });
    this.lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', registers: r });
    this.rules = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_total', help: 'Total number of iptables rules owned by kube-proxy', labelNames: ['table'], registers: r });
    this.objects = new Gauge({ name: 'kubewire_proxy_objects', help: 'What the proxy holds in the kernel beyond iptables rules: nftables elements and chains, or IPVS virtual and real servers, by kind', labelNames: ['kind'], registers: r });
    this.restoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', help: 'Cumulative proxy iptables restore failures', registers: r });
    this.serviceChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers: r });
    this.endpointChangesPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers: r });
    this.serviceChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers: r });
    this.endpointChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers: r });
  }

  /**
   * kube-proxy's answer (pkg/proxy/healthcheck/proxier_health.go): healthy unless a change has
   * waited longer than the timeout (2 x syncPeriod) for its rules; lastUpdated is the last sync
   * when not, and now when healthy (kube-proxy keeps that old meaning). /healthz adds
   * nodeEligible; `note` adds kubewire's word on why (the API server away).
   */
  health(path: '/healthz' | '/livez', note?: HealthNote, timeoutMs = 60_000, now = Date.now()): { healthy: boolean; body: string } {
    const healthy = !this.pendingSince || now - this.pendingSince <= timeoutMs;
    const current = JSON.stringify(goTime(now));
    // kube-proxy's own Sprintf: `{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}` (the odd spacing included).
    let body = `"lastUpdated": ${healthy ? current : JSON.stringify(goTime(this.syncedAt || now))},"currentTime": ${current}`;
    if (path === '/healthz') body += ', "nodeEligible": true';
    for (const [k, v] of Object.entries(note ?? {})) body += `, ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
    return { healthy, body: `{${body}}` };
  }
}

/** What /healthz says beside kube-proxy's fields (e.g. apiServer: "unreachable since ..."). */
export type HealthNote = Record<string, string>;

/** A time as Go's time.Time prints it (kube-proxy's %q of time.Now()), monotonic reading included. */
export function goTime(ms: number, uptimeS = process.uptime() - (Date.now() - ms) / 1000): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const frac = p(d.getUTCMilliseconds(), 3).replace(/0+$/, '');
  // Go prints the monotonic reading of a time this process took (m=+seconds since its start); an older one has none.
  const mono = uptimeS >= 0 ? ` m=+${uptimeS.toFixed(9)}` : '';
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${frac ? `.${frac}` : ''} +0000 UTC${mono}`;
}

/** kube-proxy's --metrics-bind-address default: the node's loopback only (metrics say what the node runs). */
export const DEFAULT_METRICS_BIND = '127.0.0.1:10249';

/** kube-proxy's --healthz-bind-address default: every address of the node (load balancers ask it). */
export const DEFAULT_HEALTHZ_BIND = '0.0.0.0:10256';

/**
 * Serves /metrics (on `metricsBind`, the node's loopback by default, as kube-proxy's
 * --metrics-bind-address) and /healthz and /livez (on `healthzBind`, every address :10256 by
 * default, as --healthz-bind-address) inside the node's namespace; returns the closer.
 */
export async function serveProxyMetrics(metrics: ProxyMetrics, netns: Netns, metricsBind = DEFAULT_METRICS_BIND, healthzBind = DEFAULT_HEALTHZ_BIND, note?: () => HealthNote | undefined, healthTimeoutMs?: number): Promise<() => Promise<void>> {
  const bind = parseHostPort(metricsBind, METRICS_PORT);
  if (!bind) throw new Error(`--metrics-bind-address ${JSON.stringify(metricsBind)} is not IP:PORT`);
  const hbind = parseHostPort(healthzBind, HEALTHZ_PORT);
  if (!hbind) throw new Error(`--healthz-bind-address ${JSON.stringify(healthzBind)} is not IP:PORT`);
  const servers: Server[] = [];
  const handler = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      return void res.end(await metrics.registry.metrics());
    }
    if (path === '/healthz' || path === '/livez') {
      const h = metrics.health(path, note?.(), healthTimeoutMs);
      res.writeHead(h.healthy ? 200 : 503, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
      return void res.end(h.body);
    }
    res.writeHead(404).end('404 page not found\n');
  });
  servers.push(handler);
  const listen = (port: number, host?: string) =>
    new Promise<void>((resolve, reject) => {
      const server = servers.length ? createServer((req, res) => handler.emit('request', req, res)) : handler;
      if (server !== handler) servers.push(server);
      server.once('error', reject);
      server.listen({ fd: netns.listen('tcp', port, 128, host === '0.0.0.0' || host === '::' ? undefined : host) }, () => resolve());
    });
  await listen(bind.port, bind.host);
  await listen(hbind.port, hbind.host);
  return async () => {
    await Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); })));
  };
}
