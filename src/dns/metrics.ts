// The DNS server's Prometheus metrics with CoreDNS's names (so that its dashboards and alerts
// read kubewire's), and with CoreDNS's bound on what a client can add to them: every label
// value comes from a closed set (series.ts), so a scrape costs the same whatever clients sent.
//
// A query only adds to plain numbers (series.ts): prom-client's inc/observe build and hash a
// label string per call (three per query, measured as a visible share of a cached answer's
// CPU). The series of every thread that answers are summed into prom-client's values when
// the registry is scraped.

import { Registry, type Metric } from 'prom-client';
import { BUCKETS, recorder, SERIES, seriesLabels, seriesMemory, STRIDE, type Series } from './series.ts';

export { metricRcode, metricType, recorder, seriesMemory } from './series.ts';

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

/** The registry and this thread's observer; `include` adds another thread's series (its recorder's memory) to the scrape. */
export function dnsMetrics(zone: string, port: number) {
  const registry = new Registry();
  const server = `dns://:${port}`;
  const own = seriesMemory();
  const observe = recorder(own);
  const memories = [new Float64Array(own)];
  const include = (memory: SharedArrayBuffer) => void memories.push(new Float64Array(memory));
  /** Every series some query added to, summed over the threads, with its labels, at scrape time. */
  const each = function* () {
    for (let i = 0; i < SERIES; i++) {
      const o = i * STRIDE;
      let count = 0;
      for (const a of memories) count += a[o]!;
      if (!count) continue;
      const s: Series = { count, sum: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) };
      for (const a of memories) {
        s.sum += a[o + 1]!;
        for (let b = 0; b <= BUCKETS.length; b++) s.buckets[b]! += a[o + 2 + b]!;
      }
      yield { s, ...seriesLabels(i) };
    }
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
  return { registry, observe, include };
}
