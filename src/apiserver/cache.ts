// The store's objects in memory, parsed once, with indexes: what client-go's shared
// informers and Indexer give each consumer, kept once for everything in the daemon's process
// (the API server, the controllers, the node agents, the proxiers). A read costs what it
// returns: an object by key, the objects of a namespace, or those an index holds under a
// value (pods by node, slices by Service...). Objects are frozen: a consumer that wants to
// change one copies it. Writes inside a transaction apply at once (reads see them) and are
// undone if the transaction rolls back.

import type { KubeObject } from '../api/types.ts';

/** An index: the values an object is found under (none: not indexed). */
export type IndexFn = (obj: KubeObject) => readonly string[];

/** kind -> index name -> how objects are indexed. */
export type IndexDefs = Record<string, Record<string, IndexFn>>;

const objectKey = (namespace: string, name: string) => (namespace ? `${namespace}/${name}` : name);

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}

class KindCache {
  /** namespace ('' for cluster-scoped) -> name -> object. */
  readonly byNamespace = new Map<string, Map<string, KubeObject>>();
  /** index name -> value -> key -> object. */
  readonly indexes = new Map<string, { fn: IndexFn; values: Map<string, Map<string, KubeObject>> }>();
  size = 0;

  constructor(defs: Record<string, IndexFn> = {}) {
    for (const [name, fn] of Object.entries(defs)) this.indexes.set(name, { fn, values: new Map() });
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.byNamespace.get(namespace)?.get(name);
  }

  put(namespace: string, name: string, obj: KubeObject | undefined): KubeObject | undefined {
    let names = this.byNamespace.get(namespace);
    const before = names?.get(name);
    const key = objectKey(namespace, name);
    if (before) this.unindex(key, before);
    if (obj) {
      if (!names) this.byNamespace.set(namespace, (names = new Map()));
      names.set(name, obj);
      this.index(key, obj);
    } else if (names) {
      names.delete(name);
      if (!names.size) this.byNamespace.delete(namespace);
    }
    this.size += (obj ? 1 : 0) - (before ? 1 : 0);
    return before;
  }

  private index(key: string, obj: KubeObject): void {
    for (const { fn, values } of this.indexes.values()) {
      for (const v of fn(obj)) {
        let m = values.get(v);
        if (!m) values.set(v, (m = new Map()));
        m.set(key, obj);
      }
    }
  }

  private unindex(key: string, obj: KubeObject): void {
    for (const { fn, values } of this.indexes.values()) {
      for (const v of fn(obj)) {
        const m = values.get(v);
        m?.delete(key);
        if (m && !m.size) values.delete(v);
      }
    }
  }
}

export class ObjectCache {
  private readonly kinds = new Map<string, KindCache>();
  /** Writes of the running transaction, newest last, to undo on a rollback. */
  private readonly undo: Array<{ kind: string; namespace: string; name: string; before: KubeObject | undefined }> = [];

  /** `freeze` false: objects are kept as given (an informer's consumers may own what they read). */
  constructor(private readonly defs: IndexDefs = {}, private readonly opts: { freeze?: boolean } = {}) {}

  private kind(kind: string): KindCache {
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, (k = new KindCache(this.defs[kind])));
    return k;
  }

  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.kinds.get(kind)?.get(namespace, name);
  }

  /** Objects of a kind, in one namespace or all, in no particular order. */
  list(kind: string, namespace?: string): KubeObject[] {
    const k = this.kinds.get(kind);
    if (!k) return [];
    if (namespace !== undefined) return [...(k.byNamespace.get(namespace)?.values() ?? [])];
    const out: KubeObject[] = [];
    for (const names of k.byNamespace.values()) for (const o of names.values()) out.push(o);
    return out;
  }

  /** Objects an index holds under `value`. */
  byIndex(kind: string, index: string, value: string): KubeObject[] {
    const i = this.kinds.get(kind)?.indexes.get(index);
    if (!i && !this.defs[kind]?.[index]) throw new Error(`no index ${index} on ${kind}`);
    return [...(i?.values.get(value)?.values() ?? [])];
  }

  /** The values an index holds, with how many objects each. */
  indexValues(kind: string, index: string): Map<string, number> {
    const i = this.kinds.get(kind)?.indexes.get(index);
    return new Map([...(i?.values ?? [])].map(([v, m]) => [v, m.size]));
  }

  /** How many objects an index holds under `value`. */
  indexCount(kind: string, index: string, value: string): number {
    return this.kinds.get(kind)?.indexes.get(index)?.values.get(value)?.size ?? 0;
  }

  /** Forgets every object of a kind (an informer's relist). */
  clear(kind: string): void {
    this.kinds.delete(kind);
  }

  count(kind: string): number {
    return this.kinds.get(kind)?.size ?? 0;
  }

  /** Puts an object (frozen) or removes it (undefined); remembered for undo while `inTransaction`. */
  set(kind: string, namespace: string, name: string, obj: KubeObject | undefined, inTransaction: boolean): void {
    const before = this.kind(kind).put(namespace, name, obj && this.opts.freeze !== false ? deepFreeze(obj) : obj);
    if (inTransaction) this.undo.push({ kind, namespace, name, before });
  }

  /** How many writes the running transaction has made (a savepoint's mark). */
  mark(): number {
    return this.undo.length;
  }

  /** Undoes the writes made since `mark`, newest first. */
  rollback(mark: number): void {
    while (this.undo.length > mark) {
      const u = this.undo.pop()!;
      this.kind(u.kind).put(u.namespace, u.name, u.before);
    }
  }

  /** The transaction committed: nothing to undo any more. */
  commit(): void {
    this.undo.length = 0;
  }
}
