// Masquerade for traffic leaving the pod network (bridge's ipMasq), in the reference
// plugin's shape: POSTROUTING -s podIP -j CNI-<hash>; the chain accepts the pod's own
// subnet and masquerades the rest but multicast.

import { networkOf, formatPrefix, parsePrefix } from '../../netaddr/ip.ts';
import { iptablesRestore, iptablesSave, parseSave, removalLines, transaction, type TableDump } from '../../dataplane/linux/iptables.ts';
import { attachmentComment, chainName, containerOfRule, quoteArg } from './netfilter-names.ts';

/** Restore lines that set up masquerade for the pod's IPv4 addresses (CIDR notation). */
export function masqLines(network: string, containerID: string, addresses: string[]): string[] {
  const chain = chainName(network, containerID);
  const comment = ['-m', 'comment', '--comment', quoteArg(attachmentComment(network, containerID))].join(' ');
  const lines = [`:${chain} - [0:0]`];
  for (const address of addresses) {
    const prefix = parsePrefix(address);
    lines.push(`-A ${chain} -d ${formatPrefix(networkOf(prefix))} -j ACCEPT ${comment}`);
  }
  lines.push(`-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE ${comment}`);
  for (const address of addresses) lines.push(`-A POSTROUTING -s ${address.split('/')[0]} -j ${chain} ${comment}`);
  return lines;
}

export async function setupMasq(network: string, containerID: string, ipv4Addresses: string[], netns?: string): Promise<void> {
  if (!ipv4Addresses.length) return;
  await iptablesRestore(transaction('nat', masqLines(network, containerID, ipv4Addresses)), netns);
}

export async function teardownMasq(network: string, containerID: string, netns?: string): Promise<void> {
  const dump = parseSave(await iptablesSave('nat', netns));
  const lines = removalLines(dump, [chainName(network, containerID)]);
  if (lines.length) await iptablesRestore(transaction('nat', lines), netns);
}

/** Container IDs of `network` that own masquerade chains (from the POSTROUTING jumps). */
export function masqOwners(dump: TableDump, network: string): Map<string, string> {
  const owners = new Map<string, string>(); // chain -> containerID
  for (const rule of dump.rules) {
    if (!rule.startsWith('-A POSTROUTING ')) continue;
    const id = containerOfRule(rule, network);
    const chain = / -j (CNI-[0-9a-f]+)/.exec(rule)?.[1];
    if (id !== undefined && chain === chainName(network, id)) owners.set(chain, id);
  }
  return owners;
}

/** Removes masquerade chains of attachments that are not valid any more. */
export async function gcMasq(network: string, validContainers: Set<string>, log: (m: string) => void, netns?: string): Promise<void> {
  const dump = parseSave(await iptablesSave('nat', netns));
  const stale = [...masqOwners(dump, network)].filter(([, id]) => !validContainers.has(id));
  if (!stale.length) return;
  for (const [chain, id] of stale) log(`gc: removing masquerade chain ${chain} of ${id}`);
  await iptablesRestore(transaction('nat', removalLines(dump, stale.map(([c]) => c))), netns);
}
