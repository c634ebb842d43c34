// Which parts of kubewire's nftables table carry one Service (pure over the table's listing):
// its map elements (keyed by its cluster and external IPs, or its NodePorts) and its own
// chains whole, as the listing prints them.

import type { Service } from '../../api/types.ts';

/** The lines of `nft list table ip kubewire` that carry `svc` (element lines without their braces and commas). */
export function nftServiceLines(listing: string, svc: Service): string[] {
  const s = svc.spec;
  const id = `-${svc.metadata.namespace}/${svc.metadata.name}/`;
  const addrs = [s.clusterIP, ...(s.externalIPs ?? [])].filter(Boolean).map((ip) => `${ip} . `);
  const nodePorts = (s.ports ?? []).filter((p) => p.nodePort).map((p) => ` . ${p.nodePort} : `);
  const lines: string[] = [];
  let inChain = false;
  for (const raw of listing.split('\n')) {
    const l = raw.trim();
    if (l.startsWith('chain ')) inChain = l.includes(id);
    if (inChain || addrs.some((a) => l.includes(a)) || nodePorts.some((n) => l.includes(n))) lines.push(l.replace(/^elements = \{ /, '').replace(/,$/, ''));
    if (inChain && l === '}') inChain = false;
  }
  return lines;
}
