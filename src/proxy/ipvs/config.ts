// kube-proxy's IPVS mode as data (pure): what a node would hold for a set of Service ports —
// the VIPs on the dummy interface kube-ipvs0, a virtual server per (IP, protocol, port) with
// a real server per endpoint, the ipsets that keep the iptables rule count constant, those
// iptables rules, and the sysctls — rendered in the formats of the tools that load them
// (`ipvsadm-restore`, `ipset restore`, `iptables-restore`). This kernel has no IP_VS, so
// here it is generated and checked as data (and the ipsets and iptables rules, which need no
// IPVS, are loaded for real by the tests).

import { categorize, servicePortName, type ServicePortInfo } from '../model.ts';

export const DUMMY_INTERFACE = 'kube-ipvs0';

export interface RealServer {
  address: string;
  port: number;
  weight: number;
}

export interface VirtualServer {
  /** ns/name:port, and which address of it: "cluster IP", "external IP", "node port". */
  service: string;
  kind: 'cluster IP' | 'external IP' | 'node port';
  address: string;
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  scheduler: string;
  /** ClientIP affinity: IPVS persistence, in seconds. */
  persistence?: number;
  realServers: RealServer[];
}

export interface IpSet {
  type: string;
  comment: string;
  entries: string[];
}

export interface IpvsConfig {
  /** Addresses bound to kube-ipvs0 (ClusterIPs and external IPs) so that the node accepts them. */
  addresses: string[];
  virtualServers: VirtualServer[];
  ipsets: Map<string, IpSet>;
  iptables: string;
  sysctls: Record<string, string>;
}

export interface IpvsOptions {
  clusterCIDR: string;
  /** The node's own addresses: a NodePort is a virtual server on each. */
  nodeIPs: string[];
  scheduler?: string;
  masqueradeBit?: number;
  /** kube-proxy's --ipvs-strict-arp: the node does not answer ARP for the VIPs it holds on kube-ipvs0. */
  strictARP?: boolean;
}

/** kube-proxy's ipset names and types (pkg/proxy/ipvs/ipset.go). */
/**
 * The hash sets' cap. kube-proxy keeps ipset's default, 65536, which KUBE-LOOP-BACK (an entry per
 * endpoint) passes at 6,554 Services × 10 endpoints ("Hash is full", kubernetes#129389); a cap
 * costs nothing until used (the hash grows with its entries), so kubewire's is 2^20.
 */
const MAXELEM = 1 << 20;

const createSet = (name: string, type: string) => `create ${name} ${type}${type.startsWith('bitmap') ? ' range 0-65535' : ` family inet hashsize 1024 maxelem ${MAXELEM}`}`;

