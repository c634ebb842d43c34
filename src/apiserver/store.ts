// The control plane's object store: Kubernetes-shaped objects in SQLite (better-sqlite3),
// with resourceVersions, optimistic concurrency and list+watch; read from memory (cache.ts).
// Every write is one SQLite transaction that bumps the cluster-wide resourceVersion and
// appends a watch event to an in-memory log; a watcher that reconnects with the last
// resourceVersion it saw misses nothing, as long as that version is still in the log —
// otherwise (and after a restart) it gets 410 Gone and relists, as Kubernetes clients do.

import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import type { KubeObject } from '../api/types.ts';
import { RESOURCES } from '../api/resources.ts';
import { ObjectCache } from './cache.ts';
import { StatusError } from './status.ts';
import { INDEXES } from './indexes.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: EventType;
  object: KubeObject;
  /** The object as JSON text, when the store has it (it wrote it): watch streams send it as it is. */
  text?: string;
}

export type Reason = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Gone' | 'Invalid' | 'Forbidden';
const HTTP_CODE: Record<Reason, number> = { NotFound: 404, AlreadyExists: 409, Conflict: 409, Gone: 410, Invalid: 422, Forbidden: 403 };

/** A failed store operation, shaped like a Kubernetes Status. */
/** How the API server names a kind's resource in its messages: pods, deployments.apps. */
function resourceName(kind: string): string {
  const rt = RESOURCES.find((r) => r.kind === kind);
  return rt ? (rt.group ? `${rt.plural}.${rt.group}` : rt.plural) : kind.toLowerCase();
}

export class StoreError extends StatusError {
  override name = 'StoreError';
  declare readonly reason: Reason;
  constructor(reason: Reason, message: string) {
    super(HTTP_CODE[reason], reason, message);
  }
}

export interface Key {
  kind: string;
  namespace?: string;
  name: string;
}

type Listener = (event: WatchEvent, rv: number) => void;

export interface StoreOptions {
  /** How many events the log keeps for watchers that resume (older ones get 410 Gone). */
  eventLogSize?: number;
}

export class Store {
  private readonly db: Database.Database;
  private readonly listeners = new Set<{ kind: string; namespace?: string; fn: Listener }>();
  /**
   * The newest committed events (at most eventLogSize, in memory, as kube-apiserver's watch
   * cache): a watcher that resumes from a resourceVersion gets what it missed from here, or
   * 410 Gone and lists again. Objects are what the cache holds: the log costs references.
   */
  private readonly log: Array<[WatchEvent, number]> = [];
  /** Events of the running transaction, delivered after it commits. */
  private readonly pending: Array<[WatchEvent, number]> = [];
  /** Committed events not yet delivered, in resourceVersion order. */
  private readonly outbox: Array<[WatchEvent, number]> = [];
  private delivering = false;

  private readonly eventLogSize: number;
  /** Every object, parsed once and indexed: reads never go to SQLite (cache.ts). */
  private readonly cache = new ObjectCache(INDEXES);
  /** The newest resourceVersion: events are numbered here, one writer at a time. */
  private rv = 0;

