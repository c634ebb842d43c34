// iptables through whole-table transactions: iptables-save to read, one iptables-restore
// --noflush to change. The kernel never sees half a change.

import type { IPFamily, IptablesBackend, IptablesTable as Table } from '../port.ts';
import { CommandError, run } from './exec.ts';

const TOOL: Record<IPFamily, string> = { 4: 'iptables', 6: 'ip6tables' };

const tool = (family: IPFamily, backend: IptablesBackend | undefined, verb: 'save' | 'restore' | '') => [TOOL[family], backend, verb].filter(Boolean).join('-');

export async function iptablesSave(table: Table, netns?: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<string> {
  return run([tool(family, backend, 'save'), '-t', table], { netns });
}

/** iptables-save with counters: one table, or all of them in one read. */
export async function iptablesSaveCounted(table: Table | undefined, netns?: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<string> {
  return run([tool(family, backend, 'save'), '-c', ...(table ? ['-t', table] : [])], { netns });
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
