// kube-controller-manager and kube-scheduler of a kubewire cluster (node IPAM, Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job, EndpointSlice, namespace, GC, scheduler): each
// controller is a work queue fed by the shared informers' handlers, plus a periodic resync
// (level-triggered: a missed event or a restart costs nothing but a little delay). They read
// through the informers and write through the client: in the daemon a LocalClient whose
// informers share the store's objects; anywhere else, a client of the REST API.

import type { Deployment, KubeObject, Pod, ReplicaSet } from '../api/types.ts';
import { SharedInformers, type InformerEventType } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { collectOrphans, controllerOf, deploymentsFor, syncDeployment, type Requeue } from './deployment.ts';
import { syncReplicaSet } from './replicaset.ts';
import { syncStatefulSet } from './statefulset.ts';
import { syncDaemonSet } from './daemonset.ts';
import { syncJob } from './job.ts';
import { servicesFor, syncEndpointSlices } from './endpointslice.ts';
import { ensureDefaultServiceAccount, syncNamespace } from './namespace.ts';
import { syncEndpoints } from './endpoints.ts';
import { collectPodsOfMissingNodes } from './podgc.ts';
import { EventRecorder, expireEvents } from '../apiserver/events.ts';
import { syncNodeCIDRs } from './nodeipam.ts';
import { WorkQueue, nameKey, splitKey } from '../apiserver/workqueue.ts';
import { BIND_BATCH, schedulePending } from './scheduler.ts';
import { startGarbageCollector } from './garbagecollector.ts';
import { CONTROLLER_INDEXES, INFORMED_KINDS, lister, type ControllerContext } from './context.ts';

export interface ControllerOptions {
  /** The range node IPAM cuts podCIDRs from; none: nodes get no podCIDR (--allocate-node-cidrs=false, as on EKS). */
  clusterCIDR?: string;
  nodeCIDRMask: number;
  log: (line: string) => void;
  resyncMs?: number;
  /** Informers to share with the process's other components; by default the manager's own. */
  informers?: SharedInformers;
}

type Handler = (type: InformerEventType | 'SYNC', obj?: KubeObject) => void;

export class ControllerManager {
  private readonly stops: Array<() => void> = [];
  private readonly queues: WorkQueue[] = [];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  readonly ctx: ControllerContext;

  constructor(client: ObjectClient, private readonly opts: ControllerOptions) {
    this.ctx = { client, informers: opts.informers ?? new SharedInformers(client, opts.log, CONTROLLER_INDEXES) };
  }

