// kube-proxy's iptables mode as a proxier backend: each sync is one iptables-restore of the
// filter and nat tables in the node's namespace. The first sync (and any after a failure or a
// lost table) is full: it reads the tables, inserts the jumps from the built-in chains where
// missing and deletes every stale per-Service chain. Later syncs are partial, as upstream's
// (KEP-3453): the top-level chains whole, per-Service chains only for the Services that
// changed. A canary chain tells when someone flushed or deleted the table.

import { parseSave, type TableDump } from '../../dataplane/iptables-text.ts';
import type { IptablesBackend as Iptables, Netns } from '../../dataplane/port.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildRules, JUMP_RULES, natChains, ownerKey, partialRestoreText, restoreText, ruleCounts, SERVICE_CHAIN, type IptablesConfig, type KeptRules, type RuleSet } from './rules.ts';

const CANARY = 'KUBE-PROXY-CANARY';

function saveForm(chain: string, args: string[]): string {
  return `-A ${chain} ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}`;
}

/**
 * A full sync's iptables-restore input, given what the tables hold now: every chain, the
 * canary, the jumps from the built-in chains inserted first where missing (a fresh node, or a
 * flushed table), and every stale per-Service chain deleted.
 */
export function fullSyncText(rules: RuleSet, nat: TableDump, filter: TableDump): string {
  const wanted = natChains(rules);
  const stale = [...nat.chains].filter((c) => SERVICE_CHAIN.test(c) && !wanted.has(c));
  const jumps = { filter: [] as string[], nat: [] as string[] };
  for (const j of JUMP_RULES) {
    const rule = saveForm(j.chain, j.rule);
    if (!(j.table === 'nat' ? nat : filter).rules.includes(rule)) jumps[j.table].push(rule.replace(/^-A (\S+)/, '-I $1 1'));
  }
  return restoreText(rules, stale, { declare: [CANARY], ...jumps });
}

export class IptablesBackend implements ProxyBackend {
  readonly mode = 'iptables';

  constructor(private readonly netns: Netns, private readonly cfg: IptablesConfig, private readonly backend?: Iptables) {}

  /** What the kernel holds since the last sync: each Service port (by identity) and its chains' names. */
  private synced = false;
  private written = new Map<string, string[]>();
  private ports = new Map<string, ServicePortInfo>();
  /** Each Service port's top-level rules and chain names, kept while the proxier hands over the same (unchanged) port object. */
  private readonly memo = new WeakMap<ServicePortInfo, KeptRules>();

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }> {
    const partial = this.synced;
    // A full sync reads the tables; started first, the reads run while the rules are generated.
    const saves = partial ? undefined : Promise.all([this.netns.iptablesSave('nat', 4, this.backend), this.netns.iptablesSave('filter', 4, this.backend)]);
    saves?.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
    const current = new Map(ports.map((sp) => [ownerKey(sp), sp]));
    this.synced = false; // unknown until the transaction has gone in
    let rules: RuleSet;
    if (partial) {
      const changed = new Set<string>();
      for (const [k, sp] of current) if (this.ports.get(k) !== sp) changed.add(k);
      for (const k of this.ports.keys()) if (!current.has(k)) changed.add(k);
      rules = buildRules(ports, this.cfg, this.memo, changed);
      await this.netns.iptablesRestore(partialRestoreText(rules, changed, this.written, { declare: [CANARY] }), 4, this.backend);
    } else {
      rules = buildRules(ports, this.cfg, this.memo);
      const [nat, filter] = await saves!;
      await this.netns.iptablesRestore(fullSyncText(rules, parseSave(nat), parseSave(filter)), 4, this.backend);
    }
    this.synced = true;
    this.written = rules.chainNames;
    this.ports = current;
    return { counts: ruleCounts(rules), partial };
  }

  /**
   * The jump from PREROUTING into KUBE-SERVICES is still there (a flush of nat, or of
   * everything, takes it). Asked with `iptables -C`, not a save: at 10k Services a save of
   * nat is ~40 MB, and this runs every few seconds.
   */
  async intact(): Promise<boolean> {
    const jump = JUMP_RULES.find((j) => j.table === 'nat' && j.chain === 'PREROUTING')!;
    const ok = await this.netns.iptablesHasRule('nat', jump.chain, jump.rule, 4, this.backend);
    if (!ok) this.synced = false; // the next sync is a full one
    return ok;
  }
}
