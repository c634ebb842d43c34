// Reading a namespace's network state as iproute2 reports it (`ip -j`, `bridge -j`): links
// with their ifindexes, MACs, bridge masters and veth peers; addresses; routes; the
// neighbour (ARP) table; a bridge's forwarding database.

import { run } from './exec.ts';

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  address?: string;
  master?: string;
  operstate?: string;
  link_index?: number; // a veth's peer ifindex (in link_netnsid's namespace)
  link_netnsid?: number;
  mtu?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
}

export interface NeighbourInfo {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbEntry {
  mac: string;
  ifname: string;
  master?: string;
  state?: string;
  flags?: string[];
  vlan?: number;
}

export interface NetnsSnapshot {
  links: LinkInfo[];
  routes: RouteInfo[];
  neighbours: NeighbourInfo[];
}

async function json<T>(netns: string, argv: string[]): Promise<T> {
  const out = await run(argv, { netns });
  return (out.trim() ? JSON.parse(out) : []) as T;
}

export async function snapshot(netns: string): Promise<NetnsSnapshot> {
  const [links, routes, neighbours] = await Promise.all([
    json<LinkInfo[]>(netns, ['ip', '-j', '-d', 'addr', 'show']),
    json<RouteInfo[]>(netns, ['ip', '-j', 'route', 'show']),
    json<NeighbourInfo[]>(netns, ['ip', '-j', 'neigh', 'show']),
  ]);
  return { links, routes, neighbours };
}

/** The bridge's forwarding database: learned MACs and the port each sits behind. */
export async function bridgeFdb(netns: string, bridge: string): Promise<FdbEntry[]> {
  return json<FdbEntry[]>(netns, ['bridge', '-j', 'fdb', 'show', 'br', bridge]);
}

export function ipv4Of(link: LinkInfo | undefined): string | undefined {
  const a = link?.addr_info?.find((x) => x.family === 'inet');
  return a && `${a.local}/${a.prefixlen}`;
}

export function formatRoute(r: RouteInfo): string {
  return [r.dst, r.gateway && `via ${r.gateway}`, r.dev && `dev ${r.dev}`, r.protocol && `proto ${r.protocol}`, r.scope && r.scope !== 'global' ? `scope ${r.scope}` : '', r.prefsrc && `src ${r.prefsrc}`].filter(Boolean).join(' ');
}