const SETS: Array<[string, string, string]> = [
  ['KUBE-LOOP-BACK', 'hash:ip,port,ip', 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose'],
  ['KUBE-CLUSTER-IP', 'hash:ip,port', 'Kubernetes service cluster ip + port for masquerade purpose'],
  ['KUBE-EXTERNAL-IP', 'hash:ip,port', 'Kubernetes service external ip + port for masquerade and filter purpose'],
  ['KUBE-EXTERNAL-IP-LOCAL', 'hash:ip,port', 'Kubernetes service external ip + port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port with externalTrafficPolicy=local'],
];

/** What one Service port adds to the node's IPVS configuration. */
export interface PortPart {
  addresses: string[];
  virtualServers: VirtualServer[];
  /** [set, entry] pairs. */
  entries: Array<[string, string]>;
}

/** One Service port's virtual servers, VIPs and ipset entries (pure). */
export function portPart(sp: ServicePortInfo, o: IpvsOptions): PortPart {
  const part: PortPart = { addresses: [], virtualServers: [], entries: [] };
  const { cluster, local } = categorize(sp);
  const name = servicePortName(sp);
  const proto = sp.protocol;
  const vs = (kind: VirtualServer['kind'], address: string, port: number, eps: typeof cluster) =>
    part.virtualServers.push({
      service: name,
      kind,
      address,
      port,
      protocol: proto,
      scheduler: o.scheduler ?? 'rr',
      ...(sp.affinitySeconds !== undefined ? { persistence: sp.affinitySeconds } : {}),
      realServers: eps.map((e) => ({ address: e.ip, port: e.port, weight: 1 })),
    });
  for (const e of cluster) part.entries.push(['KUBE-LOOP-BACK', `${e.ip},${proto}:${e.port},${e.ip}`]);
  if (sp.clusterIP) {
    part.addresses.push(sp.clusterIP);
    part.entries.push(['KUBE-CLUSTER-IP', `${sp.clusterIP},${proto}:${sp.port}`]);
    vs('cluster IP', sp.clusterIP, sp.port, sp.internalLocal ? local : cluster);
  }
  for (const ip of sp.externalIPs) {
    part.addresses.push(ip);
    part.entries.push([sp.externalLocal ? 'KUBE-EXTERNAL-IP-LOCAL' : 'KUBE-EXTERNAL-IP', `${ip},${proto}:${sp.port}`]);
    vs('external IP', ip, sp.port, sp.externalLocal ? local : cluster);
  }
  if (sp.nodePort && (proto === 'tcp' || proto === 'udp')) {
    const p = proto.toUpperCase();
    part.entries.push([`KUBE-NODE-PORT-${p}`, String(sp.nodePort)]);
    if (sp.externalLocal) part.entries.push([`KUBE-NODE-PORT-LOCAL-${p}`, String(sp.nodePort)]);
    for (const ip of o.nodeIPs) vs('node port', ip, sp.nodePort, sp.externalLocal ? local : cluster);
  }
  return part;
}

/**
 * The node's whole IPVS configuration for `ports` (pure). `memo` keeps each Service port's
 * part by object: the proxier hands unchanged Services over as the same objects, so a sync
 * after one change computes one part.
 */
export function buildIpvsConfig(ports: ServicePortInfo[], o: IpvsOptions, memo?: WeakMap<ServicePortInfo, PortPart>): IpvsConfig {
  const sets = new Map<string, IpSet>(SETS.map(([name, type, comment]) => [name, { type, comment, entries: [] }]));
  const seen = new Map<string, Set<string>>(SETS.map(([name]) => [name, new Set<string>()]));
  const addresses = new Set<string>();
  const virtualServers: VirtualServer[] = [];
  for (const sp of ports) {
    let part = memo?.get(sp);
    if (!part) {
      part = portPart(sp, o);
      memo?.set(sp, part);
    }
    for (const a of part.addresses) addresses.add(a);
    for (const v of part.virtualServers) virtualServers.push(v);
    for (const [set, entry] of part.entries) {
      if (seen.get(set)!.has(entry)) continue;
      seen.get(set)!.add(entry);
      sets.get(set)!.entries.push(entry);
    }
  }
  const mark = `0x${(1 << (o.masqueradeBit ?? 14)).toString(16)}`;
  const c = (text: string) => `-m comment --comment "${text}"`;
  const iptables = [
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-NODE-PORT - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    `-A KUBE-SERVICES ${c('Kubernetes service cluster ip + port for masquerade purpose')} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s ${o.clusterCIDR} -j KUBE-MARK-MASQ`,
    `-A KUBE-SERVICES ${c('Kubernetes service external ip + port for masquerade and filter purpose')} -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ`,
    `-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT`,
    `-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT`,
    `-A KUBE-SERVICES -m set --match-set KUBE-EXTERNAL-IP dst,dst -j ACCEPT`,
    `-A KUBE-NODE-PORT -p tcp ${c('Kubernetes nodeport TCP port with externalTrafficPolicy=local')} -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN`,
    `-A KUBE-NODE-PORT -p tcp ${c('Kubernetes nodeport TCP port for masquerade purpose')} -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ`,
    `-A KUBE-NODE-PORT -p udp ${c('Kubernetes nodeport UDP port with externalTrafficPolicy=local')} -m set --match-set KUBE-NODE-PORT-LOCAL-UDP dst -j RETURN`,
    `-A KUBE-NODE-PORT -p udp ${c('Kubernetes nodeport UDP port for masquerade purpose')} -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ`,
    `-A KUBE-POSTROUTING ${c('Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose')} -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`,
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    `-A KUBE-POSTROUTING ${c('kubernetes service traffic requiring SNAT')} -j MASQUERADE`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`,
    'COMMIT',
    '',
  ].join('\n');
  return {
    addresses: [...addresses],
    virtualServers,
    ipsets: sets,
    iptables,
    sysctls: {
      'net/ipv4/vs/conntrack': '1',
      'net/ipv4/vs/expire_nodest_conn': '1',
      'net/ipv4/vs/expire_quiescent_template': '1',
      'net/ipv4/ip_forward': '1',
      ...(o.strictARP ? { 'net/ipv4/conf/all/arp_ignore': '1', 'net/ipv4/conf/all/arp_announce': '2' } : {}),
    },
  };
}

const FLAG: Record<VirtualServer['protocol'], string> = { tcp: '-t', udp: '-u', sctp: '--sctp-service' };

/** The virtual servers in `ipvsadm-save -n` form (what `ipvsadm-restore` reads). */
export function ipvsadmRules(cfg: IpvsConfig): string {
  const out: string[] = [];
  for (const v of cfg.virtualServers) {
    const svc = `${FLAG[v.protocol]} ${v.address}:${v.port}`;
    out.push(`-A ${svc} -s ${v.scheduler}${v.persistence !== undefined ? ` -p ${v.persistence}` : ''}`);
    for (const r of v.realServers) out.push(`-a ${svc} -r ${r.address}:${r.port} -m -w ${r.weight}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** The ipsets in `ipset save` form (what `ipset restore -exist` reads). */
export function ipsetRestore(cfg: IpvsConfig): string {
  const out: string[] = [];
  for (const [name, s] of cfg.ipsets) {
    out.push(createSet(name, s.type));
    for (const e of s.entries) out.push(`add ${name} ${e}`);
  }
  return `${out.join('\n')}\n`;
}

/** Virtual servers ("-t VIP:PORT" → "-s rr -p 600") and real servers ("-t VIP:PORT -r RIP:PORT" → "-m -w 1"), as ipvsadm-save words them. */
export interface IpvsState {
  vs: Map<string, string>;
  rs: Map<string, string>;
}

const SAVE_LINE = /^-([AEDaed]) (-[tu]|--sctp-service) (\S+)(?: -r (\S+))? ?(.*)$/;

/** `ipvsadm-save -n` as an IpvsState (pure). */
export function parseIpvsSave(text: string): IpvsState {
  return applyIpvsLines({ vs: new Map(), rs: new Map() }, text.split('\n'));
}

/**
 * `lines` (ipvsadm -R's commands) applied to `state`, as the kernel applies them (pure but for
 * `state`, which it changes and returns): what the backend knows the kernel holds after a restore.
 */
export function applyIpvsLines(state: IpvsState, lines: string[]): IpvsState {
  const deleted = new Set<string>();
  for (const line of lines) {
    const m = SAVE_LINE.exec(line.trim());
    if (!m) continue;
    const [, verb, proto, addr, real, flags] = m;
    const svc = `${proto} ${addr}`;
    if (verb === 'A' || verb === 'E') state.vs.set(svc, flags!.trim());
    else if (verb === 'D') {
      state.vs.delete(svc);
      deleted.add(svc);
    } else if (verb === 'a' || verb === 'e') state.rs.set(`${svc} -r ${real}`, flags!.trim());
    else state.rs.delete(`${svc} -r ${real}`);
  }
  // A deleted virtual server takes its real servers along (one pass for all of them).
  if (deleted.size) for (const key of state.rs.keys()) if (deleted.has(key.slice(0, key.indexOf(' -r '))) && !state.vs.has(key.slice(0, key.indexOf(' -r ')))) state.rs.delete(key);
  return state;
}

/** What `cfg` wants IPVS to hold (pure). */
export function desiredIpvs(cfg: IpvsConfig): IpvsState {
  const state: IpvsState = { vs: new Map(), rs: new Map() };
  for (const v of cfg.virtualServers) {
    const svc = `${FLAG[v.protocol]} ${v.address}:${v.port}`;
    state.vs.set(svc, `-s ${v.scheduler}${v.persistence !== undefined ? ` -p ${v.persistence}` : ''}`);
    for (const r of v.realServers) state.rs.set(`${svc} -r ${r.address}:${r.port}`, `-m -w ${r.weight}`);
  }
  return state;
}

/** The real servers that `want` no longer has, of virtual servers it keeps ("-t VIP:PORT -r RIP:PORT") (pure). */
export function removedRealServers(have: IpvsState, want: IpvsState): string[] {
  return [...have.rs.keys()].filter((real) => !want.rs.has(real) && want.vs.has(real.slice(0, real.indexOf(' -r '))));
}

/**
 * The ipvsadm -R commands that turn what the kernel holds (`have`) into `want` (pure): new
 * virtual servers added, changed ones edited, real servers added, edited and deleted, stale
 * virtual servers deleted last. Connections to servers that stay are not disturbed, as
 * kube-proxy's own sync does. A TCP real server that goes while `connections` says it still
 * has some is drained as kube-proxy's graceful termination does: weight 0 (no new
 * connections), deleted by a later sync once they are gone.
 */
export function ipvsadmDiff(have: IpvsState, want: IpvsState, connections: Map<string, number> = new Map()): string[] {
  const out: string[] = [];
  for (const [svc, flags] of want.vs) {
    if (!have.vs.has(svc)) out.push(`-A ${svc} ${flags}`);
    else if (have.vs.get(svc) !== flags) out.push(`-E ${svc} ${flags}`);
  }
  for (const [real, flags] of want.rs) {
    if (!have.rs.has(real)) out.push(`-a ${real} ${flags}`);
    else if (have.rs.get(real) !== flags) out.push(`-e ${real} ${flags}`);
  }
  for (const [real, flags] of have.rs) {
    const svc = real.slice(0, real.indexOf(' -r '));
    if (want.rs.has(real) || !want.vs.has(svc)) continue;
    if (!svc.startsWith('-t ') || !connections.get(real)) out.push(`-d ${real}`);
    else if (!/ -w 0\b/.test(` ${flags}`)) out.push(`-e ${real} ${flags.replace(/-w \d+/, '-w 0')}`);
  }
  for (const svc of have.vs.keys()) if (!want.vs.has(svc)) out.push(`-D ${svc}`);
  return out;
}

/** The ipset restore lines (`add`/`del`) that turn the sets' entries `have` into `cfg`'s (pure). */
export function ipsetDiff(have: Map<string, Set<string>>, cfg: IpvsConfig): string {
  const out: string[] = [];
  for (const [name, s] of cfg.ipsets) {
    const had = have.get(name) ?? new Set<string>();
    const want = new Set(s.entries);
    for (const e of s.entries) if (!had.has(e)) out.push(`add ${name} ${e}`);
    for (const e of had) if (!want.has(e)) out.push(`del ${name} ${e}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** ipsets replaced atomically: each filled as a temporary set, then swapped in. */
export function ipsetSwapRestore(cfg: IpvsConfig): string {
  const out: string[] = [];
  for (const [name, s] of cfg.ipsets) {
    out.push(createSet(name, s.type), createSet(`${name}-TMP`, s.type), `flush ${name}-TMP`);
    for (const e of s.entries) out.push(`add ${name}-TMP ${e}`);
    out.push(`swap ${name}-TMP ${name}`, `destroy ${name}-TMP`);
  }
  return `${out.join('\n')}\n`;
}
