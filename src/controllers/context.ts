// What every controller works with, as kube-controller-manager's ControllerContext: a client
// of the API (the ObjectClient seam: in process, or over the REST API) for writes, and the
// shared informers for reads (listers and their indexes: pods by owner, by node, unscheduled;
// ReplicaSets by owner; slices by Service; Services selecting pods by namespace). Controllers
// never read the API server's store: what they know is what their informers heard.

import { RESOURCES, resourceOfKind, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { INDEXES } from '../apiserver/indexes.ts';
import { SharedInformers, type IndexDefs, type Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';

export interface ControllerContext {
  client: ObjectClient;
  informers: SharedInformers;
}

/** The resource of a kind (the client's first argument). */
export const rt = (kind: string): ResourceType => resourceOfKind(kind);

/** The lister of a kind (its shared informer). */
export function lister<T extends KubeObject>(ctx: ControllerContext, kind: string): Informer<T> {
  return ctx.informers.of<T>(kind);
}

/**
 * The indexes the controllers read (the store's own definitions, indexes.ts), and only those:
 * each costs every event of its kind (10k Services: the admission's clusterIP and nodePort
 * indexes are none of a controller's business).
 */
export const CONTROLLER_INDEXES: IndexDefs = {
  Pod: { nodeName: INDEXES.Pod!.nodeName!, unscheduled: INDEXES.Pod!.unscheduled!, owner: INDEXES.Pod!.owner! },
  ReplicaSet: { owner: INDEXES.ReplicaSet!.owner! },
  EndpointSlice: { service: INDEXES.EndpointSlice!.service! },
  Service: { selecting: INDEXES.Service!.selecting! },
};

/** Every kind a controller reads: the garbage collector reads them all (but Events, which own nothing). */
export const INFORMED_KINDS = RESOURCES.map((r) => r.kind).filter((k) => k !== 'Event');

/** A context whose informers (every kind the controllers read) have listed and are watching. */
export async function startContext(client: ObjectClient, log: (line: string) => void = () => {}): Promise<ControllerContext & { stop(): void }> {
  const informers = new SharedInformers(client, log, CONTROLLER_INDEXES);
  for (const kind of INFORMED_KINDS) informers.of(kind);
  await informers.start();
  return { client, informers, stop: () => informers.stop() };
}
