// The Kubernetes DNS specification (kubernetes/dns, docs/specification.md, schema 1.1.0) as a
// pure function: a question and the cluster's Services and EndpointSlices in, the answer's
// records and response code out. What CoreDNS's `kubernetes` plugin answers, with its
// choices where the specification leaves them open: `pods insecure` (a-b-c-d.NS.pod.ZONE
// answers any address), endpoints without a hostname named by their dashed IP, SRV priority 0
// weight 100, an SOA in the authority section of every negative answer.

import type { EndpointSlice, Service } from '../api/types.ts';

export const TTL = 5;
export const SCHEMA_VERSION = '1.1.0';

export type Rcode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED' | 'FORMERR' | 'NOTIMP' | 'SERVFAIL';

/** Records as dns-packet encodes them. */
export type DnsRecord =
  | { type: 'A'; name: string; ttl: number; data: string }
  | { type: 'CNAME' | 'PTR'; name: string; ttl: number; data: string }
  | { type: 'SRV'; name: string; ttl: number; data: { priority: number; weight: number; port: number; target: string } }
  | { type: 'TXT'; name: string; ttl: number; data: string }
  | { type: 'SOA'; name: string; ttl: number; data: { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number } };

export interface Answer {
  rcode: Rcode;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  /** Not ours to answer: ask the upstream resolver (or refuse when there is none). */
  forward?: boolean;
}

/** What the server knows of the cluster, kept by its informers (view.ts). */
export interface ClusterView {
  zone: string;
  service(namespace: string, name: string): Service | undefined;
  slices(namespace: string, service: string): EndpointSlice[];
  /** Whether any Service lives in the namespace (its name then exists, with no records of its own). */
  hasNamespace(namespace: string): boolean;
  /** The Service whose ClusterIP this is. */
  byClusterIP(ip: string): Service | undefined;
  /** Headless Services' endpoints at this IP: the name each has under its Service. */
  byEndpointIP(ip: string): Array<{ service: Service; hostname: string }>;
  /** Whether an address is one of the cluster's (pod or Service range): its reverse name is ours. */
  ownsAddress(ip: string): boolean;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

export const isHeadless = (s: Service): boolean => s.spec.clusterIP === 'None';
const fqdn = (name: string) => name.replace(/\.$/, '');
/** The name an endpoint has under its headless Service: its hostname, or its IP with dashes. */
export const endpointName = (hostname: string | undefined, ip: string): string => hostname ?? ip.replace(/\./g, '-');

/** The endpoints a Service's DNS names point at: ready ones (all of them with publishNotReadyAddresses). */
export function publishedEndpoints(svc: Service, slices: EndpointSlice[]): Array<{ ip: string; hostname?: string }> {
  const out: Array<{ ip: string; hostname?: string }> = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4') continue;
    for (const e of slice.endpoints) {
      if (e.conditions.ready === false && !svc.spec.publishNotReadyAddresses) continue;
      for (const ip of e.addresses) {
        if (seen.has(ip)) continue;
        seen.add(ip);
        out.push({ ip, ...(e.hostname ? { hostname: e.hostname } : {}) });
      }
    }
  }
  return out;
}

export function soa(zone: string): DnsRecord {
  return { type: 'SOA', name: zone, ttl: TTL, data: { mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: TTL } };
}

const none = (zone: string, rcode: 'NOERROR' | 'NXDOMAIN'): Answer => ({ rcode, answers: [], authorities: [soa(zone)] });
const records = (zone: string, answers: DnsRecord[]): Answer => (answers.length ? { rcode: 'NOERROR', answers, authorities: [] } : none(zone, 'NOERROR'));

/**
 * The answer to one question (`name` in any case, with or without its final dot). Names in the
 * cluster's zone are answered from `view`; reverse names of the cluster's addresses too; any
 * other name is marked `forward`.
 */
