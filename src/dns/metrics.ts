// The DNS server's Prometheus metrics with CoreDNS's names (so that its dashboards and alerts
// read kubewire's), and with CoreDNS's bound on what a client can add to them: every label
// value comes from a closed set, so a scrape costs the same whatever clients sent. The query
// type is one of the types CoreDNS's metrics plugin lists (plugin/metrics/vars/monitor.go,
// monitorType) or `other`; the response code one of RFC 1035/6891's names or `other`.
//
// A query only adds to plain numbers (a series per transport, forwarding, type and code, found
// by index): prom-client's inc/observe build and hash a label string per call (three per query,
// measured as a visible share of a cached answer's CPU). The series become prom-client's
// values when the registry is scraped.

import { Registry, type Metric } from 'prom-client';
import type { Observer } from './server.ts';

/** CoreDNS's monitorType: the 19 query types counted by name. */
const METRIC_TYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 64: 'SVCB', 65: 'HTTPS',
  251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS'];
/** CoreDNS's buckets: prometheus.ExponentialBuckets(0.00025, 2, 16) (plugin/metrics/vars). */
const BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/** The `type` label of a query type (pure): its name when CoreDNS counts it by name, else `other`. */
export const metricType = (qtype: number | undefined): string => (qtype === undefined ? 'other' : (METRIC_TYPES[qtype] ?? 'other'));

/** The `rcode` label (pure): a code we know by name, else `other`. */
export const metricRcode = (rcode: string): string => (RCODES.includes(rcode) ? rcode : 'other');

const TYPE_NAMES = [...Object.values(METRIC_TYPES), 'other'];
const TYPE_INDEX = new Map(Object.keys(METRIC_TYPES).map((t, i) => [Number(t), i]));
const RCODE_NAMES = [...RCODES, 'other'];
const RCODE_INDEX = new Map(RCODES.map((r, i) => [r, i]));

/** One combination of transport, forwarding, type and code: its count, time and time's buckets (not cumulative). */
interface Series {
  count: number;
  sum: number;
  buckets: number[];
}

/** The series' index (pure): transport, forwarded, type, code. */
function seriesIndex(proto: 'udp' | 'tcp', forwarded: boolean, qtype: number | undefined, rcode: string): number {
  const t = qtype === undefined ? TYPE_NAMES.length - 1 : (TYPE_INDEX.get(qtype) ?? TYPE_NAMES.length - 1);
  const r = RCODE_INDEX.get(rcode) ?? RCODE_NAMES.length - 1;
  return (((proto === 'tcp' ? 2 : 0) + (forwarded ? 1 : 0)) * TYPE_NAMES.length + t) * RCODE_NAMES.length + r;
}

/** What the index stands for (pure; seriesIndex's inverse). */
function seriesLabels(i: number): { proto: 'udp' | 'tcp'; forwarded: boolean; type: string; rcode: string } {
  const r = i % RCODE_NAMES.length;
  const t = Math.floor(i / RCODE_NAMES.length) % TYPE_NAMES.length;
  const pf = Math.floor(i / (RCODE_NAMES.length * TYPE_NAMES.length));
  return { proto: pf >= 2 ? 'tcp' : 'udp', forwarded: pf % 2 === 1, type: TYPE_NAMES[t]!, rcode: RCODE_NAMES[r]! };
}

type Labels = Record<string, string>;
interface Value {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** A metric whose values are worked out at scrape time (what prom-client's Registry reads of a metric: its name, help, type and get()). */
function collector(name: string, help: string, type: 'counter' | 'histogram', values: () => Value[]): Metric {
  const m = { name, help, type, get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }) };
  return m as unknown as Metric;
}

/** Adds `n` to the entry of `labels` in `into` (keyed by the labels' values). */
function add<T>(into: Map<string, { labels: Labels; v: T }>, labels: Labels, init: () => T, merge: (v: T) => void): void {
  const key = Object.values(labels).join('\0');
  let e = into.get(key);
  if (!e) into.set(key, (e = { labels, v: init() }));
  merge(e.v);
}

export function dnsMetrics(zone: string, port: number) {
  const registry = new Registry();
  const server = `dns://:${port}`;
  const series: Array<Series | undefined> = [];
  const observe: Observer = (proto, qtype, rcode, seconds, forwarded) => {
    const i = seriesIndex(proto, forwarded, qtype, rcode);
    const s = (series[i] ??= { count: 0, sum: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) });
    s.count++;
    s.sum += seconds;
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]!) b++;
    s.buckets[b]!++;
  };
  /** Every series with its labels, at scrape time. */
  const each = function* () {
    for (let i = 0; i < series.length; i++) if (series[i]) yield { s: series[i]!, ...seriesLabels(i) };
  };
  const zoneOf = (forwarded: boolean) => (forwarded ? '.' : `${zone}.`);

  registry.registerMetric(collector('coredns_dns_requests_total', 'Counter of DNS requests made per zone, protocol and family.', 'counter', () => {
    const out = new Map<string, { labels: Labels; v: { n: number } }>();
    for (const { s, proto, forwarded, type } of each()) add(out, { server, zone: zoneOf(forwarded), view: '', proto, family: '1', type }, () => ({ n: 0 }), (v) => (v.n += s.count));
    return [...out.values()].map((e) => ({ labels: e.labels, value: e.v.n }));
  }));
  registry.registerMetric(collector('coredns_dns_responses_total', 'Counter of response status codes.', 'counter', () => {
    const out = new Map<string, { labels: Labels; v: { n: number } }>();
    for (const { s, forwarded, rcode } of each()) add(out, { server, zone: zoneOf(forwarded), view: '', rcode, plugin: forwarded ? 'forward' : 'kubernetes' }, () => ({ n: 0 }), (v) => (v.n += s.count));
    return [...out.values()].map((e) => ({ labels: e.labels, value: e.v.n }));
  }));
  const durationName = 'coredns_dns_request_duration_seconds';
  registry.registerMetric(collector(durationName, 'Histogram of the time (in seconds) each request took.', 'histogram', () => {
    const out = new Map<string, { labels: Labels; v: Series }>();
    for (const { s, forwarded, type } of each()) {
      add(out, { server, zone: zoneOf(forwarded), view: '', type }, () => ({ count: 0, sum: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) }), (v) => {
        v.count += s.count;
        v.sum += s.sum;
        s.buckets.forEach((n, b) => (v.buckets[b]! += n));
      });
    }
    return [...out.values()].flatMap(({ labels, v }) => {
      let cumulative = 0;
      const buckets = [...BUCKETS.map(String), '+Inf'].map((le, b) => ({ labels: { ...labels, le }, value: (cumulative += v.buckets[b]!), metricName: `${durationName}_bucket` }));
      return [...buckets, { labels, value: v.sum, metricName: `${durationName}_sum` }, { labels, value: v.count, metricName: `${durationName}_count` }];
    });
  }));
  return { registry, observe };
}
