// The service proxy of one node (kube-proxy): it watches Services and EndpointSlices and,
// shortly after a change, hands the node's whole view (buildServicePorts) to its backend
// (iptables or nftables), which puts it into the kernel in one transaction. Changes are
// batched (at most one sync per minSyncMs, never two at once); a failed sync keeps the
// previous rules and is retried; the backend is checked every few seconds for rules lost
// to a flush; stale UDP conntrack entries are deleted after each sync; kube-proxy's
// metrics and healthz are served in the node's namespace.

import type { EndpointSlice, Service } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import type { Netns } from '../dataplane/port.ts';
import { staleUdpDeletions, udpState, type UdpState } from './conntrack.ts';
import { ProxyMetrics, serveProxyMetrics } from './metrics.ts';
import { buildServicePorts, type ServicePortInfo } from './model.ts';

export interface ProxyBackend {
  readonly mode: 'iptables' | 'nftables' | 'ipvs';
  /**
   * Puts the ruleset for `ports` into the kernel in one transaction: whole, or only what
   * changed (partial). `recheckMs`: sync again after this long even without a change (IPVS
   * real servers being drained).
   */
  apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean; recheckMs?: number }>;
  /** False when the kernel lost the rules (a flushed or deleted table): the next sync restores them. */
  intact(): Promise<boolean>;
}

export interface ProxierOptions {
  api: Api;
  nodeName: string;
  /** The node's network namespace. */
  netns: Netns;
  backend: ProxyBackend;
  log: (line: string) => void;
  /** Least time between two syncs (kube-proxy's minSyncPeriod); changes in between are batched. */
  minSyncMs?: number;
  /** How often the backend is checked for lost rules. */
  checkMs?: number;
  /** Where /metrics listens (kube-proxy's --metrics-bind-address; 127.0.0.1:10249). */
  metricsBindAddress?: string;
}

export class Proxier {
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
  // Change tracking (kube-proxy's ServiceChangeTracker / EndpointsChangeTracker): the objects
  // as the watches deliver them, and each Service's ports rebuilt only when it changed, so that
  // an unchanged Service hands the backend the very same object as last time.
  private readonly services = new Map<string, Service>();
  private readonly slices = new Map<string, Map<string, EndpointSlice>>();
  private readonly sliceOwner = new Map<string, string>();
  private readonly ports = new Map<string, ServicePortInfo[]>();
  private readonly dirty = new Set<string>();

  constructor(private readonly o: ProxierOptions) {
    this.metrics = new ProxyMetrics(o.nodeName);
  }

  async start(): Promise<void> {
    const { api } = this.o;
    const m = this.metrics;
    const services = api.list('Service');
    for (const svc of services.items as Service[]) this.onService(svc, false);
    const slices = api.list('EndpointSlice');
    for (const es of slices.items as EndpointSlice[]) this.onSlice(es, false);
    this.stops.push(
      api.watch('Service', undefined, services.resourceVersion, (e) => {
        m.serviceChanges.inc();
        m.serviceChangesPending.inc();
        this.onService(e.object as Service, e.type === 'DELETED');
        this.schedule();
      }),
      api.watch('EndpointSlice', undefined, slices.resourceVersion, (e) => {
        m.endpointChanges.inc();
        m.endpointChangesPending.inc();
        this.onSlice(e.object as EndpointSlice, e.type === 'DELETED');
        this.schedule();
      }),
    );
    this.closeMetrics = await serveProxyMetrics(m, this.o.netns, this.o.metricsBindAddress).catch((e: Error) => {
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

  private onService(svc: Service, deleted: boolean): void {
    const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
    if (deleted) this.services.delete(key);
    else this.services.set(key, svc);
    this.dirty.add(key);
  }

  private onSlice(es: EndpointSlice, deleted: boolean): void {
    const id = `${es.metadata.namespace}/${es.metadata.name}`;
    const svcName = es.metadata.labels?.['kubernetes.io/service-name'];
    const key = svcName ? `${es.metadata.namespace}/${svcName}` : undefined;
    // A slice that changed hands (its service-name label) leaves its old Service too.
    const before = this.sliceOwner.get(id);
    if (before && before !== key) {
      this.slices.get(before)?.delete(id);
      this.dirty.add(before);
    }
    if (!key || deleted) {
      this.sliceOwner.delete(id);
      if (key) {
        this.slices.get(key)?.delete(id);
        this.dirty.add(key);
      }
      return;
    }
    this.sliceOwner.set(id, key);
    let map = this.slices.get(key);
    if (!map) this.slices.set(key, (map = new Map()));
    map.set(id, es);
    this.dirty.add(key);
  }

  /** Every Service's ports, rebuilt only for the Services that changed since the last sync. */
  private currentPorts(): ServicePortInfo[] {
    for (const key of this.dirty) {
      const svc = this.services.get(key);
      if (svc) this.ports.set(key, buildServicePorts([svc], [...(this.slices.get(key)?.values() ?? [])], this.o.nodeName));
      else this.ports.delete(key);
    }
    this.dirty.clear();
    return [...this.ports.values()].flat();
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
    const { netns } = this.o;
    const m = this.metrics;
    const startedAt = Date.now();
    m.serviceChangesPending.set(0);
    m.endpointChangesPending.set(0);
    try {
      const ports = this.currentPorts();
      const { counts, partial, recheckMs } = await this.o.backend.apply(ports);
      if (recheckMs !== undefined && !this.stopped) setTimeout(() => this.schedule(), recheckMs).unref();
      // Only once the new rules are in: stale UDP flows would otherwise be re-created by the old ones.
      const udp = udpState(ports);
      for (const filter of staleUdpDeletions(this.udp, udp)) await netns.conntrackDelete(filter).catch(() => undefined);
      this.udp = udp;
      const seconds = (performance.now() - t0) / 1000;
      m.syncDuration.observe(seconds);
      (partial ? m.partialSyncDuration : m.fullSyncDuration).observe(seconds);
      m.lastSync.setToCurrentTime();
      m.syncedAt = startedAt;
      for (const [kind, n] of Object.entries(counts)) {
        if (this.o.backend.mode === 'iptables') m.rules.set({ table: kind }, n);
        else m.objects.set({ kind }, n); // nftables elements and chains; IPVS virtual and real servers
      }
    } catch (e) {
      m.restoreFailures.inc();
      // The previous ruleset stays (the change is one transaction); try again, whole, soon.
      this.o.log(`proxy on ${this.o.nodeName}: sync failed, previous rules kept: ${e instanceof Error ? e.message : String(e)}`);
      if (!this.stopped) setTimeout(() => this.schedule(), 1000).unref();
    } finally {
      this.lastSync = Date.now();
    }
  }

  /** No check before this: one that took d ms waits 9 d more, so checks take at most a tenth of the time. */
  private nextCheck = 0;

  private async check(): Promise<void> {
    if (this.running || this.stopped || Date.now() < this.nextCheck) return;
    const t0 = Date.now();
    const ok = await this.o.backend.intact().catch(() => false);
    this.nextCheck = Date.now() + 9 * (Date.now() - t0);
    if (!ok) {
      this.o.log(`proxy on ${this.o.nodeName}: the ${this.o.backend.mode} rules are gone (flushed?): restoring them`);
      this.schedule();
    }
  }
}
