// The IPVS backend, for kernels that have IP_VS (this machine's has not: `up --proxy-mode
// ipvs` refuses before it gets here, so this adapter has not run on it). Each sync: the
// kube-ipvs0 dummy link and its addresses, kube-proxy's ipsets swapped in whole, the
// iptables rules in one restore, then only the difference of virtual and real servers
// through ipvsadm-restore. Every decision is in config.ts, tested as data.

import { run } from '../../dataplane/linux/exec.ts';
import { ipBatch } from '../../dataplane/linux/ip.ts';
import { iptablesRestore, iptablesSave, parseSave } from '../../dataplane/linux/iptables.ts';
import { setSysctls } from '../../dataplane/linux/sysctl.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildIpvsConfig, DUMMY_INTERFACE, ipsetSwapRestore, ipvsadmDiff, type IpvsOptions } from './config.ts';

const JUMPS: Array<[string, string]> = [
  ['PREROUTING', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['OUTPUT', '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
  ['POSTROUTING', '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'],
];

export class IpvsBackend implements ProxyBackend {
  readonly mode = 'ipvs';

  constructor(private readonly netns: string, private readonly opts: IpvsOptions) {}

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }> {
    const cfg = buildIpvsConfig(ports, this.opts);
    const netns = this.netns;
    await setSysctls(netns, cfg.sysctls);
    // The dummy link holds the VIPs so that the node accepts their traffic (left down, as kube-proxy leaves it).
    const links = await run(['ip', '-o', 'link', 'show'], { netns });
    if (!links.includes(` ${DUMMY_INTERFACE}:`)) await ipBatch([`link add ${DUMMY_INTERFACE} type dummy`], netns);
    const held = (JSON.parse(await run(['ip', '-j', 'addr', 'show', 'dev', DUMMY_INTERFACE], { netns })) as Array<{ addr_info: Array<{ local: string }> }>)[0]?.addr_info.map((a) => a.local) ?? [];
    const want = new Set(cfg.addresses);
    const addrCmds = [...cfg.addresses.filter((a) => !held.includes(a)).map((a) => `addr add ${a}/32 dev ${DUMMY_INTERFACE}`), ...held.filter((a) => !want.has(a)).map((a) => `addr del ${a}/32 dev ${DUMMY_INTERFACE}`)];
    if (addrCmds.length) await ipBatch(addrCmds, netns);
    await run(['ipset', 'restore', '-exist'], { netns, input: ipsetSwapRestore(cfg) });
    const nat = parseSave(await iptablesSave('nat', netns));
    const jumps = JUMPS.filter(([chain, rule]) => !nat.rules.includes(`-A ${chain} ${rule}`)).map(([chain, rule]) => `-I ${chain} 1 ${rule}`);
    await iptablesRestore(cfg.iptables.replace(/\nCOMMIT\n$/, `\n${jumps.map((j) => `${j}\n`).join('')}COMMIT\n`), netns);
    const diff = ipvsadmDiff(await run(['ipvsadm-save', '-n'], { netns }), cfg);
    if (diff.length) await run(['ipvsadm-restore'], { netns, input: `${diff.join('\n')}\n` });
    return { counts: { 'virtual-servers': cfg.virtualServers.length, 'real-servers': cfg.virtualServers.reduce((n, v) => n + v.realServers.length, 0) }, partial: diff.length > 0 };
  }

  async intact(): Promise<boolean> {
    const sets = await run(['ipset', 'list', '-n'], { netns: this.netns }).catch(() => '');
    return sets.split('\n').includes('KUBE-CLUSTER-IP');
  }
}
