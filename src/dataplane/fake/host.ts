// A dataplane kept in memory, for tests that need no root: namespaces holding links,
// addresses, routes, neighbours, sysctls, iptables and nftables, changed by the same calls as
// the kernel and refusing what it refuses (a link that exists or is missing, a master that is
// not a bridge, a gateway no connected route reaches, a route or address twice, a veth end in a
// namespace that does not exist). Reads return the kernel's JSON shapes. The contract suite
// (test/dataplane-contract.test.ts) holds it to the Linux dataplane's behaviour.

import { DataplaneError, NETNS_DIR, type Addressing, type ApplyOptions, type ConntrackFilter, type Dataplane, type DataplaneErrorCode, type FdbEntry, type FileLock, type IPFamily, type IptablesBackend, type IptablesTable, type LinkInfo, type NeighbourInfo, type NetnsState, type NftFamily, type NetOp, type Netns, type RouteInfo, type TraceSource, type TraceWatch } from '../port.ts';
import { parseIptablesSave, parseNftListing, type ConntrackFlow, type IptablesTableState, type IpvsConnection, type NftListFamily, type NftTableState, type RouteLookup, type SocketListener } from '../observations.ts';
import type { TraceEvent } from '../trace-events.ts';
import { contains, formatIP, networkOf, formatPrefix, tryParseIP, tryParsePrefix, type Prefix } from '../../netaddr/ip.ts';
import { FakeIptables } from './iptables.ts';
import { FakeIpsets, FakeIpvs } from './ipvs.ts';
import { FakeNftables } from './nftables.ts';

/** The fake's own namespace (the caller's, for `at()` without a path). */
const OWN = '/proc/self/ns/net';

interface FakeLink {
  ifindex: number;
  name: string;
  kind: 'loopback' | 'bridge' | 'dummy' | 'veth' | 'vxlan';
  mtu: number;
  /** A bridge whose MTU was not given follows its ports' smallest (as the kernel does). */
  mtuFollowsPorts?: boolean;
  mac: string;
  up: boolean;
  master?: string;
  alias?: string;
  hairpin?: boolean;
  promisc?: boolean;
  /** A veth's other end. */
  peer?: { ns: FakeNamespace; name: string };
  /** Static FDB entries on this port (MAC -> remote VTEP for a VXLAN device, '' on a bridge port). */
  fdb: Map<string, string>;
  addresses: Prefix[];
}

interface FakeRoute {
  dst: string;
  via?: string;
  dev: string;
}

/** The short form tests give a flow in: what the proxy's deletions match on. */
interface ConntrackShort {
  protocol: 'udp' | 'tcp';
  origDst: string;
  origDstPort: number;
  replySrc: string;
}

/** Whether a flow's mark matches "VALUE" or "VALUE/MASK" (conntrack --mark). */
function markMatches(flow: ConntrackFlow, mark: string): boolean {
  const [value, mask] = mark.split('/').map((x) => Number(x));
  const m = mask ?? 0xffffffff;
  return ((flow.mark ?? 0) & m) >>> 0 === ((value ?? 0) & m) >>> 0;
}

const fail = (code: DataplaneErrorCode, message: string): never => {
  throw new DataplaneError(code, message);
};

let macs = 0;
const fakeMac = () => `02:00:00:00:${((++macs >> 8) & 255).toString(16).padStart(2, '0')}:${(macs & 255).toString(16).padStart(2, '0')}`;

/** Keys under /proc/sys that exist in every namespace (per-interface keys exist with their interface). */
const GLOBAL_SYSCTLS: Record<string, string> = {
  'net/ipv4/ip_forward': '0',
  'net/ipv6/conf/all/forwarding': '0',
  'net/bridge/bridge-nf-call-iptables': '1',
  'net/ipv4/conf/all/rp_filter': '0',
  'net/ipv4/conf/default/rp_filter': '0',
  'net/ipv4/conf/all/accept_redirects': '1',
  'net/ipv4/conf/all/send_redirects': '1',
  'net/ipv4/conf/default/send_redirects': '1',
  'net/ipv4/conf/all/route_localnet': '0',
  'net/ipv4/vs/conntrack': '0',
};

