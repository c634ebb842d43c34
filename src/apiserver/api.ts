// The API server's rules on top of the store, shared by the REST adapter and by the
// components that run in the daemon's process: validation and defaults on every write,
// namespaces that must exist (and stop taking objects while they terminate), the status
// subresource, graceful pod deletion (the node agent finishes it), and selectors on lists.

import { randomUUID } from 'node:crypto';
import { matches, parseSelector } from '../api/labels.ts';
import { apiVersionOf, qualifiedKind, resourceOfKind, RESOURCES } from '../api/resources.ts';
import type { Ingress, IngressClass, Job, KubeObject, Namespace, Node, Pod, Secret, Service } from '../api/types.ts';
import { withGeneratedSelector } from '../api/job-selector.ts';
import { now } from '../api/types.ts';
import { appliedObject, sameManifest, type ApplyResult } from '../api/apply.ts';
import { freeGeneratedName, generateName } from '../api/names.ts';
import { formatErrors, statusCauses, validate, type FieldError } from '../api/validation.ts';
import { withDefaults } from '../api/defaults/index.ts';
import { rbacUpdateError } from '../api/rbac.ts';
import { admitService, ServiceInvalid, type Allocated } from './services.ts';
import { admitIngress, admitSecret } from './admission.ts';
import { Store, StoreError, keyOf, type Key, type WatchEvent } from './store.ts';

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface DeleteOptions {
  /** 0 removes a pod at once, without waiting for its node agent. */
  gracePeriodSeconds?: number;
}

export interface WriteOptions {
  /** Writes by kubewire's own components (node registration). */
  system?: boolean;
  /** The object is the caller's to give away (a request body, apply's copy): not copied again. */
  owned?: boolean;
}

/** The item of an apply that failed: its index, and the failure as the API reports it. */
export class ApplyError extends StoreError {
  override name = 'ApplyError';
  constructor(readonly index: number, cause: unknown) {
    super(cause instanceof StoreError ? cause.reason : 'Invalid', cause instanceof Error ? cause.message : String(cause));
  }

  override toStatus(): object {
    return { ...super.toStatus(), details: { index: this.index } };
  }
}

/** A 422 for an object that fails validation, with the causes kubectl and client libraries read. */
export class InvalidObjectError extends StoreError {
  override name = 'InvalidObjectError';
  constructor(private readonly obj: KubeObject, private readonly errors: FieldError[]) {
    super('Invalid', formatErrors(obj.kind, obj.metadata?.name, errors));
  }

  override toStatus(): object {
    const rt = RESOURCES.find((r) => r.kind === this.obj.kind);
    const name = typeof this.obj.metadata?.name === 'string' ? this.obj.metadata.name : '';
    return { ...super.toStatus(), details: { name, ...(rt?.group ? { group: rt.group } : {}), kind: this.obj.kind, causes: statusCauses(this.errors) } };
  }
}

function invalid(message: string): StoreError {
  return new StoreError('Invalid', message);
}

