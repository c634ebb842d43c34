// The service proxy of one node (kube-proxy): it watches Services and EndpointSlices (through
// informers over any ObjectClient: the daemon's Api in process, or an API server over HTTPS) and,
// shortly after a change, hands the node's whole view (buildServicePorts) to its backend
// (iptables or nftables), which puts it into the kernel in one transaction. Changes are
// batched by a BoundedFrequencyRunner (async/: at most one sync per minSyncMs, never two at
// once; the NetworkPolicy enforcer runs on the same one); a failed sync keeps the
// previous rules and is retried; the backend is checked every few seconds for rules lost
// to a flush; stale UDP conntrack entries are deleted after each sync; kube-proxy's
// metrics and healthz are served in the node's namespace.

import { resourceNamed } from '../api/resources.ts';
import { namespacedName, type EndpointSlice, type Service } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { BoundedFrequencyRunner } from '../async/bounded-frequency-runner.ts';
import type { Netns } from '../dataplane/port.ts';
import { staleUdpDeletions, udpState, type UdpState } from './conntrack.ts';
import { ProxyMetrics, serveProxyMetrics, type HealthNote } from './metrics.ts';
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

/** The Service a slice belongs to ("ns/name", from its kubernetes.io/service-name label). */
const serviceOf = (es: EndpointSlice): string | undefined => {
  const name = es.metadata.labels?.['kubernetes.io/service-name'];
  return name ? `${es.metadata.namespace}/${name}` : undefined;
};

export interface ProxierOptions {
  /** Where Services and EndpointSlices come from: the daemon's Api in process (LocalClient), or an API server over HTTPS (RestClient). */
  client: ObjectClient;
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
  /** Where /healthz and /livez listen (kube-proxy's --healthz-bind-address; 0.0.0.0:10256). */
  healthzBindAddress?: string;
  /** How long a queued change may wait before /healthz says unhealthy (kube-proxy: 2 x syncPeriod). */
  healthTimeoutMs?: number;
  /** Something /healthz should say beside kube-proxy's fields (the API server is away). */
  health?: () => HealthNote | undefined;
}

export class Proxier {
  readonly metrics: ProxyMetrics;
  private readonly runner: BoundedFrequencyRunner;
  private udp = new Map<string, UdpState>();
  private closeMetrics?: () => Promise<void>;
  // Change tracking (kube-proxy's ServiceChangeTracker / EndpointsChangeTracker): the objects
  // as the informers hold them (slices indexed by their Service), the Services changed since
  // the last sync, and each Service's ports rebuilt only when it changed, so that an unchanged
  // Service hands the backend the very same object as last time.
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  /** slice "ns/name" -> its Service's "ns/name" (to rebuild the old one when the label moves). */
  private readonly sliceOwner = new Map<string, string>();
  private readonly ports = new Map<string, ServicePortInfo[]>();
  /** Service key -> version() its ports were built from. */
  private readonly builtFrom = new Map<string, string>();
  private readonly dirty = new Set<string>();

  constructor(private readonly o: ProxierOptions) {
    this.metrics = new ProxyMetrics(o.nodeName);
    const m = this.metrics;
    const log = (l: string) => o.log(`proxy on ${o.nodeName}: ${l}`);
    this.runner = new BoundedFrequencyRunner({
      fn: () => this.sync(),
      minIntervalMs: o.minSyncMs ?? 100,
      ready: () => this.synced,
      check: { everyMs: o.checkMs ?? 5000, intact: () => o.backend.intact(), lost: () => log(`the ${o.backend.mode} rules are gone (flushed?): restoring them`) },
    });
    this.services = new Informer<Service>(o.client, resourceNamed('services')!, (svc) => {
      if (svc) {
        m.serviceChanges.inc();
        m.serviceChangesPending.inc();
        this.dirty.add(namespacedName(svc));
      } else this.relisted();
      this.schedule();
    }, log);
    this.slices = new Informer<EndpointSlice>(o.client, resourceNamed('endpointslices')!, (es) => {
      if (es) {
        m.endpointChanges.inc();
        m.endpointChangesPending.inc();
        this.onSlice(es);
      } else this.relisted();
      this.schedule();
    }, log, serviceOf);
  }

