// The NetworkPolicy enforcer of one node: informers over NetworkPolicies, Pods and Namespaces
// (the ObjectClient seam, so it runs against any API server), and, shortly after any change,
// the node's whole compiled view (model.ts compileNode) handed to a backend that puts it into
// the kernel in one transaction. Level-triggered and batched by the service proxy's runner
// (async/bounded-frequency-runner.ts): at most one sync per minSyncMs, never two at once, a
// failed sync retried whole, a lost table (flushed by hand) restored at the next check. With
// no policy left the table is removed.
//
// Pods are isolated before they start: the node agent calls `podStarting(pod, ip)` after the
// CNI has given the pod its address and before its containers run; if a policy of its namespace
// selects it, that call returns once the rules holding it are in the kernel.
//
// Established connections when a policy changes: they survive, as in kube-router and most
// conntrack-based implementations (kube-network-policies only cuts them in its opt-in strict
// mode). Every chain accepts `ct state established,related` first, so a change judges new
// connections only; upstream's e2e probes new connections too.

import type { Namespace, Pod } from '../api/types.ts';
import type { ResourceType } from '../api/resources.ts';
import { BoundedFrequencyRunner } from '../async/bounded-frequency-runner.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { compileNode, podInfo, type CompiledNode, type NetworkPolicyObject, type PodInfo, type PolicyWorld } from './model.ts';

/** How the node's service proxy sends Service traffic, which decides where policy hooks. */
export interface NetpolProxyInfo {
  /** IPVS: it DNATs in LOCAL_IN and sends a Service's packets on through OUTPUT, never FORWARD. */
  ipvs?: boolean;
  /** The ClusterIPs' range (IPVS: packets to it are left to IPVS in INPUT and judged after it). */
  serviceCIDR?: string;
}

/** Puts one node's compiled policy into the kernel. */
export interface NetpolBackend {
  readonly name: 'nftables' | 'iptables';
  /** The node's whole view, in one transaction; returns object counts (for logs and the bench). */
  apply(node: CompiledNode): Promise<Record<string, number>>;
  /** Removes everything the backend made (no policy left). */
  remove(): Promise<void>;
  /** False when the kernel lost the rules (a flushed or deleted table). */
  intact(): Promise<boolean>;
}

const rt = (kind: string, group: string, plural: string): ResourceType => ({ kind, group, version: 'v1', plural, singular: kind.toLowerCase(), shortNames: [], namespaced: kind !== 'Namespace' });
export const NETWORK_POLICIES = rt('NetworkPolicy', 'networking.k8s.io', 'networkpolicies');
const PODS = rt('Pod', '', 'pods');
const NAMESPACES = rt('Namespace', '', 'namespaces');

export interface EnforcerOptions {
  client: ObjectClient;
  nodeName: string;
  backend: NetpolBackend;
  log: (line: string) => void;
  /** Least time between two syncs; changes in between are batched. */
  minSyncMs?: number;
  /** How often the backend is checked for lost rules. */
  checkMs?: number;
}

export class PolicyEnforcer {
  private readonly policies: Informer<NetworkPolicyObject>;
  private readonly pods: Informer<Pod>;
  private readonly namespaces: Informer<Namespace>;
  /** Pods whose address the agent told before the API shows it, by ns/name. */
  private readonly starting = new Map<string, PodInfo>();
  private readonly runner: BoundedFrequencyRunner;
  private stopped = false;
  /** What the kernel holds: 'none' (no table), a compiled view's JSON, or undefined (unknown: write it). */
  private installed: string | undefined;
  /** Last sync's figures: for logs, tests and the bench. */
  lastResult: { ms: number; counts: Record<string, number>; at: number } | undefined;
  /** Syncs done (a test waits for one). */
  syncs = 0;

