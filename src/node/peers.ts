// The routes from a node to the other nodes' pods, kept in step with the Node objects, as
// flannel's daemon keeps them: host-gw, a route to each podCIDR via the node's address;
// vxlan, for each node its VTEP's neighbour entry, FDB entry and route onlink (the VTEP's
// MAC comes from flannel's annotation on the Node). A node deleted loses its entries on
// every other node; a node registered again gets them back.

import { resourceOfKind } from '../api/resources.ts';
import type { Node } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import type { FdbEntry, NeighbourInfo, Netns, NetOp, RouteInfo } from '../dataplane/port.ts';
import { contains, tryParseIP, tryParsePrefix } from '../netaddr/ip.ts';
import { overlayPeerOps, VXLAN, vtepIP, type Peer, type RoutingMode } from '../cluster/plan.ts';

/** flannel's annotations on a Node: how its peers reach it. */
export const FLANNEL = {
  backendType: 'flannel.alpha.coreos.com/backend-type',
  backendData: 'flannel.alpha.coreos.com/backend-data',
  publicIP: 'flannel.alpha.coreos.com/public-ip',
} as const;

/** The annotations a node publishes about itself in vxlan mode. */
export function flannelAnnotations(ip: string, vtepMAC: string): Record<string, string> {
  return { [FLANNEL.backendType]: 'vxlan', [FLANNEL.backendData]: JSON.stringify({ VNI: VXLAN.vni, VtepMAC: vtepMAC }), [FLANNEL.publicIP]: ip };
}

/** The peers of `self` (pure): every other node with a podCIDR and an address (and in vxlan mode its VTEP's MAC), not being deleted. */
export function peersOf(nodes: Node[], self: string, mode: RoutingMode): Peer[] {
  const out: Peer[] = [];
  for (const n of nodes) {
    if (n.metadata.name === self || n.metadata.deletionTimestamp || !n.spec?.podCIDR) continue;
    const a = n.metadata.annotations ?? {};
    const ip = a[FLANNEL.publicIP] ?? n.status?.addresses?.find((x) => x.type === 'InternalIP')?.address;
    if (!ip) continue;
    if (mode !== 'vxlan') {
      out.push({ ip, podCIDR: n.spec.podCIDR });
      continue;
    }
    let mac: string | undefined;
    try {
      mac = (JSON.parse(a[FLANNEL.backendData] ?? '{}') as { VtepMAC?: string }).VtepMAC;
    } catch {
      mac = undefined;
    }
    if (mac) out.push({ ip, podCIDR: n.spec.podCIDR, vtepMAC: mac.toLowerCase() });
  }
  return out;
}

/** What the kernel holds now for the peers: routes (vxlan: those on flannel.1), neighbour and FDB entries of flannel.1. */
export interface PeerState {
  routes: RouteInfo[];
  neighbours: NeighbourInfo[];
  fdb: FdbEntry[];
}

/**
 * The changes that bring the kernel to the peers (pure): entries for a node that is no peer
 * any more go, missing or different ones are (re)placed. `podRange` tells which routes are
 * pod routes: a node's other routes are never touched.
 */
export function peerChanges(mode: RoutingMode, podRange: string, state: PeerState, peers: Peer[]): NetOp[] {
  const range = tryParsePrefix(podRange);
  const isPodRoute = (dst: string) => {
    const p = tryParsePrefix(dst.includes('/') ? dst : `${dst}/32`);
    return Boolean(range && p && p.bits >= range.bits && contains(range, p.ip));
  };
  const ops: NetOp[] = [];
  const wanted = new Set(peers.map((p) => p.podCIDR));
  if (mode === 'host-gw') {
    for (const r of state.routes) if (r.gateway && isPodRoute(r.dst) && !wanted.has(r.dst)) ops.push({ op: 'route-del', dst: r.dst });
    for (const p of peers) {
      if (!state.routes.some((r) => r.dst === p.podCIDR && r.gateway === p.ip)) ops.push({ op: 'route-add', dst: p.podCIDR, via: p.ip, replace: true });
    }
    return ops;
  }
  if (mode !== 'vxlan') return ops;
  const dev = VXLAN.device;
  const macs = new Set(peers.map((p) => p.vtepMAC));
  const vteps = new Set(peers.map((p) => vtepIP(p.podCIDR)));
  for (const r of state.routes) if (r.dev === dev && isPodRoute(r.dst) && r.gateway && !wanted.has(r.dst)) ops.push({ op: 'route-del', dst: r.dst, dev });
  for (const n of state.neighbours) if (n.dev === dev && tryParseIP(n.dst) && !vteps.has(n.dst)) ops.push({ op: 'neigh-del', dev, ip: n.dst });
  for (const f of state.fdb) if (f.dst && !macs.has(f.mac.toLowerCase())) ops.push({ op: 'fdb-del', dev, mac: f.mac, dst: f.dst });
  for (const p of peers) {
    const ip = vtepIP(p.podCIDR);
    const present =
      state.routes.some((r) => r.dev === dev && r.dst === p.podCIDR && r.gateway === ip) &&
      state.neighbours.some((n) => n.dev === dev && n.dst === ip && n.lladdr?.toLowerCase() === p.vtepMAC) &&
      state.fdb.some((f) => f.mac.toLowerCase() === p.vtepMAC && f.dst === p.ip);
    if (!present) ops.push(...overlayPeerOps(p));
  }
  return ops;
}