  async start(): Promise<void> {
    // Each start lists (or fails, and retries by itself): a proxier started while the API is away
    // programs nothing until both lists have come, as kube-proxy waits for both caches to sync.
    await Promise.all([this.services.start(), this.slices.start()]);
    this.closeMetrics = await serveProxyMetrics(this.metrics, this.o.netns, this.o.metricsBindAddress, this.o.healthzBindAddress, this.o.health, this.o.healthTimeoutMs).catch((e: Error) => {
      this.o.log(`proxy on ${this.o.nodeName}: no metrics endpoint: ${e.message}`);
      return undefined;
    });
    this.schedule();
    this.runner.start();
  }

  /** Whether both caches hold their first list (nothing is programmed before). */
  get synced(): boolean {
    return this.services.synced && this.slices.synced;
  }

  async stop(): Promise<void> {
    this.services.stop();
    this.slices.stop();
    await this.runner.stop();
    await this.closeMetrics?.();
  }

  /** A slice changed: its Service, and the one it named before (its service-name label changed), must be rebuilt. */
  private onSlice(es: EndpointSlice): void {
    const id = namespacedName(es);
    const key = this.slices.items.has(id) ? serviceOf(es) : undefined;
    const before = this.sliceOwner.get(id);
    if (before && before !== key) this.dirty.add(before);
    if (key) {
      this.sliceOwner.set(id, key);
      this.dirty.add(key);
    } else this.sliceOwner.delete(id);
  }

  /**
   * A cache was listed again (the watch could not resume: the API server restarted, or the
   * proxier fell behind): what changed in the gap is found by comparing resourceVersions
   * with what the rules were built from, so that a relist of 10k Services rebuilds only
   * those that changed, and the backend still gets unchanged Services as the same objects.
   */
  private relisted(): void {
    this.sliceOwner.clear();
    for (const [id, es] of this.slices.items) {
      const key = serviceOf(es);
      if (key) this.sliceOwner.set(id, key);
    }
    const keys = new Set([...this.builtFrom.keys(), ...this.services.items.keys()]);
    for (const key of keys) if (this.builtFrom.get(key) !== this.version(key)) this.dirty.add(key);
  }

  /** What a Service's rules are built from: its resourceVersion and its slices'. */
  private version(key: string): string | undefined {
    const svc = this.services.items.get(key);
    if (!svc) return undefined;
    const slices = this.slices.byIndex(key).map((es) => es.metadata.resourceVersion ?? '').sort();
    return `${svc.metadata.resourceVersion ?? ''}/${slices.join(',')}`;
  }

  /** Every Service's ports, rebuilt only for the Services that changed since the last sync. */
  private currentPorts(): ServicePortInfo[] {
    for (const key of this.dirty) {
      const svc = this.services.items.get(key);
      if (svc) {
        this.ports.set(key, buildServicePorts([svc], this.slices.byIndex(key), this.o.nodeName));
        this.builtFrom.set(key, this.version(key)!);
      } else {
        this.ports.delete(key);
        this.builtFrom.delete(key);
      }
    }
    this.dirty.clear();
    return [...this.ports.values()].flat();
  }

  /** Batches changes: at most one sync per minSyncMs, and never two at once. */
  schedule(): void {
    if (!this.metrics.pendingSince) this.metrics.pendingSince = Date.now();
    this.metrics.lastQueued.setToCurrentTime();
    this.runner.run();
  }

  private async sync(): Promise<void> {
    const t0 = performance.now();
    const { netns } = this.o;
    const m = this.metrics;
    const startedAt = Date.now();
    // What waited is in once this sync succeeds; what comes meanwhile waits for the next one.
    const waiting = m.pendingSince;
    m.pendingSince = 0;
    m.serviceChangesPending.set(0);
    m.endpointChangesPending.set(0);
    try {
      const ports = this.currentPorts();
      const { counts, partial, recheckMs } = await this.o.backend.apply(ports);
      if (recheckMs !== undefined) this.runner.retryAfter(recheckMs);
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
      if (waiting) m.pendingSince = waiting;
      // The previous ruleset stays (the change is one transaction); try again, whole, soon.
      this.o.log(`proxy on ${this.o.nodeName}: sync failed, previous rules kept: ${e instanceof Error ? e.message : String(e)}`);
      this.runner.retryAfter(1000);
    }
  }
}
