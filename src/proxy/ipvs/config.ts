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

export function buildIpvsConfig(ports: ServicePortInfo[], o: IpvsOptions): IpvsConfig {
  const sets = new Map<string, IpSet>(SETS.map(([name, type, comment]) => [name, { type, comment, entries: [] }]));
  const add = (set: string, entry: string) => {
    const s = sets.get(set)!;
    if (!s.entries.includes(entry)) s.entries.push(entry);
  };
  const addresses = new Set<string>();
  const virtualServers: VirtualServer[] = [];
  for (const sp of ports) {
    const { cluster, local } = categorize(sp);
    const name = servicePortName(sp);
    const proto = sp.protocol;
    const real = (eps: typeof cluster): RealServer[] => eps.map((e) => ({ address: e.ip, port: e.port, weight: 1 }));
    const vs = (kind: VirtualServer['kind'], address: string, port: number, eps: typeof cluster): VirtualServer => ({
      service: name,
      kind,
      address,
      port,
      protocol: proto,
      scheduler: o.scheduler ?? 'rr',
      ...(sp.affinitySeconds !== undefined ? { persistence: sp.affinitySeconds } : {}),
      realServers: real(eps),
    });
    for (const e of cluster) add('KUBE-LOOP-BACK', `${e.ip},${proto}:${e.port},${e.ip}`);
    if (sp.clusterIP) {
      addresses.add(sp.clusterIP);
      add('KUBE-CLUSTER-IP', `${sp.clusterIP},${proto}:${sp.port}`);
      virtualServers.push(vs('cluster IP', sp.clusterIP, sp.port, sp.internalLocal ? local : cluster));
    }
    for (const ip of sp.externalIPs) {
      addresses.add(ip);
      add(sp.externalLocal ? 'KUBE-EXTERNAL-IP-LOCAL' : 'KUBE-EXTERNAL-IP', `${ip},${proto}:${sp.port}`);
      virtualServers.push(vs('external IP', ip, sp.port, sp.externalLocal ? local : cluster));
    }
    if (sp.nodePort && (proto === 'tcp' || proto === 'udp')) {
      const p = proto.toUpperCase();
      add(`KUBE-NODE-PORT-${p}`, String(sp.nodePort));
      if (sp.externalLocal) add(`KUBE-NODE-PORT-LOCAL-${p}`, String(sp.nodePort));
      for (const ip of o.nodeIPs) virtualServers.push(vs('node port', ip, sp.nodePort, sp.externalLocal ? local : cluster));
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
    out.push(`create ${name} ${s.type}${s.type.startsWith('bitmap') ? ' range 0-65535' : ' family inet hashsize 1024 maxelem 65536'}`);
    for (const e of s.entries) out.push(`add ${name} ${e}`);
  }
  return `${out.join('\n')}\n`;
}

/** The real servers that `cfg` no longer has, of virtual servers it keeps ("-t VIP:PORT -r RIP:PORT") (pure). */
export function removedRealServers(currentSave: string, cfg: IpvsConfig): string[] {
  const want = new Set(ipvsadmRules(cfg).split('\n').map((l) => l.replace(/^-[Aa] /, '').replace(/ -[sm].*$/, '')));
  return currentSave
    .split('\n')
    .filter((l) => l.startsWith('-a '))
    .map((l) => l.slice(3).replace(/ -[mgi] .*$/, ''))
    .filter((real) => !want.has(real) && want.has(real.split(' -r ')[0]!));
}

/**
 * The ipvsadm-restore commands that turn what the kernel holds (`ipvsadm-save -n`) into
 * `cfg` (pure): new virtual servers added, changed ones edited, real servers added, edited
 * and deleted, stale virtual servers deleted last. Connections to servers that stay are not
 * disturbed, as kube-proxy's own sync does. A TCP real server that goes while `connections`
 * says it still has some is drained as kube-proxy's graceful termination does: weight 0 (no
 * new connections), deleted by a later sync once they are gone.
 */
export function ipvsadmDiff(currentSave: string, cfg: IpvsConfig, connections: Map<string, number> = new Map()): string[] {
  const parse = (lines: string[]) => {
    const vs = new Map<string, string>(); // "-t 10.96.0.10:80" -> "-s rr -p 600"
    const rs = new Map<string, string>(); // "-t 10.96.0.10:80 -r 10.244.0.2:8080" -> "-m -w 1"
    for (const line of lines) {
      const m = line.trim().match(/^-(A|a) (-[tu]|--sctp-service) (\S+)(?: -r (\S+))? ?(.*)$/);
      if (!m) continue;
      if (m[1] === 'A') vs.set(`${m[2]} ${m[3]}`, m[5]!.trim());
      else rs.set(`${m[2]} ${m[3]} -r ${m[4]}`, m[5]!.trim());
    }
    return { vs, rs };
  };
  const have = parse(currentSave.split('\n'));
  const want = parse(ipvsadmRules(cfg).split('\n'));
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
    const svc = real.split(' -r ')[0]!;
    if (want.rs.has(real) || !want.vs.has(svc)) continue;
    if (!svc.startsWith('-t ') || !connections.get(real)) out.push(`-d ${real}`);
    else if (!/ -w 0\b/.test(` ${flags}`)) out.push(`-e ${real} ${flags.replace(/-w \d+/, '-w 0')}`);
  }
  for (const svc of have.vs.keys()) if (!want.vs.has(svc)) out.push(`-D ${svc}`);
  return out;
}

/** ipsets replaced atomically: each filled as a temporary set, then swapped in. */
export function ipsetSwapRestore(cfg: IpvsConfig): string {
  const out: string[] = [];
  for (const [name, s] of cfg.ipsets) {
    const create = (n: string) => `create ${n} ${s.type}${s.type.startsWith('bitmap') ? ' range 0-65535' : ' family inet hashsize 1024 maxelem 65536'}`;
    out.push(create(name), create(`${name}-TMP`), `flush ${name}-TMP`);
    for (const e of s.entries) out.push(`add ${name}-TMP ${e}`);
    out.push(`swap ${name}-TMP ${name}`, `destroy ${name}-TMP`);
  }
  return `${out.join('\n')}\n`;
}
