// The ingress controller of one node, as ingress-nginx runs one per node with hostNetwork:
// it watches Ingresses, IngressClasses, Services, EndpointSlices and Secrets through the
// API, rebuilds the route table on every change and swaps it into the proxy. The leader
// (the first node's controller) also writes each served Ingress's status (every node's IP)
// and records the problems it finds as Events, which `describe ingress` shows.

import { createHash } from 'node:crypto';
import { SERVICE_NAME_LABEL } from '../api/endpointslices.ts';
import { resourceOfKind } from '../api/resources.ts';
import { namespacedName, type EndpointSlice, type Event, type Ingress, type IngressClass, type KubeObject, type Secret, type Service } from '../api/types.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { isAlreadyExists } from '../apiserver/status.ts';
import { eventFor } from '../apiserver/events.ts';
import { servedBy } from './classes.ts';
import { Informer } from '../apiserver/informer.ts';
import type { IngressMetrics } from './metrics.ts';
import type { IngressProxy } from './proxy.ts';
import { buildRoutes } from './routes.ts';
import type { Problem } from './table.ts';
import { loadTls, type Certificate } from './tls.ts';

export interface ControllerOptions {
  client: ObjectClient;
  proxy: IngressProxy;
  metrics: IngressMetrics;
  nodeName: string;
  /** What goes into status.loadBalancer.ingress: the IPs of the nodes running the controller. */
  addresses: string[];
  /** Only the leader writes statuses and events. */
  leader: boolean;
  log: (line: string) => void;
}