function fieldValue(obj: KubeObject, path: string): string | undefined {
  let v: unknown = obj;
  for (const p of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[p];
  return v === undefined || v === null ? undefined : String(v);
}

export function fieldSelectorMatcher(text: string | undefined): (obj: KubeObject) => boolean {
  if (!text) return () => true;
  const terms = text.split(',').map((t) => {
    const m = t.match(/^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$/);
    if (!m) throw invalid(`invalid field selector ${JSON.stringify(t)}: expected field=value or field!=value`);
    return { path: m[1]!, neg: m[2] === '!=', value: m[3]! };
  });
  return (obj) => terms.every((t) => ((fieldValue(obj, t.path) ?? '') === t.value) !== t.neg);
}

export function labelSelectorMatcher(text: string | undefined): (obj: KubeObject) => boolean {
  if (!text) return () => true;
  let selector;
  try {
    selector = parseSelector(text);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  return (obj) => matches(selector, obj.metadata.labels);
}

export interface ApiOptions {
  /** Where ClusterIPs come from. */
  serviceCIDR?: string;
  /** The cluster's pod limit (the nodes' maxPods summed): creations past it are refused, as by a pod quota. */
  podLimit?: { pods: number; why: string };
}

/** generateName collisions retried before giving up, as the API server does (KEP-4420). */
const GENERATE_NAME_TRIES = 8;

export class Api {
  readonly serviceCIDR: string;
  private readonly podLimit?: ApiOptions['podLimit'];

  constructor(readonly store: Store, opts: ApiOptions = {}) {
    this.serviceCIDR = opts.serviceCIDR ?? '10.96.0.0/12';
    this.podLimit = opts.podLimit;
  }

  /** A pod past the cluster's limit is refused as a ResourceQuota refuses it (403, exceeded quota). */
  private checkPodLimit(pod: KubeObject): void {
    const limit = this.podLimit;
    if (!limit) return;
    const used = this.store.countActivePods();
    if (used < limit.pods) return;
    const name = pod.metadata.name || (pod.metadata.generateName as string | undefined) || '';
    throw new StoreError('Forbidden', `pods ${JSON.stringify(name)} is forbidden: exceeded quota: cluster-pod-limit, requested: pods=1, used: pods=${used}, limited: pods=${limit.pods} (${limit.why})`);
  }

  /** Service admission: defaults and allocations, against what the other Services hold. */
  private admitService(svc: Service, current: Service | undefined): Service {
    // What the other Services hold, looked up in the store's indexes (not a list of every Service).
    const other = (s: KubeObject) => !current || s.metadata.namespace !== current.metadata.namespace || s.metadata.name !== current.metadata.name;
    const used: Allocated = {
      clusterIPs: { has: (ip) => this.store.byIndex('Service', 'clusterIP', ip).some(other) },
      nodePorts: { has: (port) => this.store.byIndex('Service', 'nodePort', String(port)).some(other) },
    };
    try {
      return admitService(svc, current, used, this.serviceCIDR);
    } catch (e) {
      if (e instanceof ServiceInvalid) throw invalid(e.message);
      throw e;
    }
  }

  get(key: Key): KubeObject {
    return this.store.get(key);
  }

  tryGet<T extends KubeObject = KubeObject>(key: Key): T | undefined {
    return this.store.tryGet(key) as T | undefined;
  }

  list(kind: string, namespace?: string, opts: ListOptions = {}): { items: KubeObject[]; resourceVersion: number } {
    const byLabel = labelSelectorMatcher(opts.labelSelector);
    const byField = fieldSelectorMatcher(opts.fieldSelector);
    // A pod's node, asked for by every node agent, is an index, not a scan.
    const node = kind === 'Pod' ? /^spec\.nodeName==?([^,!]+)$/.exec(opts.fieldSelector ?? '')?.[1] : undefined;
    if (node !== undefined) {
      const items = (this.store.byIndex('Pod', 'nodeName', node) as KubeObject[]).filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && byLabel(o));
      return { items, resourceVersion: this.store.currentRV() };
    }
    const res = this.store.list(kind, namespace);
    return { items: res.items.filter((o) => byLabel(o) && byField(o)), resourceVersion: res.resourceVersion };
  }

  watch(kind: string, namespace: string | undefined, since: number, fn: (e: WatchEvent, rv: number) => void): () => void {
    return this.store.watch(kind, namespace, since, fn);
  }

  private checkNamespace(obj: KubeObject): void {
    const rt = resourceOfKind(obj.kind);
    if (!rt.namespaced) {
      delete obj.metadata.namespace;
      return;
    }
    obj.metadata.namespace ||= 'default';
    const ns = this.store.tryGet({ kind: 'Namespace', name: obj.metadata.namespace }) as Namespace | undefined;
    if (!ns) throw new StoreError('NotFound', `namespaces ${JSON.stringify(obj.metadata.namespace)} not found`);
    if (ns.metadata.deletionTimestamp) throw new StoreError('Invalid', `${rt.singular} ${JSON.stringify(obj.metadata.name)} is forbidden: unable to create new content in namespace ${obj.metadata.namespace} because it is being terminated`);
  }

  private checkValid(obj: KubeObject): void {
    const errors = validate(obj);
    if (errors.length) throw new InvalidObjectError(obj, errors);
  }

  create<T extends KubeObject>(input: T, opts: WriteOptions = {}): T {
    // Upstream's defaults first, as the API server's decoding fills them in before validation.
    let obj = withDefaults(opts.owned ? input : structuredClone(input));
    const rt = resourceOfKind(obj.kind);
    obj.apiVersion = apiVersionOf(rt);
    const prefix = !obj.metadata?.name && typeof obj.metadata?.generateName === 'string' && obj.metadata.generateName ? obj.metadata.generateName : undefined;
    if (prefix) obj.metadata.name = generateName(prefix);
    keyOf(obj);
    // Clients may not set what the server owns. The uid is drawn before validation, as the
    // registry fills it in before the strategy's Validate (a Job's generated selector names it).
    for (const f of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'generation'] as const) delete obj.metadata[f];
    const uid = randomUUID();
    if (obj.kind === 'Job') obj = withGeneratedSelector(obj as unknown as Job, uid) as unknown as T;
    obj.metadata.uid = uid;
    this.checkValid(obj);
    if (obj.kind === 'Node' && !opts.system) throw invalid(`nodes are registered by the node agents (kubewire up --nodes N); node ${JSON.stringify(obj.metadata.name)} does not exist`);
    return this.store.write(() => {
      this.checkNamespace(obj);
      if (obj.kind === 'Pod') this.checkPodLimit(prefix ? { ...obj, metadata: { ...obj.metadata, name: '' } } : obj);
      // A generated name that is taken is drawn again (the random part is 5 of 27 letters: 14 million names).
      if (prefix && this.store.tryGet(keyOf(obj))) {
        const free = freeGeneratedName(prefix, (name) => Boolean(this.store.tryGet({ ...keyOf(obj), name })), GENERATE_NAME_TRIES);
        if (!free) throw new StoreError('AlreadyExists', `${rt.singular} ${JSON.stringify(obj.metadata.name)} already exists: ${GENERATE_NAME_TRIES + 1} names generated from ${JSON.stringify(prefix)} were all taken`);
        obj.metadata.name = free;
      }
      if (obj.kind === 'Pod') obj.status = { phase: 'Pending', ...(opts.system ? (obj.status as object) : {}) };
      else if (obj.kind === 'Namespace') obj.status = { phase: 'Active' };
      else if (!opts.system) delete obj.status;
      if (obj.kind === 'Service') return this.store.create(this.admitService(obj as unknown as Service, undefined)) as T;
      if (obj.kind === 'Secret') return this.store.create(admitSecret(obj as Secret)) as T;
      if (obj.kind === 'Ingress') return this.store.create(admitIngress(obj as Ingress, this.store.list('IngressClass').items as IngressClass[])) as T;
      return this.store.create(obj) as T;
    });
  }

  /** Replaces an object's metadata and spec (status is kept: it has its own subresource). */
  update<T extends KubeObject>(input: T, opts: WriteOptions = {}): T {
    const obj = withDefaults(opts.owned ? input : structuredClone(input));
    obj.apiVersion = apiVersionOf(resourceOfKind(obj.kind));
    return this.store.write(() => {
      const current = this.store.get(keyOf(obj));
      // The scheduler's binding is not the client's to undo: a manifest without nodeName keeps it.
      if (obj.kind === 'Pod' && obj.spec && !(obj as Pod).spec.nodeName && (current as Pod).spec.nodeName) (obj as Pod).spec.nodeName = (current as Pod).spec.nodeName;
      // Likewise node IPAM's podCIDR: relabelling a node from a manifest keeps it.
      if (obj.kind === 'Node' && !(obj as Node).spec?.podCIDR && (current as Node).spec?.podCIDR) obj.spec = { ...(obj as Node).spec, podCIDR: (current as Node).spec.podCIDR, podCIDRs: (current as Node).spec.podCIDRs };
      this.checkValid(obj);
      this.checkImmutable(current, obj);
      obj.status = current.status;
      obj.metadata = { ...obj.metadata, deletionTimestamp: current.metadata.deletionTimestamp, namespace: current.metadata.namespace };
      if (!obj.metadata.deletionTimestamp) delete obj.metadata.deletionTimestamp;
      if (!obj.metadata.namespace) delete obj.metadata.namespace;
      if (obj.kind === 'Service') return this.store.update(this.admitService(obj as unknown as Service, current as Service)) as T;
      if (obj.kind === 'Secret') return this.store.update(admitSecret(obj as Secret)) as T;
      return this.store.update(obj) as T;
    });
  }

  /** Writes only the status (the node agent's and controllers' subresource). */
  updateStatus<T extends KubeObject>(key: Key, status: unknown, resourceVersion?: string): T {
    return this.store.write(() => {
      const current = this.store.get(key);
      if (resourceVersion && resourceVersion !== current.metadata.resourceVersion) return this.store.update({ ...current, metadata: { ...current.metadata, resourceVersion } }) as T;
      if (JSON.stringify(current.status) === JSON.stringify(status)) return current as T;
      return this.store.update({ ...current, status }) as T;
    });
  }

  /** Reads, changes and writes in one transaction, through the rules of update(). */
  mutate<T extends KubeObject>(key: Key, change: (obj: T) => T | undefined): T {
    return this.store.write(() => {
      const current = this.store.get(key) as T;
      const next = change(structuredClone(current));
      if (!next || JSON.stringify(next) === JSON.stringify(current)) return current;
      const spec = this.update({ ...next, metadata: { ...next.metadata, resourceVersion: undefined } });
      return JSON.stringify(next.status) === JSON.stringify(current.status) ? spec : this.updateStatus<T>(key, next.status);
    });
  }

  private checkImmutable(current: KubeObject, next: KubeObject): void {
    const name = JSON.stringify(next.metadata.name);
    if (next.kind === 'Pod') {
      const a = current as Pod;
      const b = next as Pod;
      const strip = (p: Pod) => JSON.stringify({ ...p.spec, nodeName: undefined, containers: p.spec.containers.map((c) => ({ ...c, image: undefined })) });
      if (strip(a) !== strip(b)) throw invalid(`Pod ${name} is invalid: spec: Forbidden: pod updates may not change fields other than \`spec.containers[*].image\` and a first \`spec.nodeName\``);
      if (a.spec.nodeName && b.spec.nodeName !== a.spec.nodeName) throw invalid(`Pod ${name} is invalid: spec.nodeName: Forbidden: pod is already bound to node ${JSON.stringify(a.spec.nodeName)}`);
    }
    if (['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job'].includes(next.kind)) {
      const what = qualifiedKind(next.kind);
      const a = current.spec as Record<string, unknown>;
      const b = next.spec as Record<string, unknown>;
      if (JSON.stringify(a.selector) !== JSON.stringify(b.selector)) throw invalid(`${what} ${name} is invalid: spec.selector: Invalid value: field is immutable`);
      if (next.kind === 'StatefulSet') {
        const fixed = (s: Record<string, unknown>) => JSON.stringify({ ...s, replicas: undefined, ordinals: undefined, template: undefined, updateStrategy: undefined, persistentVolumeClaimRetentionPolicy: undefined, minReadySeconds: undefined });
        if (fixed(a) !== fixed(b)) throw invalid(`${what} ${name} is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden`);
      }
      if (next.kind === 'Job') {
        if (JSON.stringify(a.template) !== JSON.stringify(b.template)) throw invalid(`${what} ${name} is invalid: spec.template: Invalid value: field is immutable`);
        if (a.completions !== b.completions) throw invalid(`${what} ${name} is invalid: spec.completions: Invalid value: ${JSON.stringify(b.completions)}: field is immutable`);
      }
    }
    if (next.kind === 'IngressClass' && (current as IngressClass).spec.controller !== (next as IngressClass).spec.controller) {
      throw invalid(`IngressClass.networking.k8s.io ${name} is invalid: spec.controller: Invalid value: field is immutable`);
    }
    const rbac = rbacUpdateError(current, next);
    if (rbac) throw new InvalidObjectError(next, [rbac]);
    if (next.kind === 'Node') {
      const a = (current as Node).spec?.podCIDR;
      const b = (next as Node).spec?.podCIDR;
      if (a && a !== b) throw invalid(`Node ${name} is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid`);
    }
  }

  /**
   * Deletes, as Kubernetes does: a pod on a node is only marked (deletionTimestamp) and its
   * node agent removes it once its sandbox is gone; a namespace goes Terminating and the
   * namespace controller empties it first. Everything else goes at once.
   */
  delete(key: Key, opts: DeleteOptions = {}): KubeObject {
    return this.store.write(() => {
      const current = this.store.get(key);
      if (current.metadata.deletionTimestamp && opts.gracePeriodSeconds !== 0) return current;
      const graceful = (current.kind === 'Pod' && (current as Pod).spec.nodeName && opts.gracePeriodSeconds !== 0) || current.kind === 'Namespace';
      if (current.kind === 'Namespace' && ['default', 'kube-system', 'kube-public', 'kube-node-lease'].includes(key.name)) {
        throw new StoreError('Invalid', `namespace ${JSON.stringify(key.name)} is forbidden: this namespace may not be deleted`);
      }
      if (!graceful) return this.store.delete(key);
      const marked: KubeObject = { ...current, metadata: { ...current.metadata, deletionTimestamp: now() } };
      if (current.kind === 'Pod') marked.metadata.deletionGracePeriodSeconds = opts.gracePeriodSeconds ?? (current as Pod).spec.terminationGracePeriodSeconds ?? 30;
      if (current.kind === 'Namespace') marked.status = { phase: 'Terminating' };
      return this.store.update(marked);
    });
  }

  /**
   * kubectl apply for a whole manifest, in one transaction: each object created, or updated
   * when its manifest changed, or left alone; the first failure undoes them all and is
   * thrown as an ApplyError naming the item. Namespaces should come first in `items`.
   */
  apply(items: KubeObject[], dryRun = false): ApplyResult[] {
    const run = () =>
      items.map((input, index): ApplyResult => {
        try {
          if (!input || typeof input !== 'object' || !input.metadata || typeof input.metadata !== 'object') throw invalid('an object with kind and metadata is expected');
          const rt = resourceOfKind(input.kind);
          const namespace = rt.namespaced ? input.metadata.namespace || 'default' : undefined;
          const current = this.store.tryGet({ kind: rt.kind, namespace, name: input.metadata.name });
          const obj = appliedObject({ ...input, metadata: { ...input.metadata, ...(namespace ? { namespace } : {}) } }, current);
          if (current && sameManifest(current, obj)) return 'unchanged';
          if (current) this.update({ ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } }, { owned: true });
          else this.create(obj, { owned: true });
          return current ? 'configured' : 'created';
        } catch (e) {
          throw new ApplyError(index, e);
        }
      });
    return dryRun ? this.dryRun(run) : this.store.write(run);
  }

  /** Runs a write with every check, then rolls it back (?dryRun=All). */
  dryRun<T>(write: () => T): T {
    const rollback = new Error('dry run');
    let result: T | undefined;
    try {
      this.store.write(() => {
        result = write();
        throw rollback;
      });
    } catch (e) {
      if (e !== rollback) throw e;
    }
    return result as T;
  }

  /** Removes an object for good (the last step of a graceful deletion). */
  finalize(key: Key, uid?: string): void {
    this.store.write(() => {
      const current = this.store.tryGet(key);
      if (current && (!uid || current.metadata.uid === uid)) this.store.delete(key);
    });
  }
}
