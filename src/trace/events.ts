// What the tracer reads of the kernel's trace events and rules (pure): the events themselves are
// parsed in the dataplane (src/dataplane/trace-events.ts, re-exported here); here, the rules TRACE
// names by number, the nft base chains' hooks, and x_tables' fixed priorities.

import { parseIptablesSave, parseNftListing, type Hook, type IptablesRuleState, type IptablesTableState, type NftTableState } from '../dataplane/observations.ts';

export { nftPriority, type Hook } from '../dataplane/observations.ts';
export { parseIPv4, parseNflogPcap, parseNftPacket, parseNftTrace, type PacketHeader, type TraceEvent } from '../dataplane/trace-events.ts';

/** One table's rules by chain, in order (TRACE's rule numbers index them, from 1), and the built-in chains' policies. */
export function tableRules(t: IptablesTableState | undefined): { rules: Map<string, IptablesRuleState[]>; policies: Map<string, string> } {
  const rules = new Map<string, IptablesRuleState[]>();
  const policies = new Map<string, string>();
  for (const c of t?.chains ?? []) {
    if (c.rules.length) rules.set(c.name, c.rules);
    if (c.policy === 'ACCEPT' || c.policy === 'DROP') policies.set(c.name, c.policy);
  }
  return { rules, policies };
}

/** The rules of each chain of an `iptables-save` table, in order. */
export function chainRules(save: string): Map<string, string[]> {
  return new Map([...tableRules(parseIptablesSave(save)[0]).rules].map(([chain, rules]) => [chain, rules.map((r) => r.text)]));
}

/** The policy of each built-in chain of an `iptables-save` table (":FORWARD DROP [0:0]"). */
export function chainPolicies(save: string): Map<string, string> {
  return tableRules(parseIptablesSave(save)[0]).policies;
}

const HOOKS = new Set(['prerouting', 'input', 'forward', 'output', 'postrouting']);

/** The hook and priority of each base chain ("table/chain") of the tables listed. */
export function baseChains(tables: NftTableState[]): Map<string, { hook: Hook; priority: number }> {
  const chains = new Map<string, { hook: Hook; priority: number }>();
  for (const t of tables) for (const c of t.chains) if (c.hook && HOOKS.has(c.hook) && c.priority !== undefined) chains.set(`${t.name}/${c.name}`, { hook: c.hook as Hook, priority: c.priority });
  return chains;
}

/** The same, of `nft list ruleset` text. */
export function nftBaseChains(ruleset: string): Map<string, { hook: Hook; priority: number }> {
  return baseChains(parseNftListing(ruleset));
}

/** x_tables' fixed priorities (linux/netfilter_ipv4.h) and the hooks each built-in chain is. */
export const IPTABLES_PRIORITY: Record<string, number> = { raw: -300, mangle: -150, filter: 0, security: 50 };
export const IPTABLES_HOOKS: Record<string, Hook> = { PREROUTING: 'prerouting', INPUT: 'input', FORWARD: 'forward', OUTPUT: 'output', POSTROUTING: 'postrouting' };

export function iptablesPriority(table: string, hook: Hook): number {
  if (table === 'nat') return hook === 'prerouting' || hook === 'output' ? -100 : 100;
  return IPTABLES_PRIORITY[table] ?? 0;
}