  constructor(private readonly o: EnforcerOptions) {
    this.runner = new BoundedFrequencyRunner({
      fn: () => this.sync(),
      minIntervalMs: o.minSyncMs ?? 50,
      check: {
        everyMs: o.checkMs ?? 5000,
        intact: () => o.backend.intact(),
        skip: () => this.installed === 'none' || this.installed === undefined,
        lost: () => {
          o.log(`network policy on ${o.nodeName}: the ${o.backend.name} rules are gone (flushed?): restoring them`);
          this.installed = undefined;
        },
      },
    });
    const changed = () => this.schedule();
    this.policies = new Informer<NetworkPolicyObject>(o.client, NETWORK_POLICIES, changed, o.log);
    this.pods = new Informer<Pod>(o.client, PODS, (pod) => {
      // The API now shows the address the agent told: the override is no longer needed.
      if (pod?.status?.podIP) this.starting.delete(`${pod.metadata.namespace}/${pod.metadata.name}`);
      changed();
    }, o.log);
    this.namespaces = new Informer<Namespace>(o.client, NAMESPACES, changed, o.log);
  }

  async start(): Promise<void> {
    await Promise.all([this.policies.start(), this.pods.start(), this.namespaces.start()]);
    this.schedule();
    this.runner.start();
  }

  /** Stops watching; the rules stay (as kube-proxy's do) until the node's namespace goes. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.policies.stop();
    this.pods.stop();
    this.namespaces.stop();
    await this.runner.stop();
  }

  /**
   * The agent's hook between the CNI ADD and the first container: the pod's address is known
   * here before the API has it. Resolves once a policy selecting the pod is in the kernel (at
   * once when no policy of its namespace exists, or before the first list).
   */
  async podStarting(pod: Pod, ip: string): Promise<void> {
    if (this.stopped) return;
    const info = podInfo({ ...pod, status: { ...pod.status, podIP: ip } });
    if (!info) return;
    this.starting.set(`${info.namespace}/${info.name}`, info);
    const ns = info.namespace;
    const relevant = [...this.policies.items.values()].some((p) => (p.metadata.namespace ?? 'default') === ns);
    if (!relevant) {
      this.schedule(); // it may be a peer of other pods' rules
      return;
    }
    await this.runner.next();
  }

  /** Everything the model reads, from the informers' caches and the starting pods. */
  world(): PolicyWorld {
    const pods = new Map<string, PodInfo>();
    for (const p of this.pods.items.values()) {
      const info = podInfo(p);
      if (info && !p.metadata.deletionTimestamp) pods.set(`${info.namespace}/${info.name}`, info);
    }
    for (const [key, info] of this.starting) if (!pods.has(key) && this.pods.items.has(key)) pods.set(key, info);
    return {
      policies: [...this.policies.items.values()],
      pods: [...pods.values()],
      namespaces: new Map([...this.namespaces.items.values()].map((n) => [n.metadata.name, n.metadata.labels ?? {}])),
    };
  }

  /** Batches changes: at most one sync per minSyncMs, and never two at once. */
  schedule(): void {
    this.runner.run();
  }

  private async sync(): Promise<void> {
    if (!this.policies.synced || !this.pods.synced || !this.namespaces.synced) return; // the informers call again once listed
    const t0 = performance.now();
    const { backend, nodeName } = this.o;
    try {
      const world = this.world();
      if (!world.policies.length) {
        if (this.installed !== 'none') {
          await backend.remove();
          this.installed = 'none';
          this.syncs++;
        }
        return;
      }
      const compiled = compileNode(world, nodeName);
      const key = JSON.stringify(compiled, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      if (key === this.installed) return;
      this.installed = undefined; // unknown until the transaction has gone in
      const counts = await backend.apply(compiled);
      this.installed = key;
      this.syncs++;
      this.lastResult = { ms: performance.now() - t0, counts, at: Date.now() };
    } catch (e) {
      this.installed = undefined;
      this.o.log(`network policy on ${nodeName}: sync failed, previous rules kept: ${e instanceof Error ? e.message : String(e)}`);
      this.runner.retryAfter(1000);
    }
  }
}