/** Reads what the node's kernel holds for its peers. */
export async function readPeerState(netns: Netns, mode: RoutingMode): Promise<PeerState> {
  if (mode === 'vxlan') {
    const dev = VXLAN.device;
    const [routes, neighbours, fdb] = await Promise.all([netns.routes(dev), netns.neighbours(dev), netns.deviceFdb(dev)]);
    // Listed by device, the kernel leaves the device out of each entry.
    return { routes: routes.map((r) => ({ ...r, dev })), neighbours: neighbours.map((n) => ({ ...n, dev })), fdb };
  }
  return { routes: await netns.routes(), neighbours: [], fdb: [] };
}

/** How often the routes are checked against the kernel besides Node changes (flannel's route check, the route controller's period): KUBEWIRE_ROUTE_RESYNC_SECONDS, 10; 0: never (a route deleted by hand stays deleted). */
function resyncMs(): number {
  const s = Number(process.env.KUBEWIRE_ROUTE_RESYNC_SECONDS ?? 10);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : 10_000;
}

/**
 * One node's peer routes, as flanneld runs them: when a change of the Node objects changes
 * the peers, and every 10 s for drift (a route deleted by hand comes back), the kernel is
 * read and brought to the peers in one batch. Node changes that leave the peers as they
 * were (a status update) cost no kernel call.
 */
export class PeerSync {
  /** The Node objects, as an informer over the client (in the daemon or over the REST API). */
  private readonly nodes: Informer<Node>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** A sync asked for while one runs; `true` when it is to read the kernel whatever the peers. */
  private again?: boolean;
  /** The peers the kernel was last brought to. */
  private applied?: string;

  constructor(
    private readonly o: {
      client: ObjectClient;
      /** The node whose routes these are; for the underlay's router, a name no node has. */
      self: string;
      mode: RoutingMode;
      podRange: string;
      netns: Netns;
      log: (line: string) => void;
    },
  ) {
    this.nodes = new Informer<Node>(o.client, resourceOfKind('Node'), (n) => n && this.kick(false), (l) => o.log(`${o.self}: ${l}`));
  }

  async start(): Promise<void> {
    await this.nodes.start();
    const every = resyncMs();
    if (every > 0) {
      this.timer = setInterval(() => this.kick(true), every);
      this.timer.unref();
    }
    this.kick(true);
    await this.running;
  }

  stop(): void {
    this.nodes.stop();
    clearInterval(this.timer);
  }

  /** Syncs now, or once more after the sync under way (changes that come during one are not lost). `drift`: read the kernel even if the peers are as last applied. */
  private kick(drift: boolean): void {
    if (this.running) {
      this.again = Boolean(this.again) || drift;
      return;
    }
    this.running = this.sync(drift)
      .catch((e: Error) => {
        this.applied = undefined; // look again next time
        this.o.log(`${this.o.self}: peer routes: ${e.message}`);
      })
      .finally(() => {
        this.running = undefined;
        const again = this.again;
        this.again = undefined;
        if (again !== undefined) this.kick(again);
      });
  }

  private async sync(drift: boolean): Promise<void> {
    if (!this.nodes.synced) return; // nothing known yet: the kernel keeps what it has
    const peers = peersOf(this.nodes.list().sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), this.o.self, this.o.mode);
    const key = JSON.stringify(peers);
    if (!drift && key === this.applied) return;
    const ops = peerChanges(this.o.mode, this.o.podRange, await readPeerState(this.o.netns, this.o.mode), peers);
    this.applied = key;
    if (!ops.length) return;
    await this.o.netns.apply(ops);
    const gone = ops.filter((o) => o.op === 'route-del').map((o) => (o as { dst: string }).dst);
    const added = ops.filter((o) => o.op === 'route-add').map((o) => (o as { dst: string }).dst);
    this.o.log(`${this.o.self}: peer routes${added.length ? `, to ${added.join(' ')}` : ''}${gone.length ? `, removed ${gone.join(' ')}` : ''}`);
  }
}