class FakeNamespace {
  readonly links = new Map<string, FakeLink>();
  readonly routes: FakeRoute[] = [];
  /** Prefix routes of addresses that were deleted ("dst dev"): the kernel does not bring them back. */
  readonly deletedConnected = new Set<string>();
  readonly neighbours = new Map<string, { dev: string; mac: string }>();
  readonly sysctls = new Map<string, string>(Object.entries(GLOBAL_SYSCTLS));
  readonly iptables = new Map<string, FakeIptables>();
  readonly nft = new FakeNftables();
  readonly ipsets = new FakeIpsets();
  readonly ipvs = new FakeIpvs();
  readonly conntrack: ConntrackFlow[] = [];
  readonly ipvsConns: IpvsConnection[] = [];
  /** "tcp PORT" → its listening sockets. */
  readonly sockets = new Map<string, SocketListener[]>();
  /** Trace events "the kernel" reports to readers (tests put them here), and the readers. */
  readonly traced: Array<{ source: TraceSource; event: TraceEvent }> = [];
  readonly watches = new Set<{ source: TraceSource; events: TraceEvent[]; changes: string[]; wake: () => void }>();
  private nextIndex = 1;

  constructor(readonly path: string) {
    this.addLink({ name: 'lo', kind: 'loopback', mtu: 65536, mac: '00:00:00:00:00:00', up: false, addresses: [] });
  }

  addLink(l: Omit<FakeLink, 'ifindex' | 'fdb'>): FakeLink {
    const link = { ...l, ifindex: this.nextIndex++, fdb: new Map<string, string>() };
    this.links.set(link.name, link);
    return link;
  }

  need(name: string): FakeLink {
    return this.links.get(name) ?? fail('not-found', `Cannot find device "${name}"`);
  }

  /** Removes a link; a veth takes its peer with it, a bridge frees its ports. */
  removeLink(name: string): void {
    const link = this.links.get(name);
    if (!link) return;
    this.links.delete(name);
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]!.dev === name) this.routes.splice(i, 1);
    for (const l of this.links.values()) if (l.master === name) l.master = undefined;
    if (link.peer) {
      const { ns, name: peer } = link.peer;
      link.peer = undefined;
      const other = ns.links.get(peer);
      if (other) other.peer = undefined;
      ns.removeLink(peer);
    }
  }

  /** IFF_RUNNING: up with carrier (a veth whose peer is up, a bridge with a running port, lo and dummies when up). */
  running(l: FakeLink): boolean {
    if (!l.up) return false;
    if (l.kind === 'veth') return Boolean(l.peer && l.peer.ns.links.get(l.peer.name)?.up);
    if (l.kind === 'bridge') return [...this.links.values()].some((p) => p.master === l.name && this.running(p));
    return true;
  }

  operstate(l: FakeLink): string {
    if (l.kind === 'loopback' || l.kind === 'dummy') return l.up ? 'UNKNOWN' : 'DOWN';
    if (!l.up) return 'DOWN';
    if (l.kind === 'veth' && !this.running(l)) return 'LOWERLAYERDOWN';
    return this.running(l) ? 'UP' : 'DOWN';
  }

  mtu(l: FakeLink): number {
    if (!l.mtuFollowsPorts) return l.mtu;
    const ports = [...this.links.values()].filter((p) => p.master === l.name).map((p) => p.mtu);
    return ports.length ? Math.min(...ports) : l.mtu;
  }

  /** The connected routes the kernel derives from addresses on links that are up. */
  connected(): FakeRoute[] {
    const out: FakeRoute[] = [];
    for (const l of this.links.values()) {
      if (!l.up || l.kind === 'loopback') continue;
      for (const a of l.addresses) if (a.ip.family === 4 && a.bits < 32) out.push({ dst: formatPrefix(networkOf(a)), dev: l.name });
    }
    return out.filter((r) => !this.deletedConnected.has(`${r.dst} ${r.dev}`));
  }

  /** The link through which `gw` is reachable (a connected route holds it). */
  onLink(gw: string): string | undefined {
    const ip = tryParseIP(gw);
    if (!ip) return undefined;
    for (const r of [...this.connected(), ...this.routes.filter((x) => !x.via)]) {
      const p = tryParsePrefix(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (p && contains(p, ip)) return r.dev;
    }
    return undefined;
  }

  linkInfo(l: FakeLink): LinkInfo {
    const flags = [...(l.kind === 'loopback' ? ['LOOPBACK'] : ['BROADCAST', 'MULTICAST']), ...(l.up ? ['UP'] : []), ...(this.running(l) ? ['LOWER_UP'] : [])];
    const peer = l.peer && l.peer.ns.links.get(l.peer.name);
    return {
      ifindex: l.ifindex,
      ifname: l.name,
      ...(peer ? { link_index: peer.ifindex, ...(l.peer!.ns !== this ? { link_netnsid: 0 } : {}) } : {}),
      flags,
      mtu: this.mtu(l),
      operstate: this.operstate(l),
      address: l.mac,
      ...(l.master ? { master: l.master } : {}),
      ...(l.alias ? { ifalias: l.alias } : {}),
      ...(l.kind !== 'loopback' ? { linkinfo: { info_kind: l.kind, ...(l.master ? { info_slave_kind: 'bridge', info_slave_data: { hairpin: Boolean(l.hairpin) } } : {}) } } : {}),
      addr_info: [
        ...(l.kind === 'loopback' && l.up ? [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }, { family: 'inet6', local: '::1', prefixlen: 128, scope: 'host' }] : []),
        ...l.addresses.map((a) => ({ family: a.ip.family === 4 ? 'inet' : 'inet6', local: formatIP(a.ip), prefixlen: a.bits, scope: 'global' })),
      ],
    };
  }
}

