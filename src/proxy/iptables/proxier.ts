// The iptables proxier of one node (kube-proxy --proxy-mode iptables): it watches Services
// and EndpointSlices and, shortly after a change, rewrites its chains in the node's root
// namespace in one iptables-restore transaction. A canary chain and the jump from
// PREROUTING are checked every few seconds: if someone flushed or deleted the nat table,
// the next sync restores everything.

import type { EndpointSlice, Service } from '../../api/types.ts';
import type { Api } from '../../apiserver/api.ts';
import { iptablesRestore, iptablesSave, parseSave } from '../../dataplane/linux/iptables.ts';
import { run } from '../../dataplane/linux/exec.ts';
import { staleUdpDeletions, udpState, type UdpState } from '../conntrack.ts';
import { ProxyMetrics, serveProxyMetrics } from '../metrics.ts';
import { buildServicePorts } from '../model.ts';
import { buildRules, JUMP_RULES, restoreText, SERVICE_CHAIN, type IptablesConfig } from './rules.ts';

export interface ProxierOptions extends IptablesConfig {
  api: Api;
  nodeName: string;
  /** The node's network namespace (path). */
  netns: string;
  log: (line: string) => void;
  /** Least time between two syncs (kube-proxy's minSyncPeriod); changes in between are batched. */
  minSyncMs?: number;
  /** How often the canary is checked. */
  checkMs?: number;
}

export interface SyncStats {
  syncs: number;
  failures: number;
  lastSyncMs: number;
  lastSyncAt?: Date;
  rules: number;
}

const CANARY = 'KUBE-PROXY-CANARY';

function saveForm(chain: string, args: string[]): string {
  return `-A ${chain} ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}`;
}

export class IptablesProxier {
  readonly stats: SyncStats = { syncs: 0, failures: 0, lastSyncMs: 0, rules: 0 };
  private timer?: NodeJS.Timeout;
  private checker?: NodeJS.Timeout;
  private running?: Promise<void>;
  private pending = false;
  private lastSync = 0;
  private stops: Array<() => void> = [];
  private stopped = false;
  private udp = new Map<string, UdpState>();
  readonly metrics: ProxyMetrics;
  private closeMetrics?: () => Promise<void>;

  constructor(private readonly o: ProxierOptions) {
    this.metrics = new ProxyMetrics(o.nodeName);
  }

  async start(): Promise<void> {
    const rv = this.o.api.store.currentRV();
    const m = this.metrics;
    this.stops.push(
      this.o.api.watch('Service', undefined, rv, () => {
        m.serviceChanges.inc();
        m.serviceChangesPending.inc();
        this.schedule();
      }),
      this.o.api.watch('EndpointSlice', undefined, rv, () => {
        m.endpointChanges.inc();
        m.endpointChangesPending.inc();
        this.schedule();
      }),
    );
    this.closeMetrics = await serveProxyMetrics(m, this.o.netns).catch((e: Error) => {
      this.o.log(`proxy on ${this.o.nodeName}: no metrics endpoint: ${e.message}`);
      return undefined;
    });
    this.schedule();
    this.checker = setInterval(() => void this.checkCanary(), this.o.checkMs ?? 5000);
    this.checker.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.stops) s();
    clearTimeout(this.timer);
    clearInterval(this.checker);
    await this.running;
    await this.closeMetrics?.();
  }

  /** Resolves once every change seen so far is in the kernel. */
  async settled(): Promise<void> {
    while (this.pending || this.running || this.timer) await (this.running ?? new Promise((r) => setTimeout(r, 10)));
  }

  /** Batches changes: at most one sync per minSyncMs, and never two at once. */
  schedule(): void {
    this.pending = true;
    this.metrics.queuedAt = Date.now();
    this.metrics.lastQueued.setToCurrentTime();
    if (this.timer || this.running || this.stopped) return;
    const wait = Math.max(0, this.lastSync + (this.o.minSyncMs ?? 100) - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pending = false;
      this.running = this.sync().finally(() => {
        this.running = undefined;
        if (this.pending) this.schedule();
      });
    }, wait);
  }

  private async sync(): Promise<void> {
    const t0 = performance.now();
    const { api, netns } = this.o;
    const m = this.metrics;
    const startedAt = Date.now();
    m.serviceChangesPending.set(0);
    m.endpointChangesPending.set(0);
    try {
      const ports = buildServicePorts(api.list('Service').items as Service[], api.list('EndpointSlice').items as EndpointSlice[], this.o.nodeName);
      const rules = buildRules(ports, this.o);
      const [nat, filter] = await Promise.all([iptablesSave('nat', netns), iptablesSave('filter', netns)]);
      const natDump = parseSave(nat);
      const filterDump = parseSave(filter);
      const stale = [...natDump.chains].filter((c) => SERVICE_CHAIN.test(c) && !rules.natChains.has(c));
      // The jumps from the built-in chains, inserted first where missing (a fresh node, or a flushed table).
      const jumps = { filter: [] as string[], nat: [] as string[] };
      for (const j of JUMP_RULES) {
        const dump = j.table === 'nat' ? natDump : filterDump;
        if (!dump.rules.includes(saveForm(j.chain, j.rule))) jumps[j.table].push(saveForm(j.chain, j.rule).replace(/^-A (\S+)/, '-I $1 1'));
      }
      await iptablesRestore(restoreText(rules, stale, { declare: [CANARY], ...jumps }), netns);
      // Only once the new rules are in: stale UDP flows would otherwise be re-created by the old ones.
      const udp = udpState(ports);
      for (const argv of staleUdpDeletions(this.udp, udp)) await run(argv, { netns }).catch(() => undefined); // exit 1: nothing matched
      this.udp = udp;
      this.stats.syncs++;
      this.stats.rules = rules.filter.length + rules.nat.length;
      this.stats.lastSyncAt = new Date();
      const seconds = (performance.now() - t0) / 1000;
      m.syncDuration.observe(seconds);
      m.fullSyncDuration.observe(seconds); // every sync rewrites every chain (no partial syncs yet)
      m.lastSync.setToCurrentTime();
      m.syncedAt = startedAt;
      m.rules.set({ table: 'filter' }, rules.filter.filter((l) => l.startsWith('-A')).length);
      m.rules.set({ table: 'nat' }, rules.nat.filter((l) => l.startsWith('-A')).length);
    } catch (e) {
      this.stats.failures++;
      m.restoreFailures.inc();
      // The previous ruleset stays (the restore is one transaction); try again, whole, soon.
      this.o.log(`proxy on ${this.o.nodeName}: sync failed, previous rules kept: ${e instanceof Error ? e.message : String(e)}`);
      if (!this.stopped) setTimeout(() => this.schedule(), 1000).unref();
    } finally {
      this.stats.lastSyncMs = performance.now() - t0;
      this.lastSync = Date.now();
    }
  }

  /** A nat table that lost the canary or the jump into KUBE-SERVICES was flushed: resync. */
  private async checkCanary(): Promise<void> {
    if (this.running || this.stopped) return;
    const nat = await iptablesSave('nat', this.o.netns).catch(() => '');
    const dump = parseSave(nat);
    const jump = JUMP_RULES.find((j) => j.table === 'nat' && j.chain === 'PREROUTING')!;
    if (!dump.chains.has(CANARY) || !dump.rules.includes(saveForm(jump.chain, jump.rule))) {
      this.o.log(`proxy on ${this.o.nodeName}: the nat table lost kubewire's rules (flushed?): restoring them`);
      this.schedule();
    }
  }
}
