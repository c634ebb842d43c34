// The DNS server's metric series as plain numbers, from a closed set: every label value comes
// from CoreDNS's lists, so what a client sends cannot add a series. The query type is one of
// the types CoreDNS's metrics plugin lists (plugin/metrics/vars/monitor.go, monitorType) or
// `other`; the response code one of RFC 1035/6891's names or `other`. A query adds to the
// numbers of its series (transport, forwarding, type, code), found by index, in a
// SharedArrayBuffer of the thread that answered it (each thread writes only its own: the UDP
// thread's, udp-thread.ts); metrics.ts renders them at scrape. No prom-client here: the UDP
// thread loads this, not the registry.

import type { Observer } from './server.ts';

/** CoreDNS's monitorType: the 19 query types counted by name. */
const METRIC_TYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 64: 'SVCB', 65: 'HTTPS',
  251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS'];
/** CoreDNS's buckets: prometheus.ExponentialBuckets(0.00025, 2, 16) (plugin/metrics/vars). */
export const BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/** The `type` label of a query type (pure): its name when CoreDNS counts it by name, else `other`. */
export const metricType = (qtype: number | undefined): string => (qtype === undefined ? 'other' : (METRIC_TYPES[qtype] ?? 'other'));

/** The `rcode` label (pure): a code we know by name, else `other`. */
export const metricRcode = (rcode: string): string => (RCODES.includes(rcode) ? rcode : 'other');

const TYPE_NAMES = [...Object.values(METRIC_TYPES), 'other'];
const TYPE_INDEX = new Map(Object.keys(METRIC_TYPES).map((t, i) => [Number(t), i]));
const RCODE_NAMES = [...RCODES, 'other'];
const RCODE_INDEX = new Map(RCODES.map((r, i) => [r, i]));

/** Numbers of one series (transport, forwarding, type, code): its count, time, and time's buckets (not cumulative). */
export const STRIDE = 2 + BUCKETS.length + 1;
export const SERIES = 4 * TYPE_NAMES.length * RCODE_NAMES.length;

/** Room for one thread's series, readable by the thread that scrapes (about 100 KB). */
export const seriesMemory = (): SharedArrayBuffer => new SharedArrayBuffer(SERIES * STRIDE * Float64Array.BYTES_PER_ELEMENT);

/** An Observer adding each answered query to `memory`'s series (written by one thread only). */
export function recorder(memory: SharedArrayBuffer): Observer {
  const a = new Float64Array(memory);
  return (proto, qtype, rcode, seconds, forwarded) => {
    const o = seriesIndex(proto, forwarded, qtype, rcode) * STRIDE;
    a[o]!++;
    a[o + 1]! += seconds;
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]!) b++;
    a[o + 2 + b]!++;
  };
}

export interface Series {
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
export function seriesLabels(i: number): { proto: 'udp' | 'tcp'; forwarded: boolean; type: string; rcode: string } {
  const r = i % RCODE_NAMES.length;
  const t = Math.floor(i / RCODE_NAMES.length) % TYPE_NAMES.length;
  const pf = Math.floor(i / (RCODE_NAMES.length * TYPE_NAMES.length));
  return { proto: pf >= 2 ? 'tcp' : 'udp', forwarded: pf % 2 === 1, type: TYPE_NAMES[t]!, rcode: RCODE_NAMES[r]! };
}

