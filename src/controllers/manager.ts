// kube-controller-manager and kube-scheduler of a kubewire cluster (node IPAM, Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job, EndpointSlice, namespace, GC, scheduler): each controller is a
// work queue fed by watches, plus a periodic resync (level-triggered: a missed event or a
// restart costs nothing but a little delay).

import type { Deployment, Pod, ReplicaSet } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
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

export interface ControllerOptions {
  /** The range node IPAM cuts podCIDRs from; none: nodes get no podCIDR (--allocate-node-cidrs=false, as on EKS). */
  clusterCIDR?: string;
  nodeCIDRMask: number;
  log: (line: string) => void;
  resyncMs?: number;
}

export class ControllerManager {
  private readonly stops: Array<() => void> = [];
  private readonly queues: WorkQueue[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly api: Api, private readonly opts: ControllerOptions) {}

  start(): void {
    const { api, opts } = this;
    const onError = (name: string) => (key: string, e: unknown) => opts.log(`${name} ${key}: ${e instanceof Error ? e.message : String(e)}`);
    const nodes = this.queue(() => (opts.clusterCIDR ? syncNodeCIDRs(api, opts.clusterCIDR, opts.nodeCIDRMask) : undefined), onError('node-ipam'));
    const schedulerEvents = new EventRecorder(api, 'default-scheduler');
    const scheduler = this.queue(() => (schedulePending(api, schedulerEvents) === BIND_BATCH ? 'now' : undefined), onError('scheduler'));
    const deploymentEvents = new EventRecorder(api, 'deployment-controller');
    const eventTTL = this.queue(() => void expireEvents(api), onError('event-ttl'));
    const gc = this.queue(() => void collectOrphans(api), onError('garbage-collector'));
    const orphanSince = new Map<string, number>();
    const podGCEvents = new EventRecorder(api, 'pod-garbage-collector');
    const podGC = this.queue((key) => {
      const again = collectPodsOfMissingNodes(api, orphanSince, podGCEvents);
      if (again !== undefined) podGC.addAfter(key, again + 50);
    }, onError('pod-garbage-collector'));
    const deployments = this.queue((key) => {
      const { namespace, name } = splitKey(key);
      return syncDeployment(api, namespace!, name, deploymentEvents);
    }, onError('deployment'));
    // ReplicaSets, StatefulSets, DaemonSets and Jobs: one queue each, keyed by namespace/name.
    const workloads = new Map(
      ([['ReplicaSet', syncReplicaSet, 'replicaset-controller'], ['StatefulSet', syncStatefulSet, 'statefulset-controller'], ['DaemonSet', syncDaemonSet, 'daemonset-controller'], ['Job', syncJob, 'job-controller']] as const).map(([kind, sync, component]) => {
        const events = new EventRecorder(api, component);
        const q: WorkQueue = this.queue((key) => {
          const { namespace, name } = splitKey(key);
          const again = sync(api, namespace!, name, events);
          if (typeof again !== 'number') return again;
          q.addAfter(key, again + 50);
          return undefined;
        }, onError(component.replace('-controller', '')));
        return [kind as string, q] as const;
      }),
    );
    const slices = this.queue((key) => {
      const { namespace, name } = splitKey(key);
      syncEndpointSlices(api, namespace!, name);
      syncEndpoints(api, namespace!, name);
    }, onError('endpointslice'));
    const serviceAccounts = this.queue((key) => ensureDefaultServiceAccount(api, key), onError('serviceaccount'));
    const namespaces = this.queue((key) => {
      if (!syncNamespace(api, key)) namespaces.addAfter(key, 500);
    }, onError('namespace'));

    // ownerReferences of any kind: Foreground deletion, and dependents whose owners are all gone.
    this.stops.push(startGarbageCollector(api, opts.log));
    this.stops.push(
      api.watch('Node', undefined, api.store.currentRV(), () => {
        for (const ds of api.store.list('DaemonSet').items) workloads.get('DaemonSet')!.add(nameKey(ds.metadata.namespace, ds.metadata.name));
        nodes.add('all');
        scheduler.add('pending');
        podGC.add('orphans');
      }),
      api.watch('Deployment', undefined, api.store.currentRV(), (e) => {
        const d = e.object as Deployment;
        if (e.type === 'DELETED') gc.add('orphans');
        else deployments.add(nameKey(d.metadata.namespace, d.metadata.name));
      }),
      ...[...workloads].map(([kind, q]) =>
        api.watch(kind, undefined, api.store.currentRV(), (e) => {
          if (e.type === 'DELETED') gc.add('orphans');
          else q.add(nameKey(e.object.metadata.namespace, e.object.metadata.name));
          // A ReplicaSet's change (its status, its deletion) is its Deployment's too.
          if (kind === 'ReplicaSet') for (const name of deploymentsFor(api, e.object as ReplicaSet)) deployments.add(nameKey(e.object.metadata.namespace, name));
        }),
      ),
      api.watch('Pod', undefined, api.store.currentRV(), (e) => {
        const pod = e.object as Pod;
        const owner = controllerOf(pod);
        if (owner) workloads.get(owner.kind)?.add(nameKey(pod.metadata.namespace, owner.name));
        if (!pod.spec.nodeName && e.type !== 'DELETED') scheduler.add('pending');
        if (pod.spec.nodeName && e.type !== 'DELETED' && !api.tryGet({ kind: 'Node', name: pod.spec.nodeName })) podGC.add('orphans');
        if (e.type === 'DELETED' || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') scheduler.add('pending');
        for (const name of deploymentsFor(api, pod)) deployments.add(nameKey(pod.metadata.namespace, name));
        for (const name of servicesFor(api, pod)) slices.add(nameKey(pod.metadata.namespace, name));
      }),
      api.watch('Service', undefined, api.store.currentRV(), (e) => slices.add(nameKey(e.object.metadata.namespace, e.object.metadata.name))),
      api.watch('Namespace', undefined, api.store.currentRV(), (e) => {
        if (e.object.metadata.deletionTimestamp) namespaces.add(e.object.metadata.name);
        else if (e.type !== 'DELETED') serviceAccounts.add(e.object.metadata.name);
      }),
      api.watch('ServiceAccount', undefined, api.store.currentRV(), (e) => {
        if (e.type === 'DELETED' && e.object.metadata.name === 'default') serviceAccounts.add(e.object.metadata.namespace ?? '');
      }),
    );
    const resync = () => {
      eventTTL.add('expire');
      nodes.add('all');
      scheduler.add('pending');
      gc.add('orphans');
      podGC.add('orphans');
      for (const d of api.list('Deployment').items) deployments.add(nameKey(d.metadata.namespace, d.metadata.name));
      for (const [kind, q] of workloads) for (const o of api.store.list(kind).items) q.add(nameKey(o.metadata.namespace, o.metadata.name));
      for (const svc of api.list('Service').items) slices.add(nameKey(svc.metadata.namespace, svc.metadata.name));
      for (const ns of api.list('Namespace').items) (ns.metadata.deletionTimestamp ? namespaces : serviceAccounts).add(ns.metadata.name);
    };
    resync();
    this.timer = setInterval(resync, opts.resyncMs ?? 10_000);
    this.timer.unref();
  }

  private queue(handle: (key: string) => Requeue | void, onError: (key: string, e: unknown) => void): WorkQueue {
    const q = new WorkQueue(handle, { onError });
    this.queues.push(q);
    return q;
  }

  async idle(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.idle()));
  }

  stop(): void {
    clearInterval(this.timer);
    for (const s of this.stops) s();
    for (const q of this.queues) q.stop();
  }
}
