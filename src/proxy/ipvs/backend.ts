// The IPVS backend, for kernels that have IP_VS (this machine's has not: run it in a cluster
// of its own kernel, `up --kernel uml`). A full sync (the first, after a failure, or when
// the kernel lost the rules) sets the sysctls, makes kube-ipvs0, swaps kube-proxy's ipsets in
// whole, loads the iptables rules (the same whatever the Services: the ipsets carry them) and
// reads the virtual servers from the kernel; later syncs change only the difference from what
// the last one left — VIPs on kube-ipvs0, ipset entries, virtual and real servers — as
// kube-proxy's own sync does. Every decision is in config.ts, tested as data.

import { parseSave } from '../../dataplane/iptables-text.ts';
import type { IptablesBackend, Netns, NetOp } from '../../dataplane/port.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { applyIpvsLines, buildIpvsConfig, desiredIpvs, DUMMY_INTERFACE, ipsetDiff, ipsetSwapRestore, ipvsadmDiff, parseIpvsSave, removedRealServers, type IpvsConfig, type IpvsOptions, type IpvsState, type PortPart } from './config.ts';

/** How often real servers being drained are checked for connections left. */
const DRAIN_CHECK_MS = 2_000;

const JUMPS: Array<[string, string]> = [
  ['PREROUTING', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['OUTPUT', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['POSTROUTING', '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'],
];

/** What the last sync left in the kernel. */
interface Applied {
  addresses: Set<string>;
  sets: Map<string, Set<string>>;
  ipvs: IpvsState;
}

export class IpvsBackend implements ProxyBackend {
  readonly mode = 'ipvs';
  /** undefined: the next sync is a full one. */
  private applied: Applied | undefined;
  private readonly memo = new WeakMap<ServicePortInfo, PortPart>();

  /** `iptables`: which iptables the node's other rules use (legacy where nf_tables lacks the ip family, as in UML). */
  constructor(private readonly netns: Netns, private readonly opts: IpvsOptions, private readonly iptables?: IptablesBackend) {}

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean; recheckMs?: number }> {
    const cfg = buildIpvsConfig(ports, this.opts, this.memo);
    const partial = this.applied !== undefined;
    const was = this.applied ?? (await this.fullSyncBase(cfg));
    this.applied = undefined; // until this sync is through: a failure makes the next one full
    const netns = this.netns;

    const want = new Set(cfg.addresses);
    const addrOps: NetOp[] = [
      ...cfg.addresses.filter((a) => !was.addresses.has(a)).map((a): NetOp => ({ op: 'addr-add', dev: DUMMY_INTERFACE, address: `${a}/32` })),
      ...[...was.addresses].filter((a) => !want.has(a)).map((a): NetOp => ({ op: 'addr-del', dev: DUMMY_INTERFACE, address: `${a}/32` })),
    ];
    if (addrOps.length) await netns.apply(addrOps);
    const setChanges = ipsetDiff(was.sets, cfg);
    if (setChanges) await netns.ipsetRestore(setChanges);

    const wanted = desiredIpvs(cfg);
    // Connections are counted only when a real server goes (one more ipvsadm call).
    const removed = removedRealServers(was.ipvs, wanted);
    const connections = removed.length ? await netns.ipvsConnections([...new Set(removed.map((r) => r.slice(0, r.indexOf(' -r '))))]) : new Map<string, number>();
    const diff = ipvsadmDiff(was.ipvs, wanted, connections);
    await netns.ipvsRestore(diff);

    this.applied = { addresses: want, sets: new Map([...cfg.ipsets].map(([name, s]) => [name, new Set(s.entries)])), ipvs: applyIpvsLines(was.ipvs, diff) };
    this.virtualServers = wanted.vs.size;
    const draining = removed.filter((r) => r.startsWith('-t ') && connections.get(r)).length;
    return {
      counts: { 'virtual-servers': wanted.vs.size, 'real-servers': wanted.rs.size, 'real-servers-draining': draining },
      partial,
      // Drained real servers are looked at again (kube-proxy: every minute) and deleted once idle.
      ...(draining ? { recheckMs: DRAIN_CHECK_MS } : {}),
    };
  }

  /** A full sync's first part: sysctls, kube-ipvs0, the ipsets swapped in whole, the iptables rules; and what the kernel holds. */
  private async fullSyncBase(cfg: IpvsConfig): Promise<Applied> {
    const netns = this.netns;
    await netns.setSysctls(cfg.sysctls);
    // The dummy link holds the VIPs so that the node accepts their traffic (left down, as kube-proxy leaves it).
    const dummy = (await netns.link(DUMMY_INTERFACE)) ?? (await netns.apply([{ op: 'link-add', name: DUMMY_INTERFACE, kind: 'dummy' }], { show: DUMMY_INTERFACE }));
    await netns.ipsetRestore(ipsetSwapRestore(cfg));
    const nat = parseSave(await netns.iptablesSave('nat', 4, this.iptables));
    const jumps = JUMPS.filter(([chain, rule]) => !nat.rules.includes(`-A ${chain} ${rule}`)).map(([chain, rule]) => `-I ${chain} 1 ${rule}`);
    await netns.iptablesRestore(cfg.iptables.replace(/\nCOMMIT\n$/, `\n${jumps.map((j) => `${j}\n`).join('')}COMMIT\n`), 4, this.iptables);
    return {
      addresses: new Set((dummy?.addr_info ?? []).map((a) => a.local)),
      sets: new Map([...cfg.ipsets].map(([name, s]) => [name, new Set(s.entries)])),
      ipvs: parseIpvsSave(await netns.ipvsSave()),
    };
  }

  /** Virtual servers the last sync left (0: none to miss). */
  private virtualServers = 0;

  /** kube-proxy's ipsets are there, and so are the virtual servers (`ipvsadm -C` takes them all); if not, the next sync is a full one. */
  async intact(): Promise<boolean> {
    const sets = await this.netns.ipsetNames().catch((): string[] => []);
    const ok = sets.includes('KUBE-CLUSTER-IP') && (this.virtualServers === 0 || /^-A /m.test(await this.netns.ipvsSave().catch(() => '')));
    if (!ok) this.applied = undefined;
    return ok;
  }
}
