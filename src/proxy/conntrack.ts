// UDP has no connection to end: a conntrack entry keeps sending a client's datagrams to the
// endpoint it first chose, even after that endpoint is gone, and an entry made while a
// Service had no endpoints keeps bypassing the DNAT once it has some. After each sync the
// proxy deletes exactly those entries, as kube-proxy's conntrack cleanup does.

import type { ConntrackFilter } from '../dataplane/port.ts';
import { servicePortName, type ServicePortInfo } from './model.ts';

/** What a UDP service port looked like at the last sync: its destinations and serving endpoint IPs. */
export interface UdpState {
  destinations: Array<{ ip?: string; port: number }>;
  endpoints: Set<string>;
}

export function udpState(ports: ServicePortInfo[]): Map<string, UdpState> {
  const out = new Map<string, UdpState>();
  for (const sp of ports) {
    if (sp.protocol !== 'udp') continue;
    const destinations: UdpState['destinations'] = [];
    if (sp.clusterIP) destinations.push({ ip: sp.clusterIP, port: sp.port });
    for (const ip of sp.externalIPs) destinations.push({ ip, port: sp.port });
    if (sp.nodePort) destinations.push({ port: sp.nodePort });
    out.set(servicePortName(sp), { destinations, endpoints: new Set(sp.endpoints.filter((e) => e.ready || e.serving).map((e) => e.ip)) });
  }
  return out;
}

/** The conntrack deletions for what changed between two syncs (pure). */
export function staleUdpDeletions(before: Map<string, UdpState>, after: Map<string, UdpState>): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  const match = (d: UdpState['destinations'][number], replySrc: string): ConntrackFilter => ({ protocol: 'udp', ...(d.ip ? { origDst: d.ip } : {}), origDstPort: d.port, replySrc });
  for (const [name, prev] of before) {
    const next = after.get(name);
    // Flows to endpoints that no longer serve.
    for (const ip of prev.endpoints) {
      if (next?.endpoints.has(ip)) continue;
      for (const d of prev.destinations) out.push(match(d, ip));
    }
    // Flows made while there was no endpoint: they were never DNATed, and would never be.
    if (!prev.endpoints.size && next?.endpoints.size) {
      for (const d of next.destinations) if (d.ip) out.push(match(d, d.ip));
    }
  }
  for (const [name, next] of after) {
    if (before.has(name) || !next.endpoints.size) continue;
    for (const d of next.destinations) if (d.ip) out.push(match(d, d.ip));
  }
  return out;
}
