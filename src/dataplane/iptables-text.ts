// The iptables-save and iptables-restore text formats (pure): a save parsed into chains and
// rules, the lines that remove chains and the jumps to them, a table's transaction. Shared by
// everything that writes iptables through the dataplane port, whatever implements it.

import type { IptablesTable as Table } from './port.ts';

/** A parsed `iptables-save -t TABLE` dump: chain names, and rules in order ("-A CHAIN ..."). */
export interface TableDump {
  chains: Set<string>;
  rules: string[];
}

export function parseSave(text: string): TableDump {
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0]!);
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

export function ruleChain(rule: string): string {
  return rule.split(' ')[1]!;
}

export function ruleTarget(rule: string): string | undefined {
  const m = / -[jg] (\S+)/.exec(rule);
  return m?.[1];
}

/**
 * The restore lines that remove `chains` from a table: first every rule that jumps to them,
 * then the chains themselves. Chains absent from the dump are skipped, so it is idempotent.
 */
export function removalLines(dump: TableDump, chains: Iterable<string>): string[] {
  const doomed = new Set([...chains].filter((c) => dump.chains.has(c)));
  if (!doomed.size) return [];
  const lines: string[] = [];
  for (const rule of dump.rules) {
    const target = ruleTarget(rule);
    if (target && doomed.has(target) && !doomed.has(ruleChain(rule))) lines.push(`-D${rule.slice(2)}`);
  }
  for (const c of doomed) lines.push(`-F ${c}`);
  for (const c of doomed) lines.push(`-X ${c}`);
  return lines;
}

export function transaction(table: Table, lines: string[]): string {
  return `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
}