class FakeNetnsHandle implements Netns {
  constructor(
    private readonly dp: FakeDataplane,
    readonly path: string | undefined,
  ) {}

  private ns(): FakeNamespace {
    return this.dp.namespace(this.path ?? OWN);
  }

  async apply(ops: NetOp[], opts: ApplyOptions = {}): Promise<LinkInfo | undefined> {
    const ns = this.ns();
    if (opts.sysctls) await this.setSysctls(opts.sysctls);
    for (const op of ops) this.one(ns, op);
    return opts.show === undefined ? undefined : ns.linkInfo(ns.need(opts.show));
  }

  private one(ns: FakeNamespace, op: NetOp): void {
    const checkName = (name: string) => {
      if (!name || name.length > 15 || /[\s/:]/.test(name)) fail('invalid', `Error: argument "${name}" is wrong: "name" not a valid ifname`);
      if (ns.links.has(name)) fail('exists', 'RTNETLINK answers: File exists');
    };
    switch (op.op) {
      case 'link-add':
        if (!this.dp.linkKinds.includes(op.kind)) fail('failed', 'Error: Unknown device type.');
        checkName(op.name);
        ns.addLink({ name: op.name, kind: op.kind, mtu: op.mtu ?? 1500, mtuFollowsPorts: op.kind === 'bridge' && !op.mtu, mac: op.mac ?? fakeMac(), up: false, addresses: [] });
        return;
      case 'vxlan-add':
        checkName(op.name);
        ns.need(op.dev);
        ns.addLink({ name: op.name, kind: 'vxlan', mtu: op.mtu ?? 1450, mac: op.mac ?? fakeMac(), up: false, addresses: [] });
        return;
      case 'veth-add': {
        const other = op.peerNetns ? this.dp.tryNamespace(op.peerNetns) ?? fail('invalid', `Error: argument "${op.peerNetns}" is wrong: Invalid "netns" value`) : ns;
        checkName(op.name);
        if (other.links.has(op.peer) || (other === ns && op.peer === op.name)) fail('exists', 'RTNETLINK answers: File exists');
        if (op.peer.length > 15) fail('invalid', `Error: argument "${op.peer}" is wrong: "name" not a valid ifname`);
        const a = ns.addLink({ name: op.name, kind: 'veth', mtu: op.mtu ?? 1500, mac: op.mac ?? fakeMac(), up: false, addresses: [] });
        const b = other.addLink({ name: op.peer, kind: 'veth', mtu: op.mtu ?? 1500, mac: op.peerMac ?? fakeMac(), up: false, addresses: [] });
        a.peer = { ns: other, name: b.name };
        b.peer = { ns, name: a.name };
        return;
      }
      case 'link-set': {
        // In the kernel's order (do_setlink): the alias and flags go in before the master is
        // tried, so a refused master leaves them set.
        const l = ns.need(op.name);
        if (op.alias !== undefined) l.alias = op.alias;
        if (op.promisc !== undefined) l.promisc = op.promisc;
        if (op.master !== undefined) {
          const m = ns.need(op.master);
          if (m.kind !== 'bridge') fail('invalid', 'RTNETLINK answers: Operation not supported');
          l.master = op.master;
        }
        if (op.hairpin !== undefined) {
          if (!l.master) fail('invalid', 'RTNETLINK answers: Operation not supported');
          l.hairpin = op.hairpin;
        }
        if ((op.proxyArp !== undefined || op.learning !== undefined) && !l.master) fail('invalid', 'RTNETLINK answers: Operation not supported');
        if (op.up !== undefined) l.up = op.up;
        return;
      }
      case 'link-del':
        ns.need(op.name);
        if (op.name === 'lo') fail('invalid', 'RTNETLINK answers: Operation not supported');
        ns.removeLink(op.name);
        return;
      case 'addr-add':
      case 'addr-del': {
        const l = ns.need(op.dev);
        const p = tryParsePrefix(op.address) ?? fail('invalid', `Error: any valid prefix is expected rather than "${op.address}"`);
        const at = l.addresses.findIndex((a) => a.ip.value === p.ip.value && a.ip.family === p.ip.family);
        if (op.op === 'addr-del') {
          if (at < 0) fail('not-found', 'RTNETLINK answers: Cannot assign requested address');
          l.addresses.splice(at, 1);
        } else if (at >= 0 && !op.replace) fail('exists', 'Error: ipv4: Address already assigned.');
        else if (at >= 0) l.addresses[at] = p;
        else l.addresses.push(p);
        return;
      }
      case 'route-add': {
        const dst = op.dst === '0.0.0.0/0' ? 'default' : op.dst;
        if (op.dev) {
          const l = ns.need(op.dev);
          if (!l.up) fail('invalid', 'Error: Device for nexthop is not up.');
        }
        const dev = op.via && !op.onlink ? ns.onLink(op.via) : op.dev;
        if (op.via && (!dev || (op.dev && dev !== op.dev))) fail('invalid', 'Error: Nexthop has invalid gateway.');
        if (!dev) fail('invalid', 'Error: Device for nexthop is not up.');
        const at = ns.routes.findIndex((r) => r.dst === dst);
        if (at >= 0 && !op.replace) fail('exists', 'RTNETLINK answers: File exists');
        const route = { dst, via: op.via, dev: dev! };
        if (at >= 0) ns.routes[at] = route;
        else ns.routes.push(route);
        return;
      }
      case 'route-del': {
        const dst = op.dst === '0.0.0.0/0' ? 'default' : op.dst;
        const at = ns.routes.findIndex((r) => r.dst === dst && (!op.dev || r.dev === op.dev));
        if (at >= 0) {
          ns.routes.splice(at, 1);
          return;
        }
        const prefix = ns.connected().find((r) => r.dst === dst && (!op.dev || r.dev === op.dev)) ?? fail('not-found', 'RTNETLINK answers: No such process');
        ns.deletedConnected.add(`${prefix.dst} ${prefix.dev}`);
        return;
      }
      case 'offload':
        ns.need(op.dev);
        return;
      case 'neigh-del':
        ns.need(op.dev);
        if (!ns.neighbours.delete(op.ip)) fail('not-found', 'RTNETLINK answers: No such file or directory');
        return;
      case 'neigh-replace':
        ns.need(op.dev);
        ns.neighbours.set(op.ip, { dev: op.dev, mac: op.mac });
        return;
      case 'fdb-replace':
      case 'fdb-del': {
        const l = ns.need(op.dev);
        // Without dst the entry goes in the master bridge's FDB: the device must be a port.
        if (!op.dst && !l.master) fail('invalid', 'RTNETLINK answers: Operation not supported');
        const mac = op.mac.toLowerCase();
        if (op.op === 'fdb-replace') l.fdb.set(mac, op.dst ?? '');
        else if (!l.fdb.delete(mac)) fail('not-found', 'RTNETLINK answers: No such file or directory');
        return;
      }
    }
  }