/** namespace/name of the Services that Ingresses send to (their default backends and paths). */
export function referencedServices(ingresses: Ingress[]): Set<string> {
  const out = new Set<string>();
  for (const ing of ingresses) {
    const add = (name: string | undefined) => name && out.add(`${ing.metadata.namespace}/${name}`);
    add(ing.spec.defaultBackend?.service?.name);
    for (const r of ing.spec.rules ?? []) for (const p of r.http?.paths ?? []) add(p.backend?.service?.name);
  }
  return out;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export class IngressController {
  private readonly ingresses: Informer<Ingress>;
  private readonly classes: Informer<IngressClass>;
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly secrets: Informer<Secret>;
  private readonly certCache = new Map<string, Promise<Certificate | string>>();
  private timer?: NodeJS.Timeout;
  private lastProblems = new Set<string>();
  /** Events already recorded (by name), so that each is written once. */
  private readonly recorded = new Set<string>();
  /** Resolves after the first configuration built from a full view of the cluster. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  /**
   * namespace/name of every Service the served Ingresses name, as of the last sync: a change
   * to another Service (or its slices) cannot change a route, and costs no rebuild (at 10,000
   * Services, a rebuild per change of each was most of the controllers' CPU).
   */
  private referenced = new Set<string>();
  private built = false;

  constructor(private readonly o: ControllerOptions) {
    const inform = <T extends KubeObject>(kind: string, relevant: (obj: T) => boolean = () => true, indexBy?: (obj: T) => string | undefined) =>
      new Informer<T>(o.client, resourceOfKind(kind), (obj) => (!obj || !this.built || relevant(obj) ? this.schedule() : undefined), o.log, indexBy);
    const serviceOfSlice = (s: EndpointSlice) => {
      const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
      return svc ? `${s.metadata.namespace}/${svc}` : undefined;
    };
    this.ingresses = inform('Ingress');
    this.classes = inform('IngressClass');
    this.services = inform<Service>('Service', (s) => this.referenced.has(namespacedName(s)));
    this.slices = inform<EndpointSlice>('EndpointSlice', (s) => this.referenced.has(serviceOfSlice(s) ?? ''), serviceOfSlice);
    this.secrets = inform('Secret');
    this.ready = new Promise((r) => (this.markReady = r));
  }

  private get informers() {
    return [this.ingresses, this.classes, this.services, this.slices, this.secrets];
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const i of this.informers) i.stop();
  }

  /** Changes come in bursts (a rollout touches pods, slices, statuses): one rebuild per 20 ms. */
  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.informers.every((i) => i.synced)) return;
      // One sync at a time (the leader's awaits API writes); a change meanwhile syncs again after.
      if (this.syncing) return void (this.again = true);
      this.syncing = true;
      void this.sync().finally(() => {
        this.syncing = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
    }, 20);
  }

  private syncing = false;
  private again = false;

  private async sync(): Promise<void> {
    const classes = [...this.classes.items.values()];
    const all = [...this.ingresses.items.values()];
    const served = all.filter((i) => servedBy(i, classes));
    try {
      const secretList = [...this.secrets.items.values()];
      const tls = await loadTls(served, secretList, this.certCache);
      const secrets = new Map(secretList.map((s) => [namespacedName(s), s]));
      this.referenced = referencedServices(served);
      const services = [...this.referenced].flatMap((k) => this.services.items.get(k) ?? []);
      const slices = [...this.referenced].flatMap((k) => this.slices.byIndex(k));
      const { table, problems } = buildRoutes({ ingresses: served, services, slices, usableSecrets: new Set(tls.certificates.keys()), secrets });
      this.built = true;
      this.o.proxy.configure({ table, certificates: new Map([...tls.certificates].map(([k, c]) => [k, c.keyPair])) });
      const m = this.o.metrics;
      m.reloads.inc();
      m.lastReloadOk.set(1);
      m.lastReloadTime.set(Date.now() / 1000);
      m.certificateExpiry.reset();
      for (const [host, secret] of table.tls) {
        const cert = tls.certificates.get(secret);
        const [namespace, name] = secret.split('/') as [string, string];
        if (cert) m.certificateExpiry.set({ namespace, secret_name: name, host }, cert.notAfter.getTime() / 1000);
      }
      const found = [...tls.problems, ...problems];
      m.problems.set(found.length);
      this.logProblems(found);
      this.markReady();
      if (this.o.leader) await this.publish(all, served, found);
    } catch (e) {
      this.o.metrics.lastReloadOk.set(0);
      this.o.log(`configuration not applied (the previous one stays): ${e instanceof Error ? e.stack : String(e)}`);
    }
  }

  private logProblems(problems: Problem[]): void {
    const now = new Set(problems.map((p) => `Ingress ${p.ingress.namespace}/${p.ingress.name}: ${p.message}`));
    for (const p of now) if (!this.lastProblems.has(p)) this.o.log(p);
    for (const p of this.lastProblems) if (!now.has(p)) this.o.log(`resolved: ${p}`);
    this.lastProblems = now;
  }

  /** Statuses (every node's IP on served Ingresses, none on the others we had claimed) and Events. */
  private async publish(all: Ingress[], served: Ingress[], problems: Problem[]): Promise<void> {
    const ours = this.o.addresses.map((ip) => ({ ip }));
    const servedSet = new Set(served);
    for (const ing of all) {
      const current = ing.status?.loadBalancer?.ingress ?? [];
      const wanted = servedSet.has(ing) ? ours : JSON.stringify(current) === JSON.stringify(ours) ? [] : current;
      if (JSON.stringify(current) === JSON.stringify(wanted)) continue;
      await this.o.client.updateStatus(resourceOfKind('Ingress'), { ...ing, status: { loadBalancer: { ingress: wanted } } }).catch((e: unknown) => this.o.log(`status of Ingress ${ing.metadata.namespace}/${ing.metadata.name}: ${e instanceof Error ? e.message : String(e)}`));
    }
    for (const ing of served) await this.event(ing, 'Normal', 'Sync', 'Scheduled for sync', JSON.stringify(ing.spec));
    const byUid = new Map(served.map((i) => [i.metadata.uid, i]));
    for (const p of problems) {
      const ing = byUid.get(p.ingress.uid);
      if (ing) await this.event(ing, 'Warning', p.reason, p.message, '');
    }
  }

  /** One Event per (Ingress, reason, message, version): a deterministic name makes it idempotent across restarts. */
  private async event(ing: Ingress, type: Event['type'], reason: string, message: string, version: string): Promise<void> {
    const name = `${ing.metadata.name}.${hash(`${ing.metadata.uid} ${reason} ${message} ${version}`)}`;
    if (this.recorded.has(name)) return;
    const event = eventFor({ ...ing, kind: 'Ingress', apiVersion: 'networking.k8s.io/v1' }, type, reason, message, { component: 'ingress-controller', host: this.o.nodeName }, name);
    try {
      await this.o.client.create(resourceOfKind('Event'), event);
      this.recorded.add(name);
    } catch (e) {
      if (isAlreadyExists(e)) this.recorded.add(name);
      // Otherwise (namespace going away, API restarting) the next sync tries again.
    }
  }
}
