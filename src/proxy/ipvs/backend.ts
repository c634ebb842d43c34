// The IPVS backend, for kernels that have IP_VS (this machine's has not: `up --proxy-mode
// ipvs` refuses before it gets here, so this adapter has not run on it). Each sync: the
// kube-ipvs0 dummy link and its addresses, kube-proxy's ipsets swapped in whole, the
// iptables rules in one restore, then only the difference of virtual and real servers
// through ipvsadm-restore. Every decision is in config.ts, tested as data.

import { parseSave } from '../../dataplane/iptables-text.ts';
import type { IptablesBackend, Netns, NetOp } from '../../dataplane/port.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildIpvsConfig, DUMMY_INTERFACE, ipsetSwapRestore, ipvsadmDiff, removedRealServers, type IpvsOptions } from './config.ts';

/** How often real servers being drained are checked for connections left. */
const DRAIN_CHECK_MS = 2_000;

const JUMPS: Array<[string, string]> = [
  ['PREROUTING', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['OUTPUT', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['POSTROUTING', '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'],
];

export class IpvsBackend implements ProxyBackend {
  readonly mode = 'ipvs';

  /** `iptables`: which iptables the node's other rules use (legacy where nf_tables lacks the ip family, as in UML). */
  constructor(private readonly netns: Netns, private readonly opts: IpvsOptions, private readonly iptables?: IptablesBackend) {}

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean; recheckMs?: number }> {
    const cfg = buildIpvsConfig(ports, this.opts);
    const netns = this.netns;
    await netns.setSysctls(cfg.sysctls);
    // The dummy link holds the VIPs so that the node accepts their traffic (left down, as kube-proxy leaves it).
    const dummy = (await netns.link(DUMMY_INTERFACE)) ?? (await netns.apply([{ op: 'link-add', name: DUMMY_INTERFACE, kind: 'dummy' }], { show: DUMMY_INTERFACE }));
    const held = (dummy?.addr_info ?? []).map((a) => a.local);
    const want = new Set(cfg.addresses);
    const addrOps: NetOp[] = [
      ...cfg.addresses.filter((a) => !held.includes(a)).map((a): NetOp => ({ op: 'addr-add', dev: DUMMY_INTERFACE, address: `${a}/32` })),
      ...held.filter((a) => !want.has(a)).map((a): NetOp => ({ op: 'addr-del', dev: DUMMY_INTERFACE, address: `${a}/32` })),
    ];
    if (addrOps.length) await netns.apply(addrOps);
    await netns.ipsetRestore(ipsetSwapRestore(cfg));
    const nat = parseSave(await netns.iptablesSave('nat', 4, this.iptables));
    const jumps = JUMPS.filter(([chain, rule]) => !nat.rules.includes(`-A ${chain} ${rule}`)).map(([chain, rule]) => `-I ${chain} 1 ${rule}`);
    await netns.iptablesRestore(cfg.iptables.replace(/\nCOMMIT\n$/, `\n${jumps.map((j) => `${j}\n`).join('')}COMMIT\n`), 4, this.iptables);
    const save = await netns.ipvsSave();
    // Connections are counted only when a real server goes (one more ipvsadm call).
    const removed = removedRealServers(save, cfg);
    const connections = removed.length ? await netns.ipvsConnections() : new Map<string, number>();
    const diff = ipvsadmDiff(save, cfg, connections);
    await netns.ipvsRestore(diff);
    this.virtualServers = cfg.virtualServers.length;
    const draining = removed.filter((r) => r.startsWith('-t ') && connections.get(r)).length;
    return {
      counts: { 'virtual-servers': cfg.virtualServers.length, 'real-servers': cfg.virtualServers.reduce((n, v) => n + v.realServers.length, 0), 'real-servers-draining': draining },
      partial: diff.length > 0,
      // Drained real servers are looked at again (kube-proxy: every minute) and deleted once idle.
      ...(draining ? { recheckMs: DRAIN_CHECK_MS } : {}),
    };
  }

  /** Virtual servers the last sync left (0: none to miss). */
  private virtualServers = 0;

  /** kube-proxy's ipsets are there, and so are the virtual servers (`ipvsadm -C` takes them all). */
  async intact(): Promise<boolean> {
    const sets = await this.netns.ipsetNames().catch((): string[] => []);
    if (!sets.includes('KUBE-CLUSTER-IP')) return false;
    return this.virtualServers === 0 || /^-A /m.test(await this.netns.ipvsSave().catch(() => ''));
  }
}