  async setSysctls(values: Record<string, string>): Promise<void> {
    const ns = this.ns();
    for (const [k, v] of Object.entries(values)) if (this.exists(ns, k)) ns.sysctls.set(k, v);
  }

  async sysctl(key: string): Promise<string | undefined> {
    const ns = this.ns();
    return this.exists(ns, key) ? (ns.sysctls.get(key) ?? '0') : undefined;
  }

  /** Per-interface keys exist while their interface does (and for all/default). */
  private exists(ns: FakeNamespace, key: string): boolean {
    const m = /^net\/ipv[46]\/conf\/([^/]+)\//.exec(key);
    if (m) return m[1] === 'all' || m[1] === 'default' || ns.links.has(m[1]!);
    return key in GLOBAL_SYSCTLS || ns.sysctls.has(key);
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    const ns = this.ns();
    const l = ns.links.get(name);
    return l && ns.linkInfo(l);
  }

  async links(master?: string): Promise<LinkInfo[]> {
    const ns = this.ns();
    if (master !== undefined) ns.need(master);
    return [...ns.links.values()].filter((l) => master === undefined || l.master === master).map((l) => ns.linkInfo(l));
  }

  async linkRunning(name: string): Promise<boolean> {
    const ns = this.ns();
    const l = ns.links.get(name);
    return Boolean(l && ns.running(l));
  }

