// Masquerade for traffic leaving the pod network (bridge's ipMasq), in the reference
// plugin's shape: POSTROUTING -s podIP -j CNI-<hash>; the chain accepts the pod's own
// subnet and masquerades the rest but multicast. IPv4 through iptables, IPv6 through
// ip6tables, each one transaction.

import { networkOf, formatPrefix, parsePrefix } from '../../netaddr/ip.ts';
import { parseSave, removalLines, transaction, type TableDump } from '../../dataplane/iptables-text.ts';
import type { IPFamily, Netns } from '../../dataplane/port.ts';
import { attachmentComment, chainName, containerOfRule, quoteArg } from './netfilter-names.ts';

const MULTICAST: Record<IPFamily, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };
const FAMILIES: IPFamily[] = [4, 6];

function familyOf(address: string): IPFamily {
  return address.includes(':') ? 6 : 4;
}

/** Restore lines that set up masquerade for the pod's addresses of one family (CIDR notation). */
export function masqLines(network: string, containerID: string, addresses: string[], family: IPFamily = 4): string[] {
  const chain = chainName(network, containerID);
  const comment = ['-m', 'comment', '--comment', quoteArg(attachmentComment(network, containerID))].join(' ');
  const lines = [`:${chain} - [0:0]`];
  for (const address of addresses) {
    const prefix = parsePrefix(address);
    lines.push(`-A ${chain} -d ${formatPrefix(networkOf(prefix))} -j ACCEPT ${comment}`);
  }
  lines.push(`-A ${chain} ! -d ${MULTICAST[family]} -j MASQUERADE ${comment}`);
  for (const address of addresses) lines.push(`-A POSTROUTING -s ${address.split('/')[0]} -j ${chain} ${comment}`);
  return lines;
}

export async function setupMasq(host: Netns, network: string, containerID: string, addresses: string[]): Promise<void> {
  await Promise.all(FAMILIES.map(async (family) => {
    const mine = addresses.filter((a) => familyOf(a) === family);
    if (mine.length) await host.iptablesRestore(transaction('nat', masqLines(network, containerID, mine, family)), family);
  }));
}

/**
 * The removal of what masqLines made for `addresses` (pure): the jumps as they were added, then
 * the chain. Applied without reading the table first; iptables-restore refuses the whole
 * transaction if any of it is not there (then the table is read, teardownMasq).
 */
export function knownRemovalLines(network: string, containerID: string, addresses: string[], family: IPFamily): string[] {
  const chain = chainName(network, containerID);
  const jumps = masqLines(network, containerID, addresses, family).filter((l) => l.startsWith('-A POSTROUTING ')).map((l) => `-D${l.slice(2)}`);
  return [...jumps, `-F ${chain}`, `-X ${chain}`];
}

/**
 * Removes the attachment's chain and its jumps; `families` narrows the work when known. With the
 * attachment's `addresses` (DEL's prevResult) the removal is tried as ADD made it, one
 * iptables-restore and no iptables-save (a DEL's longest part); anything else there, or
 * nothing: the table is read and what it holds is removed.
 */
export async function teardownMasq(host: Netns, network: string, containerID: string, families: IPFamily[] = FAMILIES, addresses: string[] = []): Promise<void> {
  await Promise.all(families.map(async (family) => {
    const mine = addresses.filter((a) => familyOf(a) === family);
    if (mine.length) {
      const done = await host.iptablesRestore(transaction('nat', knownRemovalLines(network, containerID, mine, family)), family).then(() => true, () => false);
      if (done) return;
    }
    const dump = parseSave(await host.iptablesSave('nat', family));
    const lines = removalLines(dump, [chainName(network, containerID)]);
    if (lines.length) await host.iptablesRestore(transaction('nat', lines), family);
  }));
}

export function familiesOf(addresses: string[]): IPFamily[] {
  return FAMILIES.filter((f) => addresses.some((a) => familyOf(a) === f));
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
export async function gcMasq(host: Netns, network: string, validContainers: Set<string>, log: (m: string) => void): Promise<void> {
  await Promise.all(FAMILIES.map(async (family) => {
    const dump = parseSave(await host.iptablesSave('nat', family));
    const stale = [...masqOwners(dump, network)].filter(([, id]) => !validContainers.has(id));
    if (!stale.length) return;
    for (const [chain, id] of stale) log(`gc: removing masquerade chain ${chain} (IPv${family}) of ${id}`);
    await host.iptablesRestore(transaction('nat', removalLines(dump, stale.map(([c]) => c))), family);
  }));
}
