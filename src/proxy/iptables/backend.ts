// kube-proxy's iptables mode as a proxier backend: each sync is one iptables-restore of the
// filter and nat tables in the node's namespace, with the jumps from the built-in chains
// inserted where missing and stale per-Service chains deleted. A canary chain tells when
// someone flushed or deleted the table.

import { iptablesRestore, iptablesSave, parseSave } from '../../dataplane/linux/iptables.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildRules, JUMP_RULES, restoreText, SERVICE_CHAIN, type IptablesConfig } from './rules.ts';

const CANARY = 'KUBE-PROXY-CANARY';

function saveForm(chain: string, args: string[]): string {
  return `-A ${chain} ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}`;
}

export class IptablesBackend implements ProxyBackend {
  readonly mode = 'iptables';

  constructor(private readonly netns: string, private readonly cfg: IptablesConfig) {}

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }> {
    const rules = buildRules(ports, this.cfg);
    const [nat, filter] = await Promise.all([iptablesSave('nat', this.netns), iptablesSave('filter', this.netns)]);
    const natDump = parseSave(nat);
    const filterDump = parseSave(filter);
    const stale = [...natDump.chains].filter((c) => SERVICE_CHAIN.test(c) && !rules.natChains.has(c));
    // The jumps from the built-in chains, inserted first where missing (a fresh node, or a flushed table).
    const jumps = { filter: [] as string[], nat: [] as string[] };
    for (const j of JUMP_RULES) {
      const dump = j.table === 'nat' ? natDump : filterDump;
      if (!dump.rules.includes(saveForm(j.chain, j.rule))) jumps[j.table].push(saveForm(j.chain, j.rule).replace(/^-A (\S+)/, '-I $1 1'));
    }
    await iptablesRestore(restoreText(rules, stale, { declare: [CANARY], ...jumps }), this.netns);
    return { counts: { filter: rules.filter.filter((l) => l.startsWith('-A')).length, nat: rules.nat.filter((l) => l.startsWith('-A')).length }, partial: false };
  }

  /** The canary and the jump into KUBE-SERVICES are still there. */
  async intact(): Promise<boolean> {
    const dump = parseSave(await iptablesSave('nat', this.netns).catch(() => ''));
    const jump = JUMP_RULES.find((j) => j.table === 'nat' && j.chain === 'PREROUTING')!;
    return dump.chains.has(CANARY) && dump.rules.includes(saveForm(jump.chain, jump.rule));
  }
}
