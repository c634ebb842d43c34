// The ingress controller's Prometheus metrics, shaped as ingress-nginx's (requests and their
// duration by namespace, ingress, service, status, method, host and rule path; reload
// outcome; certificate expiry), served on :10254 of the node as ingress-nginx does.
// Label children are cached per route so that the hot path does no label hashing.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Route } from './routes.ts';

export const METRICS_PORT = 10254;

/** A request's counter and histogram children for one (route, status, method). */
type Children = { count: { inc(): void }; time: { observe(v: number): void } };

export class IngressMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly duration: Histogram;
  private readonly retries: Counter;
  readonly reloads: Counter;
  readonly lastReloadOk: Gauge;
  readonly lastReloadTime: Gauge;
  readonly certificateExpiry: Gauge;
  readonly problems: Gauge;
  private readonly children = new WeakMap<object, Map<string, Children>>();
  private readonly noRoute = {};

  constructor() {
    const registers = [this.registry];
    const labelNames = ['namespace', 'ingress', 'service', 'status', 'method', 'host', 'path'];
    this.requests = new Counter({ name: 'kubewire_ingress_requests_total', help: 'Client requests, by Ingress, Service, status, method, host and rule path (ingress-nginx: nginx_ingress_controller_requests)', labelNames, registers });
    this.duration = new Histogram({ name: 'kubewire_ingress_request_duration_seconds', help: 'Time from the first byte of a request to the last byte of its response', labelNames, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
    this.retries = new Counter({ name: 'kubewire_ingress_upstream_retries_total', help: 'Requests passed to another endpoint after a failed connect or a lost connection', labelNames: ['namespace', 'ingress', 'service', 'reason'], registers });
    this.reloads = new Counter({ name: 'kubewire_ingress_config_reloads_total', help: 'Configurations applied (route table swaps)', registers });
    this.lastReloadOk = new Gauge({ name: 'kubewire_ingress_config_last_reload_successful', help: 'Whether the last configuration was applied', registers });
    this.lastReloadTime = new Gauge({ name: 'kubewire_ingress_config_last_reload_successful_timestamp_seconds', help: 'When the last configuration was applied', registers });
    this.certificateExpiry = new Gauge({ name: 'kubewire_ingress_ssl_expire_time_seconds', help: 'When a served certificate expires (unix time)', labelNames: ['namespace', 'secret_name', 'host'], registers });
    this.problems = new Gauge({ name: 'kubewire_ingress_config_problems', help: 'Problems found in the served Ingresses (see kubewire describe ingress)', registers });
    collectDefaultMetrics({ register: this.registry });
  }

  request(route: Route | undefined, method: string, status: number, seconds: number): void {
    const owner = route ?? this.noRoute;
    let byKey = this.children.get(owner);
    if (!byKey) this.children.set(owner, (byKey = new Map()));
    const k = `${status} ${method}`;
    let child = byKey.get(k);
    if (!child) {
      // Rule hosts, never request hosts: a client picks those, and labels must stay bounded.
      const labels = { namespace: route?.ingress.namespace ?? '', ingress: route?.ingress.name ?? '', service: route?.upstream.service ?? '', status: String(status), method, host: route ? route.host || '*' : '_', path: route?.path ?? '' };
      child = { count: this.requests.labels(labels), time: this.duration.labels(labels) };
      byKey.set(k, child);
    }
    child.count.inc();
    child.time.observe(seconds);
  }

  retry(route: Route, reason: string): void {
    this.retries.inc({ namespace: route.ingress.namespace, ingress: route.ingress.name, service: route.upstream.service, reason });
  }
}