  /** Starts the controllers once their informers have listed. */
  async start(): Promise<void> {
    const { ctx, opts } = this;
    const { client } = ctx;
    const onError = (name: string) => (key: string, e: unknown) => opts.log(`${name} ${key}: ${e instanceof Error ? e.message : String(e)}`);
    const nodes = this.queue(() => (opts.clusterCIDR ? syncNodeCIDRs(ctx, opts.clusterCIDR, opts.nodeCIDRMask) : undefined), onError('node-ipam'));
    const schedulerEvents = new EventRecorder(client, 'default-scheduler');
    const scheduler = this.queue(async () => ((await schedulePending(ctx, schedulerEvents)) === BIND_BATCH ? 'now' : undefined), onError('scheduler'));
    const deploymentEvents = new EventRecorder(client, 'deployment-controller');
    const eventTTL = this.queue(async () => void (await expireEvents(client)), onError('event-ttl'));
    const gc = this.queue(async () => void (await collectOrphans(ctx)), onError('garbage-collector'));
    const orphanSince = new Map<string, number>();
    const podGCEvents = new EventRecorder(client, 'pod-garbage-collector');
    const podGC = this.queue(async (key) => {
      const again = await collectPodsOfMissingNodes(ctx, orphanSince, podGCEvents);
      if (again !== undefined) podGC.addAfter(key, again + 50);
    }, onError('pod-garbage-collector'));
    const deployments = this.queue((key) => {
      const { namespace, name } = splitKey(key);
      return syncDeployment(ctx, namespace!, name, deploymentEvents);
    }, onError('deployment'));
    // ReplicaSets, StatefulSets, DaemonSets and Jobs: one queue each, keyed by namespace/name.
    const workloads = new Map(
      ([['ReplicaSet', syncReplicaSet, 'replicaset-controller'], ['StatefulSet', syncStatefulSet, 'statefulset-controller'], ['DaemonSet', syncDaemonSet, 'daemonset-controller'], ['Job', syncJob, 'job-controller']] as const).map(([kind, sync, component]) => {
        const events = new EventRecorder(client, component);
        const q: WorkQueue = this.queue(async (key) => {
          const { namespace, name } = splitKey(key);
          const again = await sync(ctx, namespace!, name, events);
          if (typeof again !== 'number') return again;
          q.addAfter(key, again + 50);
          return undefined;
        }, onError(component.replace('-controller', '')));
        return [kind as string, q] as const;
      }),
    );
    const slices = this.queue(async (key) => {
      const { namespace, name } = splitKey(key);
      await syncEndpointSlices(ctx, namespace!, name);
      await syncEndpoints(ctx, namespace!, name);
    }, onError('endpointslice'));
    const serviceAccounts = this.queue((key) => ensureDefaultServiceAccount(ctx, key), onError('serviceaccount'));
    const namespaces = this.queue(async (key) => {
      if (!(await syncNamespace(ctx, key))) namespaces.addAfter(key, 500);
    }, onError('namespace'));

    // Every kind the controllers read has its informer before any starts (the GC reads them all).
    for (const kind of INFORMED_KINDS) ctx.informers.of(kind);
    const on = (kind: string, h: Handler) => lister(ctx, kind).addHandler((type, obj) => (type === 'SYNC' ? this.resyncSoon() : h(type, obj)));
    on('Node', () => {
      for (const ds of lister(ctx, 'DaemonSet').list()) workloads.get('DaemonSet')!.add(nameKey(ds.metadata.namespace, ds.metadata.name));
      nodes.add('all');
      scheduler.add('pending');
      podGC.add('orphans');
    });
    on('Deployment', (type, d) => {
      if (type === 'DELETED') gc.add('orphans');
      else deployments.add(nameKey(d!.metadata.namespace, (d as Deployment).metadata.name));
    });
    for (const [kind, q] of workloads) {
      on(kind, (type, o) => {
        if (type === 'DELETED') gc.add('orphans');
        else q.add(nameKey(o!.metadata.namespace, o!.metadata.name));
        // A ReplicaSet's change (its status, its deletion) is its Deployment's too.
        if (kind === 'ReplicaSet') for (const name of deploymentsFor(ctx, o as ReplicaSet)) deployments.add(nameKey(o!.metadata.namespace, name));
      });
    }
    on('Pod', (type, o) => {
      const pod = o as Pod;
      const owner = controllerOf(pod);
      if (owner) workloads.get(owner.kind)?.add(nameKey(pod.metadata.namespace, owner.name));
      if (!pod.spec.nodeName && type !== 'DELETED') scheduler.add('pending');
      if (pod.spec.nodeName && type !== 'DELETED' && !lister(ctx, 'Node').get(undefined, pod.spec.nodeName)) podGC.add('orphans');
      if (type === 'DELETED' || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') scheduler.add('pending');
      for (const name of deploymentsFor(ctx, pod)) deployments.add(nameKey(pod.metadata.namespace, name));
      for (const name of servicesFor(ctx, pod)) slices.add(nameKey(pod.metadata.namespace, name));
    });
    on('Service', (_type, o) => slices.add(nameKey(o!.metadata.namespace, o!.metadata.name)));
    on('Namespace', (type, o) => {
      if (o!.metadata.deletionTimestamp) namespaces.add(o!.metadata.name);
      else if (type !== 'DELETED') serviceAccounts.add(o!.metadata.name);
    });
    on('ServiceAccount', (type, o) => {
      if (type === 'DELETED' && o!.metadata.name === 'default') serviceAccounts.add(o!.metadata.namespace ?? '');
    });
    // ownerReferences of any kind: Foreground deletion, and dependents whose owners are all gone.
    this.stops.push(startGarbageCollector(ctx, opts.log));

    this.resync = () => {
      eventTTL.add('expire');
      nodes.add('all');
      scheduler.add('pending');
      gc.add('orphans');
      podGC.add('orphans');
      for (const d of lister(ctx, 'Deployment').list()) deployments.add(nameKey(d.metadata.namespace, d.metadata.name));
      for (const [kind, q] of workloads) for (const o of lister(ctx, kind).list()) q.add(nameKey(o.metadata.namespace, o.metadata.name));
      for (const svc of lister(ctx, 'Service').list()) slices.add(nameKey(svc.metadata.namespace, svc.metadata.name));
      for (const ns of lister(ctx, 'Namespace').list()) (ns.metadata.deletionTimestamp ? namespaces : serviceAccounts).add(ns.metadata.name);
    };
    await ctx.informers.start();
    if (this.stopped) return;
    this.resync();
    this.timer = setInterval(() => this.resync?.(), opts.resyncMs ?? 10_000);
    this.timer.unref();
  }

  private resync?: () => void;
  private resyncPending = false;

  /** After an informer (re)listed: everything once more, on a later turn (all informers list at start). */
  private resyncSoon(): void {
    if (this.resyncPending || !this.timer) return;
    this.resyncPending = true;
    setImmediate(() => {
      this.resyncPending = false;
      if (!this.stopped) this.resync?.();
    });
  }

  private queue(handle: (key: string) => Promise<Requeue | void> | Requeue | void, onError: (key: string, e: unknown) => void): WorkQueue {
    const q = new WorkQueue(handle, { onError });
    this.queues.push(q);
    return q;
  }

  async idle(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.idle()));
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const s of this.stops) s();
    for (const q of this.queues) q.stop();
    if (!this.opts.informers) this.ctx.informers.stop();
  }
}
