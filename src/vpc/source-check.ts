// The VPC's source/destination check (pure), as EC2 applies it to an ENI: the fabric forwards a
// frame from a node's port only when its source MAC is that node's interface's and its source
// IPv4 address (an ARP's sender address) is one the VPC assigned to that node: its primary
// address and the secondary ones its ipamd holds. What it checks is the interface, not the
// pod: an address of another pod of the same node passes, as on EC2 (the ENI holds it); a
// pod claiming a neighbour's address is stopped before, on its own node, by rp_filter.
//
// In the network namespace: a bridge-family nftables table, one set of allowed addresses and
// two named counters per node port. Its chain runs after br_netfilter's IP hooks (priority
// 10 > 0), so that a traced packet is marked when it gets there and `kubewire trace` sees
// the rule that drops it.

import { fabricBase, nodeMAC, type ClusterPlan } from '../cluster/plan.ts';
import type { VpcRecord } from './pool.ts';
import { compareIPs } from './pool.ts';

export const SOURCE_CHECK = { table: 'kubewire-vpc', chain: 'source-check', priority: 10 } as const;

/** What the VPC lets out of one node's port. */
export interface PortCheck {
  port: string;
  node: string;
  mac: string;
  /** The node's primary address and its secondary ones, in address order. */
  addresses: string[];
}

/** The names of a port's objects in the table (port names are the plan's `nodeN`: valid nft identifiers). */
export function checkNames(port: string): { set: string; chain: string; ip: string; mac: string } {
  return { set: `assigned_${port}`, chain: `port_${port}`, ip: `spoofed_ip_${port}`, mac: `spoofed_mac_${port}` };
}

/** Every node port's check, from the VPC's record of who holds what. The external client is the world outside, not an ENI: it is not checked. */
export function sourceChecks(plan: ClusterPlan, record: VpcRecord): PortCheck[] {
  const primary = new Map(fabricBase(plan).map((e) => [e.port, e.ip]));
  return plan.nodes.map((n) => ({
    port: n.underlayPort,
    node: n.name,
    mac: nodeMAC(plan, n),
    addresses: [primary.get(n.underlayPort)!, ...Object.keys(record).filter((a) => record[a] === n.name)].sort(compareIPs),
  }));
}

/** Whether the VPC forwards a frame from `port` with these sources; the check's own words when it does not. */
export function sourceVerdict(checks: PortCheck[], port: string, mac: string, ip?: string): { allowed: true } | { allowed: false; cause: 'mac' | 'ip'; reason: string } {
  const c = checks.find((x) => x.port === port);
  if (!c) return { allowed: true };
  if (mac.toLowerCase() !== c.mac) return { allowed: false, cause: 'mac', reason: sourceDropReason(c, 'mac', { mac }) };
  if (ip !== undefined && !c.addresses.includes(ip)) return { allowed: false, cause: 'ip', reason: sourceDropReason(c, 'ip', { ip }) };
  return { allowed: true };
}

/** The drop as `trace` and the log say it: which source, and whose interface it is not. */
export function sourceDropReason(c: Pick<PortCheck, 'node' | 'mac' | 'port'>, cause: 'mac' | 'ip', seen: { ip?: string; mac?: string }): string {
  return cause === 'mac'
    ? `dropped by the VPC's source check: source MAC ${seen.mac ?? '?'} is not ${c.node}'s interface's (${c.mac}, port ${c.port})`
    : `dropped by the VPC's source check: ${seen.ip ?? 'the source address'} is not assigned to ${c.node}'s interface (port ${c.port})`;
}

/**
 * The whole table, as one nft transaction: created if missing, each set and chain flushed and
 * filled again (a restart, or a table someone changed); named counters are kept across it.
 */
export function sourceCheckScript(checks: PortCheck[]): string {
  const t = `bridge ${SOURCE_CHECK.table}`;
  const lines = [`add table ${t}`, `add chain ${t} ${SOURCE_CHECK.chain} { type filter hook prerouting priority ${SOURCE_CHECK.priority}; policy accept; }`, `flush chain ${t} ${SOURCE_CHECK.chain}`];
  for (const c of checks) {
    const n = checkNames(c.port);
    lines.push(
      `add counter ${t} ${n.ip}`,
      `add counter ${t} ${n.mac}`,
      `add set ${t} ${n.set} { type ipv4_addr; }`,
      `flush set ${t} ${n.set}`,
      `add element ${t} ${n.set} { ${c.addresses.join(', ')} }`,
      `add chain ${t} ${n.chain}`,
      `flush chain ${t} ${n.chain}`,
      `add rule ${t} ${SOURCE_CHECK.chain} iifname "${c.port}" jump ${n.chain}`,
      `add rule ${t} ${n.chain} ether saddr != ${c.mac} counter name "${n.mac}" drop comment "the VPC's source check: not ${c.node}'s MAC"`,
      `add rule ${t} ${n.chain} ip saddr != @${n.set} counter name "${n.ip}" drop comment "the VPC's source check: not assigned to ${c.node}"`,
      `add rule ${t} ${n.chain} arp saddr ip != @${n.set} counter name "${n.ip}" drop comment "the VPC's source check: not assigned to ${c.node}"`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Addresses assigned to (add) or taken back from (delete) a node: one transaction on its set. */
export function allowScript(port: string, verb: 'add' | 'delete', addresses: string[]): string {
  return addresses.length ? `${verb} element bridge ${SOURCE_CHECK.table} ${checkNames(port).set} { ${addresses.join(', ')} }\n` : '';
}

/** A rule of the table, as nft's trace names it, read back: which port's check and which source it found wrong. */
export function parseCheckRule(rule: string): { port: string; cause: 'mac' | 'ip' } | undefined {
  const m = /counter name "?spoofed_(ip|mac)_([A-Za-z0-9]+)"?/.exec(rule);
  return m ? { port: m[2]!, cause: m[1] as 'ip' | 'mac' } : undefined;
}
