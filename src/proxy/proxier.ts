// The service proxy of one node (kube-proxy): it watches Services and EndpointSlices and,
// shortly after a change, hands the node's whole view (buildServicePorts) to its backend
// (iptables or nftables), which puts it into the kernel in one transaction. Changes are
// batched (at most one sync per minSyncMs, never two at once); a failed sync keeps the
// previous rules and is retried; the backend is checked every few seconds for rules lost
// to a flush; stale UDP conntrack entries are deleted after each sync; kube-proxy's
// metrics and healthz are served in the node's namespace.

import type { EndpointSlice, Service } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import { run } from '../dataplane/linux/exec.ts';
import { staleUdpDeletions, udpState, type UdpState } from './conntrack.ts';
import { ProxyMetrics, serveProxyMetrics } from './metrics.ts';
import { buildServicePorts, type ServicePortInfo } from './model.ts';

export interface ProxyBackend {
  readonly mode: 'iptables' | 'nftables';
  /** Puts the ruleset for `ports` into the kernel in one transaction: whole, or only what changed (partial). */
  apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }>;
  /** False when the kernel lost the rules (a flushed or deleted table): the next sync restores them. */
  intact(): Promise<boolean>;
}

export interface ProxierOptions {
  api: Api;
  nodeName: string;
  /** The node's network namespace (path). */
  netns: string;
  backend: ProxyBackend;
  log: (line: string) => void;
  /** Least time between two syncs (kube-proxy's minSyncPeriod); changes in between are batched. */
  minSyncMs?: number;
  /** How often the backend is checked for lost rules. */
  checkMs?: number;
}

export interface SyncStats {
  syncs: number;
  failures: number;
  lastSyncMs: number;
  lastSyncAt?: Date;
}

export class Proxier {
  readonly stats: SyncStats = { syncs: 0, failures: 0, lastSyncMs: 0 };
  readonly metrics: ProxyMetrics;
  private timer?: NodeJS.Timeout;
  private checker?: NodeJS.Timeout;
  private running?: Promise<void>;
  private pending = false;
  private lastSync = 0;
  private readonly stops: Array<() => void> = [];
  private stopped = false;
  private udp = new Map<string, UdpState>();
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
    this.checker = setInterval(() => void this.check(), this.o.checkMs ?? 5000);
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
      const { counts, partial } = await this.o.backend.apply(ports);
      // Only once the new rules are in: stale UDP flows would otherwise be re-created by the old ones.
      const udp = udpState(ports);
      for (const argv of staleUdpDeletions(this.udp, udp)) await run(argv, { netns }).catch(() => undefined); // exit 1: nothing matched
      this.udp = udp;
      this.stats.syncs++;
      this.stats.lastSyncAt = new Date();
      const seconds = (performance.now() - t0) / 1000;
      m.syncDuration.observe(seconds);
      (partial ? m.partialSyncDuration : m.fullSyncDuration).observe(seconds);
      m.lastSync.setToCurrentTime();
      m.syncedAt = startedAt;
      for (const [kind, n] of Object.entries(counts)) {
        if (this.o.backend.mode === 'iptables') m.rules.set({ table: kind }, n);
        else m.nftObjects.set({ kind }, n);
      }
    } catch (e) {
      this.stats.failures++;
      m.restoreFailures.inc();
      // The previous ruleset stays (the change is one transaction); try again, whole, soon.
      this.o.log(`proxy on ${this.o.nodeName}: sync failed, previous rules kept: ${e instanceof Error ? e.message : String(e)}`);
      if (!this.stopped) setTimeout(() => this.schedule(), 1000).unref();
    } finally {
      this.stats.lastSyncMs = performance.now() - t0;
      this.lastSync = Date.now();
    }
  }

  private async check(): Promise<void> {
    if (this.running || this.stopped) return;
    if (!(await this.o.backend.intact().catch(() => false))) {
      this.o.log(`proxy on ${this.o.nodeName}: the ${this.o.backend.mode} rules are gone (flushed?): restoring them`);
      this.schedule();
    }
  }
}