export function answer(view: ClusterView, qname: string, qtype: string): Answer {
  const name = fqdn(qname).toLowerCase();
  const zone = view.zone;
  if (name.endsWith('.in-addr.arpa')) return reverse(view, name, qtype);
  if (name !== zone && !name.endsWith(`.${zone}`)) return { rcode: 'NOERROR', answers: [], authorities: [], forward: true };
  const labels = name === zone ? [] : name.slice(0, -zone.length - 1).split('.');
  const want = (t: string) => qtype === t || qtype === 'ANY';

  if (labels.length === 0) return records(zone, want('SOA') ? [soa(zone)] : []);
  if (labels.length === 1 && labels[0] === 'dns-version') return records(zone, want('TXT') ? [{ type: 'TXT', name, ttl: TTL, data: SCHEMA_VERSION }] : []);

  const kind = labels[labels.length - 1];
  if (kind === 'pod') {
    // a-b-c-d.NS.pod.ZONE: any address, as CoreDNS's `pods insecure`.
    if (labels.length === 1) return none(zone, 'NOERROR');
    if (labels.length === 2) return none(zone, 'NOERROR'); // a namespace under pod.ZONE
    if (labels.length !== 3) return none(zone, 'NXDOMAIN');
    const ip = labels[0]!.replace(/-/g, '.');
    if (!IPV4.test(ip)) return none(zone, 'NXDOMAIN');
    return records(zone, want('A') ? [{ type: 'A', name, ttl: TTL, data: ip }] : []);
  }
  if (kind !== 'svc') return none(zone, 'NXDOMAIN');
  // svc.ZONE, NS.svc.ZONE: names that exist with nothing of their own.
  if (labels.length === 1) return none(zone, 'NOERROR');
  const ns = labels[labels.length - 2]!;
  if (labels.length === 2) return none(zone, view.hasNamespace(ns) ? 'NOERROR' : 'NXDOMAIN');
  const svcName = labels[labels.length - 3]!;
  const svc = view.service(ns, svcName);
  if (!svc) return none(zone, 'NXDOMAIN');
  const base = `${svcName}.${ns}.svc.${zone}`;
  const rest = labels.slice(0, -3);

  if (svc.spec.type === 'ExternalName') {
    if (rest.length) return none(zone, 'NXDOMAIN');
    const target = fqdn(svc.spec.externalName ?? '');
    // The CNAME is the answer whatever the type asked (the client follows it).
    return target ? records(zone, [{ type: 'CNAME', name, ttl: TTL, data: target }]) : none(zone, 'NOERROR');
  }

  const endpoints = isHeadless(svc) ? publishedEndpoints(svc, view.slices(ns, svcName)) : [];
  if (rest.length === 0) {
    if (!want('A')) return none(zone, 'NOERROR');
    if (isHeadless(svc)) return records(zone, endpoints.map((e) => ({ type: 'A', name, ttl: TTL, data: e.ip })));
    const ip = svc.spec.clusterIP;
    return records(zone, ip && IPV4.test(ip) ? [{ type: 'A', name, ttl: TTL, data: ip }] : []);
  }
  if (rest.length === 1 && !rest[0]!.startsWith('_')) {
    // HOSTNAME.SVC.NS.svc.ZONE: one endpoint of a headless Service.
    const e = endpoints.filter((x) => endpointName(x.hostname, x.ip) === rest[0]);
    if (!e.length) return none(zone, 'NXDOMAIN');
    return records(zone, want('A') ? e.map((x) => ({ type: 'A', name, ttl: TTL, data: x.ip })) : []);
  }
  if (rest.length === 2 && rest[0]!.startsWith('_') && rest[1]!.startsWith('_')) {
    // _PORT._PROTO.SVC.NS.svc.ZONE: the Service's named port.
    const portName = rest[0]!.slice(1);
    const proto = rest[1]!.slice(1);
    const port = (svc.spec.ports ?? []).find((p) => p.name === portName && (p.protocol ?? 'TCP').toLowerCase() === proto);
    if (!port) return none(zone, 'NXDOMAIN');
    if (!want('SRV')) return none(zone, 'NOERROR');
    if (!isHeadless(svc)) return records(zone, [{ type: 'SRV', name, ttl: TTL, data: { priority: 0, weight: 100, port: port.port, target: base } }]);
    // Headless: a record per endpoint, at the port its slice gives for that name.
    const srv: DnsRecord[] = [];
    for (const slice of view.slices(ns, svcName)) {
      const sp = (slice.ports ?? []).find((p) => p.name === portName && (p.protocol ?? 'TCP').toLowerCase() === proto);
      if (!sp?.port) continue;
      for (const e of publishedEndpoints(svc, [slice])) srv.push({ type: 'SRV', name, ttl: TTL, data: { priority: 0, weight: 100, port: sp.port, target: `${endpointName(e.hostname, e.ip)}.${base}` } });
    }
    return records(zone, srv);
  }
  return none(zone, 'NXDOMAIN');
}

/**
 * The answer to a name with a label no Kubernetes name has (a dot, a space or any byte other
 * than letters, digits, '-' and '_'; see wire.ts): none of the cluster's names (NXDOMAIN)
 * inside the zone, the upstream's to answer outside it. Never the dotted name it resembles.
 */
export function answerUnusual(zone: string, inZone: boolean): Answer {
  return inZone ? none(zone, 'NXDOMAIN') : { rcode: 'NOERROR', answers: [], authorities: [], forward: true };
}

/** d.c.b.a.in-addr.arpa: a ClusterIP's Service, a headless endpoint's name. */
function reverse(view: ClusterView, name: string, qtype: string): Answer {
  const zone = view.zone;
  const octets = name.slice(0, -'.in-addr.arpa'.length).split('.');
  if (octets.length !== 4) return { rcode: 'NOERROR', answers: [], authorities: [], forward: true };
  const ip = [...octets].reverse().join('.');
  if (!IPV4.test(ip) || !view.ownsAddress(ip)) return { rcode: 'NOERROR', answers: [], authorities: [], forward: true };
  const ptr = (target: string): DnsRecord => ({ type: 'PTR', name, ttl: TTL, data: target });
  const svc = view.byClusterIP(ip);
  const found = svc ? [ptr(`${svc.metadata.name}.${svc.metadata.namespace}.svc.${zone}`)] : view.byEndpointIP(ip).map((e) => ptr(`${e.hostname}.${e.service.metadata.name}.${e.service.metadata.namespace}.svc.${zone}`));
  if (!found.length) return none(zone, 'NXDOMAIN');
  return records(zone, qtype === 'PTR' || qtype === 'ANY' ? found : []);
}
