// The DNS server's Prometheus metrics with CoreDNS's names (so that its dashboards and alerts
// read kubewire's), and with CoreDNS's bound on what a client can add to them: every label
// value comes from a closed set, so a scrape costs the same whatever clients sent. The query
// type is one of the types CoreDNS's metrics plugin lists (plugin/metrics/vars/monitor.go,
// monitorType) or `other`; the response code one of RFC 1035/6891's names or `other`.

import { Counter, Histogram, Registry } from 'prom-client';
import type { Observer } from './server.ts';

/** CoreDNS's monitorType: the 19 query types counted by name. */
const METRIC_TYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 64: 'SVCB', 65: 'HTTPS',
  251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
const RCODES = new Set(['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS']);

/** The `type` label of a query type (pure): its name when CoreDNS counts it by name, else `other`. */
export const metricType = (qtype: number | undefined): string => (qtype === undefined ? 'other' : (METRIC_TYPES[qtype] ?? 'other'));

/** The `rcode` label (pure): a code we know by name, else `other`. */
export const metricRcode = (rcode: string): string => (RCODES.has(rcode) ? rcode : 'other');

export function dnsMetrics(zone: string, port: number) {
  const registry = new Registry();
  const r = [registry];
  const requests = new Counter({ name: 'coredns_dns_requests_total', help: 'Counter of DNS requests made per zone, protocol and family.', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers: r });
  const responses = new Counter({ name: 'coredns_dns_responses_total', help: 'Counter of response status codes.', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers: r });
  const duration = new Histogram({ name: 'coredns_dns_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took.', labelNames: ['server', 'zone', 'view', 'type'], buckets: [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192], registers: r });
  const server = `dns://:${port}`;
  // Each query touches three series; prom-client hashes a label set on every call, so the
  // series of each combination (a closed set: at most a few hundred) are looked up once.
  const series = new Map<string, { requests: { inc(): void }; responses: { inc(): void }; duration: { observe(v: number): void } }>();
  const observe: Observer = (q) => {
    const type = metricType(q.qtype);
    const rcode = metricRcode(q.rcode);
    const key = `${q.proto}|${type}|${rcode}|${q.forwarded}`;
    let s = series.get(key);
    if (!s) {
      const z = q.forwarded ? '.' : `${zone}.`;
      s = {
        requests: requests.labels({ server, zone: z, view: '', proto: q.proto, family: '1', type }),
        responses: responses.labels({ server, zone: z, view: '', rcode, plugin: q.forwarded ? 'forward' : 'kubernetes' }),
        duration: duration.labels({ server, zone: z, view: '', type }),
      };
      series.set(key, s);
    }
    s.requests.inc();
    s.responses.inc();
    s.duration.observe(q.seconds);
  };
  return { registry, observe };
}