  constructor(path: string, opts: StoreOptions = {}) {
    this.eventLogSize = opts.eventLogSize ?? 10_000;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, namespace, name));
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
    // The numbering goes on where it stopped (stores of earlier versions kept it in an events table).
    const kept = (this.stmt("SELECT value FROM meta WHERE key = 'rv'").get() as { value: number } | undefined)?.value ?? 0;
    const legacy = this.db.prepare("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'").get() ? ((this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined)?.seq ?? 0) : 0;
    const newest = (this.stmt('SELECT MAX(rv) AS rv FROM objects').get() as { rv: number | null }).rv ?? 0;
    this.rv = Math.max(kept, legacy, newest);
    for (const row of this.stmt('SELECT namespace, name, body FROM objects').iterate() as Iterable<{ namespace: string; name: string; body: string }>) {
      const obj = JSON.parse(row.body) as KubeObject;
      this.cache.set(obj.kind, row.namespace, row.name, obj, false);
    }
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once, reused: preparing costs more than running these small statements. */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  close(): void {
    this.db.close();
  }

  /** How many objects the store holds. */
  countObjects(): number {
    return (this.stmt('SELECT COUNT(*) AS n FROM objects').get() as { n: number }).n;
  }

  /** How many objects of a kind the store holds. */
  count(kind: string): number {
    return this.cache.count(kind);
  }

  /** The newest resourceVersion (0 for an empty store). */
  currentRV(): number {
    return this.rv;
  }

  /** An object (frozen: copy it to change it). */
  get(key: Key): KubeObject {
    const obj = this.tryGet(key);
    // The API server's words, which kubectl prints as they come: pods "x" not found, deployments.apps "y" not found.
    if (!obj) throw new StoreError('NotFound', `${resourceName(key.kind)} ${JSON.stringify(key.name)} not found`);
    return obj;
  }

  tryGet(key: Key): KubeObject | undefined {
    return this.cache.get(key.kind, key.namespace ?? '', key.name);
  }

  /** Objects of a kind (in one namespace, or all) by namespace and name, with the resourceVersion to watch from. */
  list(kind: string, namespace?: string): { items: KubeObject[]; resourceVersion: number } {
    const items = this.cache.list(kind, namespace);
    items.sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
    return { items, resourceVersion: this.rv };
  }

  /** Objects an index holds under `value` (indexes.ts), in no particular order. */
  byIndex(kind: string, index: string, value: string): KubeObject[] {
    return this.cache.byIndex(kind, index, value);
  }

  /** The values an index holds and how many objects each. */
  indexValues(kind: string, index: string): Map<string, number> {
    return this.cache.indexValues(kind, index);
  }

  /** A list's items as the JSON text stored, by namespace and name, for the API server (no parse, no stringify). */
  listText(kind: string, namespace?: string): { items: string[]; resourceVersion: number } {
    const rows = (namespace === undefined
      ? this.stmt('SELECT body FROM objects WHERE kind = ? ORDER BY namespace, name').all(kind)
      : this.stmt('SELECT body FROM objects WHERE kind = ? AND namespace = ? ORDER BY name').all(kind, namespace)) as Array<{ body: string }>;
    return { items: rows.map((r) => r.body), resourceVersion: this.rv };
  }

  /**
   * Pods that hold a place on a node: all but those that ran to completion (Succeeded,
   * Failed), counting this transaction's writes (the cache's `active` index).
   */
  countActivePods(): number {
    return this.cache.indexCount('Pod', 'active', '');
  }

  create(obj: KubeObject): KubeObject {
    return this.write(() => {
      const key = keyOf(obj);
      if (this.tryGet(key)) throw new StoreError('AlreadyExists', `${resourceName(obj.kind)} ${JSON.stringify(key.name)} already exists`);
      const stored: KubeObject = {
        ...obj,
        metadata: { ...obj.metadata, uid: obj.metadata.uid ?? randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), generation: 1 },
      };
      return this.commit('ADDED', stored);
    });
  }

  /**
   * Replaces an object. When the caller sends metadata.resourceVersion it must be current
   * (optimistic concurrency, 409 Conflict otherwise). Spec changes bump generation.
   */
  update(obj: KubeObject): KubeObject {
    return this.write(() => {
      const current = this.get(keyOf(obj));
      const sent = obj.metadata.resourceVersion;
      if (sent && sent !== current.metadata.resourceVersion) {
        throw new StoreError('Conflict', `Operation cannot be fulfilled on ${obj.kind.toLowerCase()} ${JSON.stringify(obj.metadata.name)}: the object has been modified; please apply your changes to the latest version and try again`);
      }
      const specChanged = JSON.stringify(obj.spec) !== JSON.stringify(current.spec);
      const stored: KubeObject = {
        ...obj,
        metadata: {
          ...obj.metadata,
          uid: current.metadata.uid,
          creationTimestamp: current.metadata.creationTimestamp,
          generation: (current.metadata.generation ?? 1) + (specChanged ? 1 : 0),
        },
      };
      return this.commit('MODIFIED', stored);
    });
  }

  /** Reads, changes and writes an object in one transaction. */
  mutate(key: Key, change: (obj: KubeObject) => KubeObject): KubeObject {
    return this.write(() => this.update(change(this.get(key))));
  }

  delete(key: Key): KubeObject {
    return this.write(() => {
      return this.commit('DELETED', this.get(key), false);
    });
  }

  /**
   * Calls `fn` for every event of `kind` (in `namespace`, or all) after resourceVersion
   * `since`: first those already in the log, then live ones. Returns the function that stops it.
   */
  watch(kind: string, namespace: string | undefined, since: number, fn: Listener): () => void {
    const oldest = this.log.length ? this.log[0]![1] : this.rv + 1;
    if (since > 0 && since < oldest - 1) throw new StoreError('Gone', `too old resource version: ${since} (${oldest - 1})`);
    // The first event after `since` (the log is in resourceVersion order).
    let lo = 0;
    for (let hi = this.log.length; lo < hi; ) {
      const mid = (lo + hi) >> 1;
      if (this.log[mid]![1] <= since) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; since > 0 && i < this.log.length; i++) {
      const [e, rv] = this.log[i]!;
      if (e.object.kind === kind && (namespace === undefined || (e.object.metadata.namespace ?? '') === namespace)) fn(e, rv);
    }
    const listener = { kind, namespace, fn };
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs writes in one transaction (nested calls join it); watchers hear of them only once it has committed. */
  write<T>(fn: () => T): T {
    const outer = !this.db.inTransaction;
    const mark = this.pending.length;
    const cacheMark = this.cache.mark();
    const rvMark = this.rv;
    let result: T;
    // Nested calls run in a savepoint (statements prepared once: a transaction wrapper per
    // call cost more than the writes in a 20,000-object apply).
    this.stmt(outer ? 'BEGIN' : 'SAVEPOINT kw').run();
    try {
      result = fn();
      if (outer && this.rv !== rvMark) this.stmt("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)").run(this.rv);
      this.stmt(outer ? 'COMMIT' : 'RELEASE kw').run();
    } catch (e) {
      if (this.db.inTransaction) {
        if (outer) this.stmt('ROLLBACK').run();
        else {
          this.stmt('ROLLBACK TO kw').run();
          this.stmt('RELEASE kw').run();
        }
      }
      // Rolled back (the whole transaction, or just this savepoint): so are the cache and the numbering.
      this.pending.length = mark;
      this.cache.rollback(cacheMark);
      this.rv = rvMark;
      throw e;
    }
    if (outer) {
      this.cache.commit();
      for (const e of this.pending) this.log.push(e);
      if (this.log.length > 2 * this.eventLogSize) this.log.splice(0, this.log.length - this.eventLogSize);
      this.outbox.push(...this.pending.splice(0));
      this.deliver();
    }
    return result;
  }

  /**
   * Hands committed events to watchers in resourceVersion order. A watcher that writes
   * while it is being told of an event does not jump the queue: its events wait until
   * every watcher has heard of the earlier ones.
   */
  private deliver(): void {
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let next = this.outbox.shift(); next; next = this.outbox.shift()) {
        const [event, rv] = next;
        this.deliverTo(event, rv);
        delete event.text; // the log keeps the object, not a second copy of it as text
      }
    } finally {
      this.delivering = false;
    }
  }

  private deliverTo(event: WatchEvent, rv: number): void {
    for (const l of [...this.listeners]) {
      if (l.kind !== event.object.kind || (l.namespace !== undefined && l.namespace !== (event.object.metadata.namespace ?? ''))) continue;
      try {
        l.fn(event, rv);
      } catch (e) {
        // One watcher's bug must not keep the event from the others, nor undo a committed write.
        process.emitWarning(`watcher of ${l.kind} failed on ${event.type} ${event.object.metadata.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Writes one object (or its deletion, `keep` false) with the next resourceVersion, and logs the event; inside write() only. */
  private commit(type: EventType, obj: KubeObject, keep = true): KubeObject {
    const key = keyOf(obj);
    const ns = key.namespace ?? '';
    const rv = ++this.rv;
    const stored: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    const text = JSON.stringify(stored);
    if (keep) this.stmt('INSERT OR REPLACE INTO objects (kind, namespace, name, rv, body) VALUES (?, ?, ?, ?, ?)').run(obj.kind, ns, key.name, rv, text);
    else this.stmt('DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?').run(obj.kind, ns, key.name);
    this.cache.set(obj.kind, ns, key.name, keep ? stored : undefined, true);
    this.pending.push([{ type, object: stored, text }, rv]);
    return stored;
  }
}

export function keyOf(obj: KubeObject): Key {
  if (!obj?.kind || typeof obj.metadata?.name !== 'string' || !obj.metadata.name) {
    throw new StoreError('Invalid', `object of kind ${JSON.stringify(obj?.kind)} needs metadata.name`);
  }
  return { kind: obj.kind, namespace: obj.metadata.namespace || undefined, name: obj.metadata.name };
}
