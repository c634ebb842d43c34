// iptables through whole-table transactions: iptables-save to read, one iptables-restore
// --noflush to change. The kernel never sees half a change.

import { CommandError, run } from './exec.ts';

export type Table = 'nat' | 'filter' | 'mangle' | 'raw';
/** 4: iptables, 6: ip6tables. */
export type IPFamily = 4 | 6;

const TOOL: Record<IPFamily, string> = { 4: 'iptables', 6: 'ip6tables' };

/**
 * Which of the kernel's two iptables: the x_tables one (`legacy`) or the nf_tables one
 * (`nft`); undefined: whichever `iptables` is on this host (Debian's alternatives: nft).
 * At kube-proxy's scale they differ: loading 2,000 Services x 10 endpoints takes about 1.3 s
 * through legacy and 31 s through nft, whose restore grows with the square of the rules.
 */
export type IptablesBackend = 'legacy' | 'nft';

const tool = (family: IPFamily, backend: IptablesBackend | undefined, verb: 'save' | 'restore' | '') => [TOOL[family], backend, verb].filter(Boolean).join('-');

export async function iptablesSave(table: Table, netns?: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<string> {
  return run([tool(family, backend, 'save'), '-t', table], { netns });
}

/** Applies an iptables-restore script (with *table ... COMMIT sections) atomically. */
export async function iptablesRestore(script: string, netns?: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<void> {
  await run([tool(family, backend, 'restore'), '-w', '--noflush'], { input: script, netns });
}

/**
 * Whether `chain` of `table` holds the rule (`iptables -C`): one small answer where a save
 * of a nat table with 10k Services is tens of megabytes to read.
 */
export async function iptablesHasRule(table: Table, chain: string, rule: string[], netns?: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<boolean> {
  try {
    await run([tool(family, backend, ''), '-w', '-t', table, '-C', chain, ...rule], { netns });
    return true;
  } catch (e) {
    if (e instanceof CommandError && e.exitCode === 1) return false; // no such rule, or no such chain (2: a bad rule, an error)
    throw e;
  }
}

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