  async routes(dev?: string): Promise<RouteInfo[]> {
    const ns = this.ns();
    if (dev !== undefined) ns.need(dev);
    const kernel = ns.connected().map((r): RouteInfo => ({ dst: r.dst, dev: r.dev, protocol: 'kernel', scope: 'link' }));
    const added = ns.routes.map((r): RouteInfo => ({ dst: r.dst, ...(r.via ? { gateway: r.via } : {}), dev: r.dev }));
    return [...added, ...kernel].filter((r) => dev === undefined || r.dev === dev);
  }

  async neighbours(dev?: string): Promise<NeighbourInfo[]> {
    return [...this.ns().neighbours].filter(([, n]) => dev === undefined || n.dev === dev).map(([ip, n]) => ({ dst: ip, dev: n.dev, lladdr: n.mac, state: ['PERMANENT'] }));
  }

  async addressing(): Promise<Addressing> {
    const [links, routes, neighbours] = await Promise.all([this.links(), this.routes(), this.neighbours()]);
    return { links, routes: routes.filter((r) => !r.dst.includes(':')), neighbours };
  }

  async fdb(bridge: string): Promise<FdbEntry[]> {
    const ns = this.ns();
    ns.need(bridge);
    // No traffic here: each port's own address (permanent, as the kernel lists it) and the static entries added.
    return [...ns.links.values()]
      .filter((l) => l.master === bridge)
      .flatMap((l): FdbEntry[] => [{ mac: l.mac, ifname: l.name, master: bridge, state: 'permanent' }, ...[...l.fdb.keys()].map((mac) => ({ mac, ifname: l.name, master: bridge, state: 'static' }))]);
  }

  async deviceFdb(dev: string): Promise<FdbEntry[]> {
    const l = this.ns().need(dev);
    return [...l.fdb].map(([mac, dst]) => ({ mac, ifname: dev, ...(dst ? { dst } : {}), state: 'permanent' }));
  }

  private tables(family: IPFamily, backend?: IptablesBackend): FakeIptables {
    const ns = this.ns();
    const key = `${family}/${backend ?? 'nft'}`;
    let t = ns.iptables.get(key);
    if (!t) ns.iptables.set(key, (t = new FakeIptables()));
    return t;
  }

