// The dataplane port: everything kubewire asks of a host's networking, in one interface.
// Components (CNI plugins, the sandbox manager, node agents, the cluster topology, service
// proxies) are given a Dataplane and never reach the kernel otherwise. Two implementations:
// linux/ (the real kernel: batched iproute2, iptables-restore and nft transactions, the
// native helper) and fake/ (state kept in memory that refuses what the kernel refuses), held
// to the same behaviour by one contract suite (test/dataplane-contract.test.ts).
//
// Namespaces are named by path (as CNI_NETNS is); a handle for one is `at(path)`. Changes to
// links, addresses, routes and neighbours are data (NetOp), applied in order as one batch
// that stops at the first failure, as `ip -batch` does. Netfilter changes are transactions in
// the tools' own text formats (iptables-restore, nft -f), which are what kube-proxy writes
// and what users read, and which the kernel applies whole or not at all.

import type { ConntrackFlow, IpvsConnection, IptablesTableState, NftListFamily, NftTableState, RouteLookup, SocketListener } from './observations.ts';
import type { TraceEvent } from './trace-events.ts';

export type * from './observations.ts';
export type { PacketHeader, TraceEvent } from './trace-events.ts';

/** A link as `ip -json -details addr show` describes it (the fields kubewire reads). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  link?: string;
  /** A veth's peer ifindex (in link_netnsid's namespace when that is set). */
  link_index?: number;
  link_netnsid?: number;
  flags: string[];
  mtu: number;
  operstate: string;
  address: string;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_data?: Record<string, unknown>; info_slave_data?: Record<string, unknown> };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

/** A route as `ip -json route show` describes it. */
export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
}

