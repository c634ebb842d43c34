// portmap's iptables rules (nat table) as data, in the reference plugin's layout:
//   PREROUTING/OUTPUT -m addrtype --dst-type LOCAL -> CNI-HOSTPORT-DNAT
//   CNI-HOSTPORT-DNAT: per container, -m multiport --destination-ports ... -> CNI-DN-<hash>
//   CNI-DN-<hash>: hairpin and localhost sources -> CNI-HOSTPORT-SETMARK, then DNAT podIP:port
//   POSTROUTING -> CNI-HOSTPORT-MASQ: marked packets are masqueraded
// Pure: no I/O.

import { ruleChain, ruleTarget, type TableDump } from '../../../dataplane/iptables-text.ts';
import { formatPrefix, networkOf, parsePrefix } from '../../../netaddr/ip.ts';
import { attachmentComment, chainName, containerOfRule, quoteArg } from '../netfilter-names.ts';

export const DNAT_CHAIN = 'CNI-HOSTPORT-DNAT';
export const SETMARK_CHAIN = 'CNI-HOSTPORT-SETMARK';
export const MASQ_CHAIN = 'CNI-HOSTPORT-MASQ';
const MAX_PORTS_PER_RULE = 15; // multiport's limit

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface PortmapTarget {
  network: string;
  containerID: string;
  /** The pod's IPv4 address in CIDR notation (its subnet is the hairpin source). */
  podAddress: string;
  mappings: PortMapping[];
  markMasqBit: number;
  snat: boolean;
}

export function dnatChainName(network: string, containerID: string): string {
  return chainName(network, containerID, 'DN-');
}

function markValue(bit: number): string {
  const v = `0x${(1 << bit).toString(16)}`;
  return `${v}/${v}`;
}

/** The chains and jumps every portmap attachment shares, for those missing from `dump`. */
export function sharedLines(dump: TableDump, markMasqBit: number): string[] {
  const lines: string[] = [];
  const jumpsTo = (chain: string, target: string): boolean => dump.rules.some((r) => ruleChain(r) === chain && ruleTarget(r) === target);
  const mark = markValue(markMasqBit);
  const chains: Array<[string, string[]]> = [
    [DNAT_CHAIN, []],
    [SETMARK_CHAIN, [`-A ${SETMARK_CHAIN} -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark ${mark}`]],
    [MASQ_CHAIN, [`-A ${MASQ_CHAIN} -m mark --mark ${mark} -j MASQUERADE`]],
  ];
  for (const [chain, rules] of chains) {
    if (!dump.chains.has(chain)) lines.push(`:${chain} - [0:0]`, ...rules);
  }
  const jumps: Array<[string, string, string]> = [
    ['PREROUTING', DNAT_CHAIN, `-A PREROUTING -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`],
    ['OUTPUT', DNAT_CHAIN, `-A OUTPUT -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`],
    // First in POSTROUTING, as the reference does: a bridge's ipMasq chain ACCEPTs pod-subnet
    // traffic, which would otherwise end the chain before a hairpin connection is masqueraded.
    ['POSTROUTING', MASQ_CHAIN, `-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j ${MASQ_CHAIN}`],
  ];
  for (const [chain, target, rule] of jumps) if (!jumpsTo(chain, target)) lines.push(rule);
  return lines;
}

/** The attachment's own chain and its entry in CNI-HOSTPORT-DNAT. */
export function containerLines(t: PortmapTarget): string[] {
  const chain = dnatChainName(t.network, t.containerID);
  const podIP = t.podAddress.split('/')[0]!;
  const podSubnet = formatPrefix(networkOf(parsePrefix(t.podAddress)));
  const comment = quoteArg(`dnat ${attachmentComment(t.network, t.containerID)}`);
  const lines = [`:${chain} - [0:0]`];
  for (const protocol of ['tcp', 'udp', 'sctp'] as const) {
    const ports = [...new Set(t.mappings.filter((m) => m.protocol === protocol).map((m) => m.hostPort))];
    for (let i = 0; i < ports.length; i += MAX_PORTS_PER_RULE) {
      const group = ports.slice(i, i + MAX_PORTS_PER_RULE).join(',');
      lines.push(`-A ${DNAT_CHAIN} -p ${protocol} -m comment --comment ${comment} -m multiport --destination-ports ${group} -j ${chain}`);
    }
  }
  for (const m of t.mappings) {
    const match = `${m.hostIP ? `-d ${m.hostIP}/32 ` : ''}-p ${m.protocol} -m ${m.protocol} --dport ${m.hostPort}`;
    if (t.snat) {
      lines.push(`-A ${chain} -s ${podSubnet} ${match} -j ${SETMARK_CHAIN}`);
      lines.push(`-A ${chain} -s 127.0.0.1/32 ${match} -j ${SETMARK_CHAIN}`);
    }
    lines.push(`-A ${chain} ${match} -j DNAT --to-destination ${podIP}:${m.containerPort}`);
  }
  return lines;
}

/** CNI-DN chains of `network` and the container that owns each, read from the DNAT entries. */
export function portmapOwners(dump: TableDump, network: string): Map<string, string> {
  const owners = new Map<string, string>();
  for (const rule of dump.rules) {
    if (!rule.startsWith(`-A ${DNAT_CHAIN} `)) continue;
    const id = containerOfRule(rule, network);
    const chain = / -j (CNI-DN-[0-9a-f]+)/.exec(rule)?.[1];
    if (id !== undefined && chain === dnatChainName(network, id)) owners.set(chain, id);
  }
  return owners;
}