  async iptablesSave(table: IptablesTable, family: IPFamily = 4, backend?: IptablesBackend): Promise<string> {
    return this.tables(family, backend).save(table);
  }

  async iptablesRestore(script: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<void> {
    this.tables(family, backend).restore(script);
  }

  async iptablesHasRule(table: IptablesTable, chain: string, rule: string[], family: IPFamily = 4, backend?: IptablesBackend): Promise<boolean> {
    return this.tables(family, backend).hasRule(table, chain, rule);
  }

  async iptablesUsable(backend: IptablesBackend): Promise<boolean> {
    this.ns();
    return this.dp.iptablesBackends.includes(backend);
  }

  async nft(script: string): Promise<void> {
    if (!script) return;
    const ns = this.ns();
    ns.nft.apply(script);
    // What `nft monitor` reports of a transaction: each table and chain it adds.
    const changes = nftChanges(script);
    for (const w of ns.watches) {
      if (w.source !== 'nft') continue;
      w.changes.push(...changes);
      w.wake();
    }
  }

  async nftTable(name: string, family: NftFamily = 'ip'): Promise<string | undefined> {
    return this.ns().nft.list(name, family);
  }

  async nftTables(family: NftFamily = 'ip'): Promise<string[]> {
    return this.ns().nft.tableNames(family);
  }

  async ipsetRestore(script: string): Promise<void> {
    this.ns().ipsets.restore(script);
  }

  async ipsetNames(): Promise<string[]> {
    return this.ns().ipsets.names();
  }

  async ipvsSave(): Promise<string> {
    return this.ns().ipvs.save();
  }

  async ipvsRestore(lines: string[]): Promise<void> {
    this.ns().ipvs.restore(lines);
  }

  async ipvsConnections(services?: string[]): Promise<Map<string, number>> {
    const all = this.ns().ipvs.connections();
    return services ? new Map([...all].filter(([k]) => services.includes(k.slice(0, k.indexOf(' -r '))))) : all;
  }

  async conntrackDelete(f: ConntrackFilter): Promise<number> {
    const ct = this.ns().conntrack;
    const before = ct.length;
    const matches = (e: ConntrackFlow) =>
      (!f.protocol || e.protocol === f.protocol) && (!f.origDst || e.original.dst === f.origDst) && (f.origDstPort === undefined || e.original.dport === f.origDstPort) && (!f.replySrc || e.reply.src === f.replySrc) && (!f.mark || markMatches(e, f.mark));
    const keep = ct.filter((e) => !matches(e));
    ct.splice(0, ct.length, ...keep);
    return before - keep.length;
  }

  async conntrackList(filter: { mark?: string } = {}): Promise<ConntrackFlow[]> {
    return this.ns().conntrack.filter((e) => !filter.mark || markMatches(e, filter.mark)).map((e) => structuredClone(e));
  }

  async ipvsConnectionList(): Promise<IpvsConnection[]> {
    return this.ns().ipvsConns.map((c) => ({ ...c }));
  }

  async nftRuleset(family?: NftListFamily): Promise<NftTableState[]> {
    const nft = this.ns().nft;
    const families = family ? [family] : ['ip', 'inet'];
    // The listing the kernel would print, read by the same parser as the Linux one's.
    return families.flatMap((f) => (f === 'ip' || f === 'inet' ? nft.tableNames(f).flatMap((t) => parseNftListing(nft.list(t, f) ?? '')) : []));
  }

  async nftTableState(name: string, family: NftListFamily): Promise<NftTableState | undefined> {
    const nft = this.ns().nft;
    const text = family === 'ip' || family === 'inet' ? nft.list(name, family) : undefined;
    return text === undefined ? undefined : parseNftListing(text)[0];
  }

  async iptablesRules(tables?: IptablesTable[], family: IPFamily = 4, backend?: IptablesBackend): Promise<IptablesTableState[]> {
    const t = this.tables(family, backend);
    // Only tables that exist, as a save of all lists them; no traffic here, so every counter is 0.
    const names = (tables ?? (t.names() as IptablesTable[])).filter((n) => t.names().includes(n));
    const read = names.flatMap((n) => parseIptablesSave(t.save(n)));
    for (const r of read.flatMap((x) => x.chains.flatMap((c) => c.rules))) Object.assign(r, { packets: r.packets ?? 0, bytes: r.bytes ?? 0 });
    return read;
  }

  async traceEvents(source: TraceSource): Promise<TraceWatch> {
    const ns = this.ns();
    const waiters = new Set<() => void>();
    const watch = { source, events: [] as TraceEvent[], changes: [] as string[], wake: () => waiters.forEach((w) => w()) };
    ns.watches.add(watch);
    let ended = false;
    return {
      until: (change, timeoutMs) =>
        new Promise<void>((resolve, reject) => {
          const check = () => {
            if (watch.changes.some((c) => c.includes(change))) return done(resolve);
            if (ended) done(() => reject(new DataplaneError('failed', `the trace reader ended before reporting ${change}`)));
          };
          const timer = setTimeout(() => done(() => reject(new DataplaneError('failed', `no ${JSON.stringify(change)} within ${timeoutMs} ms`))), timeoutMs);
          const done = (f: () => void) => {
            clearTimeout(timer);
            waiters.delete(check);
            f();
          };
          waiters.add(check);
          check();
        }),
      stop: async () => {
        ended = true;
        ns.watches.delete(watch);
        watch.wake();
        return watch.events;
      },
    };
  }

  async listeners(protocol: 'tcp' | 'udp', port: number): Promise<SocketListener[]> {
    return (this.ns().sockets.get(`${protocol} ${port}`) ?? []).map((l) => ({ ...l, processes: [...l.processes] }));
  }

  async routeGet(dst: string, opts: { from?: string; iif?: string } = {}): Promise<RouteLookup> {
    const ns = this.ns();
    const ip = tryParseIP(dst) ?? fail('invalid', `Error: any valid prefix is expected rather than "${dst}".`);
    if (opts.iif) ns.need(opts.iif);
    // The longest prefix that holds it (no policy routing here: one table).
    const routes = await this.routes();
    let best: { r: RouteInfo; bits: number } | undefined;
    for (const r of routes) {
      const p = r.dst === 'default' ? tryParsePrefix('0.0.0.0/0') : tryParsePrefix(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (p && p.ip.family === ip.family && contains(p, ip) && (!best || p.bits > best.bits)) best = { r, bits: p.bits };
    }
    if (!best) return fail('not-found', 'Network is unreachable');
    return { dst: best.r.dst, ...(best.r.gateway ? { gateway: best.r.gateway } : {}), ...(best.r.dev ? { dev: best.r.dev } : {}), type: 'unicast', table: 'main' };
  }

  async exec(argv: string[]): Promise<string> {
    this.ns();
    return fail('invalid', `the fake dataplane runs no processes (${argv[0]}): use the Linux dataplane`);
  }

  listen(): number {
    return fail('invalid', 'the fake dataplane has no sockets: use the Linux dataplane for traffic');
  }

  /** For tests: how many connections IPVS counts for a real server ("-t VIP:PORT -r RIP:PORT"), as open clients would leave it. */
  setIpvsConnections(realServer: string, n: number): void {
    this.ns().ipvs.open.set(realServer, n);
  }

  /** For tests: a conntrack entry, as traffic would leave it (the short form: a client whose address does not matter). */
  addConntrack(e: ConntrackFlow | ConntrackShort): void {
    const flow: ConntrackFlow =
      'original' in e
        ? structuredClone(e)
        : { protocol: e.protocol, original: { src: '0.0.0.0', dst: e.origDst, sport: 0, dport: e.origDstPort }, reply: { src: e.replySrc, dst: '0.0.0.0', sport: e.origDstPort, dport: 0 }, flags: [] };
    this.ns().conntrack.push(flow);
  }

  /** For tests: an IPVS connection entry. */
  addIpvsConnection(c: IpvsConnection): void {
    this.ns().ipvsConns.push({ ...c });
  }

  /** For tests: a socket listening here. */
  addListener(protocol: 'tcp' | 'udp', port: number, l: SocketListener): void {
    const ns = this.ns();
    ns.sockets.set(`${protocol} ${port}`, [...(ns.sockets.get(`${protocol} ${port}`) ?? []), l]);
  }

  /** For tests: trace events "the kernel" reports now, to the readers of their source. */
  emitTrace(source: TraceSource, events: TraceEvent[]): void {
    for (const w of this.ns().watches) if (w.source === source) w.events.push(...structuredClone(events));
  }
}

/** The additions of an nft script as `nft monitor` names them ("add table ip T", "add chain ip T C"). */
function nftChanges(script: string): string[] {
  const out: string[] = [];
  let table: string | undefined;
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    const block = /^table (\S+) (\S+) \{/.exec(line);
    if (block) {
      table = `${block[1]} ${block[2]}`;
      out.push(`add table ${table}`);
      continue;
    }
    const chain = /^chain (\S+) \{/.exec(line);
    if (chain && table) out.push(`add chain ${table} ${chain[1]}`);
    const cmd = /^add (table|chain) (\S+ \S+(?: \S+)?)/.exec(line);
    if (cmd) out.push(`add ${cmd[1]} ${cmd[2]}`);
    if (line === '}' && !raw.startsWith(' ') && !raw.startsWith('\t')) table = undefined;
  }
  return out;
}

export class FakeDataplane implements Dataplane {
  private readonly namespaces = new Map<string, FakeNamespace>([[OWN, new FakeNamespace(OWN)]]);
  private readonly locks = new Map<string, Promise<void>>();
  /** Which link kinds "the kernel" can make (this machine's has no dummy; a test may say otherwise). */
  linkKinds: Array<'bridge' | 'dummy'> = ['bridge', 'dummy'];
  /** Which iptables backends "the kernel" has (both, unless a test says otherwise). */
  iptablesBackends: IptablesBackend[] = ['legacy', 'nft'];

  /** A namespace's state (for the handles); a missing one is refused as the kernel refuses entering it. */
  namespace(path: string): FakeNamespace {
    return this.tryNamespace(path) ?? fail('not-found', `Cannot open network namespace "${path}": No such file or directory`);
  }

  tryNamespace(path: string): FakeNamespace | undefined {
    return this.namespaces.get(path);
  }

  at(path?: string): FakeNetnsHandle {
    return new FakeNetnsHandle(this, path);
  }

  async createNetns(name: string): Promise<Netns> {
    const path = this.netnsPath(name);
    if (this.namespaces.has(path)) fail('exists', `Cannot create namespace file "${path}": File exists`);
    this.namespaces.set(path, new FakeNamespace(path));
    return this.at(path);
  }

  async listNetns(prefix = ''): Promise<string[]> {
    return [...this.namespaces.keys()].filter((p) => p.startsWith(`${NETNS_DIR}/`)).map((p) => p.slice(NETNS_DIR.length + 1)).filter((n) => n.startsWith(prefix)).sort();
  }

  async deleteNetns(name: string): Promise<void> {
    const path = this.netnsPath(name);
    const ns = this.namespaces.get(path);
    if (!ns) return;
    // Its veths die with it, and their peers elsewhere with them.
    for (const l of [...ns.links.values()]) ns.removeLink(l.name);
    this.namespaces.delete(path);
  }

  netnsPath(name: string): string {
    return `${NETNS_DIR}/${name}`;
  }

  netnsState(path: string, hostNetns?: string): NetnsState {
    if (!this.namespaces.has(path)) return 'missing';
    return path === (hostNetns ?? OWN) ? 'own' : 'ok';
  }

  netnsPids(): number[] {
    return []; // the fake runs no processes
  }

  async lock(path: string): Promise<FileLock> {
    // One holder at a time per path, in arrival order.
    const before = this.locks.get(path) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const mine = before.then(() => held);
    this.locks.set(path, mine);
    await before;
    let done = false;
    return {
      release: () => {
        if (done) return;
        done = true;
        release();
        if (this.locks.get(path) === mine) this.locks.delete(path);
      },
    };
  }
}