/** A neighbour (ARP/NDP) entry as `ip -json neigh show` describes it. */
export interface NeighbourInfo {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

/** What `ip address`, `ip -4 route` and `ip neigh` show of one namespace. */
export interface Addressing {
  links: LinkInfo[];
  routes: RouteInfo[];
  neighbours: NeighbourInfo[];
}

/** A bridge forwarding database entry as `bridge -json fdb show` describes it. */
export interface FdbEntry {
  mac: string;
  ifname: string;
  /** A VXLAN device's entry: the remote VTEP's address. */
  dst?: string;
  master?: string;
  state?: string;
  flags?: string[];
  vlan?: number;
}

/** One change to a namespace's links, addresses, routes or neighbours. Addresses are CIDR text ("10.0.0.1/24"). */
export type NetOp =
  | { op: 'link-add'; name: string; kind: 'bridge' | 'dummy'; mtu?: number; mac?: string }
  /** A VXLAN device (VNI `id`, UDP `port`) whose tunnels leave from `local` on `dev`; `learning` off: its FDB is only what is set. */
  | { op: 'vxlan-add'; name: string; id: number; port: number; local: string; dev: string; learning: boolean; mtu?: number; mac?: string }
  /** A veth pair: `name` here, `peer` in `peerNetns` (a path; here when absent). */
  | { op: 'veth-add'; name: string; peer: string; peerNetns?: string; mtu?: number; mac?: string; peerMac?: string }
  /**
   * Bridge ports: `proxyArp`, the bridge answers ARP requests from this port out of its own
   * neighbour entries and floods nothing to it; `learning` off, the FDB holds only what is set.
   */
  | { op: 'link-set'; name: string; master?: string; alias?: string; hairpin?: boolean; proxyArp?: boolean; learning?: boolean; promisc?: boolean; up?: boolean }
  | { op: 'link-del'; name: string }
  | { op: 'addr-add'; dev: string; address: string; replace?: boolean }
  | { op: 'addr-del'; dev: string; address: string }
  /** `onlink`: the gateway is taken as reachable on `dev` without a route to it (a VXLAN peer's address). */
  /** `scope` link or host instead of the kernel's choice; `src`: the source address for traffic the route carries. */
  | { op: 'route-add'; dst: string; via?: string; dev?: string; replace?: boolean; onlink?: boolean; scope?: 'link' | 'host'; src?: string }
  /** With `dev`: the route through that device (the kernel's own prefix route of an address, too). */
  | { op: 'route-del'; dst: string; dev?: string }
  | { op: 'neigh-replace'; dev: string; ip: string; mac: string }
  | { op: 'neigh-del'; dev: string; ip: string }
  /** A static forwarding entry: on a bridge port (the bridge's FDB), or with `dst` on a VXLAN device (its remote VTEP). */
  | { op: 'fdb-replace'; dev: string; mac: string; dst?: string }
  | { op: 'fdb-del'; dev: string; mac: string; dst?: string }
  /** A device's receive offload: GRO on makes a veth merge what it receives, as a NIC does. */
  | { op: 'offload'; dev: string; gro: boolean };

export type IptablesTable = 'nat' | 'filter' | 'mangle' | 'raw';
/** 4: iptables, 6: ip6tables. */
export type IPFamily = 4 | 6;
/**
 * Which of the kernel's two iptables: the x_tables one (`legacy`) or the nf_tables one
 * (`nft`); undefined: whichever `iptables` is on this host (Debian's alternatives: nft).
 * At kube-proxy's scale they differ: loading 2,000 Services x 10 endpoints takes about 1.3 s
 * through legacy and 31 s through nft, whose restore grows with the square of the rules.
 */
export type IptablesBackend = 'legacy' | 'nft';
/** nftables families kubewire writes: ip (the proxy), inet (NetworkPolicy, both IP families). */
export type NftFamily = 'ip' | 'inet';

/** Which conntrack entries to delete: by protocol, original destination (address, port), reply source, mark (each one given must match). */
export interface ConntrackFilter {
  protocol?: 'udp' | 'tcp';
  origDst?: string;
  origDstPort?: number;
  replySrc?: string;
  /** A mark (0x6b770001) or mark/mask, as `conntrack --mark` takes it. */
  mark?: string;
}

/** Where the kernel reports traced packets: nf_tables' trace (`nft monitor`), or x_tables' TRACE lines logged to nflog group 0. */
export type TraceSource = 'nft' | 'nflog';

/** A running reader of trace events (Netns.traceEvents): what it has seen, and its end. */
export interface TraceWatch {
  /**
   * nft only: resolves once it has reported the ruleset change `change` ("add table ip T",
   * "add chain ip T C"), which says it sees everything the kernel queued before; rejects after
   * `timeoutMs` or when it ends first.
   */
  until(change: string, timeoutMs: number): Promise<void>;
  /** Ends it and resolves with every trace event it read, in the kernel's order. */
  stop(): Promise<TraceEvent[]>;
}

export type NetnsState = 'ok' | 'missing' | 'not-a-netns' | 'own';

/** Why an operation failed, as the kernel says it (errno), whatever the implementation. */
export type DataplaneErrorCode = 'exists' | 'not-found' | 'busy' | 'invalid' | 'failed';

export class DataplaneError extends Error {
  override name = 'DataplaneError';
  constructor(
    readonly code: DataplaneErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Whether an error says what was asked for does not exist (a link, a chain, a namespace). */
export function isNotFound(e: unknown): boolean {
  return e instanceof DataplaneError && e.code === 'not-found';
}

/** Whether an error says what was to be made exists already. */
export function isExists(e: unknown): boolean {
  return e instanceof DataplaneError && e.code === 'exists';
}

export interface FileLock {
  release(): void;
}

export interface ApplyOptions {
  sysctls?: Record<string, string>;
  show?: string;
}

/** One network namespace. */
export interface Netns {
  /** Its path; undefined: the namespace of the process that holds the handle. */
  readonly path: string | undefined;

  /**
   * Applies `ops` in order in one batch, stopping at the first failure (what ran stays).
   * `sysctls` are set first (keys that do not exist skipped); with `show`, returns that link
   * as it is afterwards.
   */
  apply(ops: NetOp[], opts?: ApplyOptions): Promise<LinkInfo | undefined>;
  /** Sets sysctls (keys are paths under /proc/sys; a key that does not exist is skipped). */
  setSysctls(values: Record<string, string>): Promise<void>;
  /** A sysctl's value; undefined when the key does not exist. */
  sysctl(key: string): Promise<string | undefined>;

  /** A link with its addresses and details; undefined when it does not exist. */
  link(name: string): Promise<LinkInfo | undefined>;
  /** Every link (those enslaved to `master` only, when given). */
  links(master?: string): Promise<LinkInfo[]>;
  /** Whether a link is operationally up (IFF_RUNNING); a missing link is not. */
  linkRunning(name: string): Promise<boolean>;
  /** Routes of both families (those through `dev` only, when given). */
  routes(dev?: string): Promise<RouteInfo[]>;
  neighbours(dev?: string): Promise<NeighbourInfo[]>;
  /**
   * Every link with its addresses, the IPv4 routes and the neighbours, read together: one
   * process on Linux, where a look at a namespace would otherwise start three (and a start
   * costs a great deal in a user-mode Linux kernel).
   */
  addressing(): Promise<Addressing>;
  fdb(bridge: string): Promise<FdbEntry[]>;
  /** The forwarding entries of one device (a VXLAN device's remote VTEPs, with their dst). */
  deviceFdb(dev: string): Promise<FdbEntry[]>;

  /** `iptables-save -t TABLE`. */
  iptablesSave(table: IptablesTable, family?: IPFamily, backend?: IptablesBackend): Promise<string>;
  /** `iptables-restore --noflush`: the tables named in `script` change whole or not at all. */
  iptablesRestore(script: string, family?: IPFamily, backend?: IptablesBackend): Promise<void>;
  /** Whether `chain` of `table` holds the rule (`iptables -C`). */
  iptablesHasRule(table: IptablesTable, chain: string, rule: string[], family?: IPFamily, backend?: IptablesBackend): Promise<boolean>;
  /** Whether this backend's iptables works here (a kernel without x_tables refuses legacy). */
  iptablesUsable(backend: IptablesBackend): Promise<boolean>;

  /** `nft -f -`: one transaction. */
  nft(script: string): Promise<void>;
  /** `nft list table FAMILY NAME` (ip unless said); undefined when there is no such table. */
  nftTable(name: string, family?: NftFamily): Promise<string | undefined>;
  /** The names of one family's tables (`nft list tables ip`, unless said). */
  nftTables(family?: NftFamily): Promise<string[]>;

  /** `ipset restore -exist`: creates, adds, swaps, destroys (ipset's restore format). */
  ipsetRestore(script: string): Promise<void>;
  /** The names of the sets (`ipset list -n`). */
  ipsetNames(): Promise<string[]>;
  /** `ipvsadm-save -n`: the virtual and real servers, one `-A`/`-a` line each. */
  ipvsSave(): Promise<string>;
  /** `ipvsadm -R`: `-A/-E/-D` virtual and `-a/-e/-d` real server lines applied in order to what the kernel holds. */
  ipvsRestore(lines: string[]): Promise<void>;
  /**
   * Connections per real server (active + inactive, as `ipvsadm -Ln` counts them), keyed
   * "-t VIP:PORT -r RIP:PORT" as in the save format; of these virtual servers ("-t VIP:PORT"), or all.
   */
  ipvsConnections(services?: string[]): Promise<Map<string, number>>;

  /** Deletes matching conntrack entries; returns how many went (Linux: 1 when any went, 0 when none matched). */
  conntrackDelete(filter: ConntrackFilter): Promise<number>;
  /** The conntrack entries (with `mark`, those whose mark matches: "0x6b770001" or "0x6b770000/0xffff0000"). */
  conntrackList(filter?: { mark?: string }): Promise<ConntrackFlow[]>;
  /** IPVS's connection entries (`ipvsadm -Lnc`): which real server each client's connection went to. */
  ipvsConnectionList(): Promise<IpvsConnection[]>;

  /** Every table of every family (or of `family`), with chains, rules (handles, counters, comments), sets and named counters. */
  nftRuleset(family?: NftListFamily): Promise<NftTableState[]>;
  /** One table, as nftRuleset gives it; undefined when there is no such table. */
  nftTableState(name: string, family: NftListFamily): Promise<NftTableState | undefined>;
  /** iptables' tables (those named that exist, or all), in the order named, with rules, counters and comments, in one read. */
  iptablesRules(tables?: IptablesTable[], family?: IPFamily, backend?: IptablesBackend): Promise<IptablesTableState[]>;
  /** Starts reading the kernel's trace events of packets marked for tracing (resolves once it reads). */
  traceEvents(source: TraceSource): Promise<TraceWatch>;

  /** The sockets listening on `port` (tcp) or bound to it (udp), with the processes holding them. */
  listeners(protocol: 'tcp' | 'udp', port: number): Promise<SocketListener[]>;
  /** The route the kernel would take to `dst` (from a source, arriving on a device); rejects (a DataplaneError in the kernel's words) when none. */
  routeGet(dst: string, opts?: { from?: string; iif?: string }): Promise<RouteLookup>;

  /**
   * Runs a command inside this namespace to its end; resolves with its stdout, rejects (a
   * DataplaneError) when it fails. Only for what a user asks to run (a probe, an exec probe,
   * `kubewire exec`): kubewire's own reads of the kernel are the typed operations above.
   */
  exec(argv: string[], input?: string): Promise<string>;

  /** A listening socket inside this namespace (a file descriptor to hand to net.Server). */
  listen(protocol: 'tcp' | 'udp', port: number, backlog: number, address?: string): number;
}

/** The host: its network namespaces, and locks shared with the CNI plugins' own. */
export interface Dataplane {
  /** A handle on the namespace at `path` (the caller's own when undefined); nothing is checked until it is used. */
  at(path?: string): Netns;

  /** Creates the named namespace (`ip netns add NAME`); refuses one that exists. */
  createNetns(name: string): Promise<Netns>;
  /** The named namespaces (`ip netns list`), those starting with `prefix` when given. */
  listNetns(prefix?: string): Promise<string[]>;
  /** Removes the named namespace, after killing what runs in it unless `leaveProcesses`; a missing one is not an error. */
  deleteNetns(name: string, opts?: { leaveProcesses?: boolean }): Promise<void>;
  /** The path of the named namespace. */
  netnsPath(name: string): string;
  /** Whether `path` is a network namespace other than the host's own (`hostNetns`, or the caller's). */
  netnsState(path: string, hostNetns?: string): NetnsState;
  /** The processes inside the namespace at `path`. */
  netnsPids(path: string): number[];

  /** An advisory lock on a file (flock(2), as the Go plugins take theirs). */
  lock(path: string, mode?: 'exclusive' | 'shared'): Promise<FileLock>;
}

/** Where `ip netns` keeps named namespaces (their bind mounts), in either implementation. */
export const NETNS_DIR = '/var/run/netns';

/** The path of the named namespace NAME (what `ip netns add NAME` creates). */
export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Runs `fn` holding the lock on `path`. */
export async function withLock<T>(dp: Dataplane, path: string, fn: () => Promise<T> | T): Promise<T> {
  const lock = await dp.lock(path);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
