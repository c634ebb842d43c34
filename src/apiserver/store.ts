// The control plane's object store: Kubernetes-shaped objects in SQLite (better-sqlite3),
// with resourceVersions, optimistic concurrency and list+watch. Every write is one SQLite
// transaction that bumps the cluster-wide resourceVersion and appends a watch event; a
// watcher that reconnects with the last resourceVersion it saw misses nothing, as long as
// that version is still in the (compacted) event log — otherwise it gets 410 Gone and
// relists, as Kubernetes clients do.

import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>;
  deletionGracePeriodSeconds?: number;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: EventType;
  object: KubeObject;
}

export type Reason = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Gone' | 'Invalid' | 'Forbidden';
const HTTP_CODE: Record<Reason, number> = { NotFound: 404, AlreadyExists: 409, Conflict: 409, Gone: 410, Invalid: 422, Forbidden: 403 };

/** A failed store operation, shaped like a Kubernetes Status. */
export class StoreError extends Error {
  override name = 'StoreError';
  readonly code: number;
  constructor(readonly reason: Reason, message: string) {
    super(message);
    this.code = HTTP_CODE[reason];
  }

  toStatus(): object {
    return { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: this.message, reason: this.reason, code: this.code };
  }
}

export interface Key {
  kind: string;
  namespace?: string;
  name: string;
}

type Listener = (event: WatchEvent, rv: number) => void;

interface Row {
  rv: number;
  body: string;
}

export interface StoreOptions {
  /** How many events the log keeps for watchers that resume (older ones get 410 Gone). */
  eventLogSize?: number;
}

export class Store {
  private readonly db: Database.Database;
  private readonly listeners = new Set<{ kind: string; namespace?: string; fn: Listener }>();
  /** Events of the running transaction, delivered after it commits. */
  private readonly pending: Array<[WatchEvent, number]> = [];
  /** Committed events not yet delivered, in resourceVersion order. */
  private readonly outbox: Array<[WatchEvent, number]> = [];
  private delivering = false;

  private readonly eventLogSize: number;

  constructor(path: string, opts: StoreOptions = {}) {
    this.eventLogSize = opts.eventLogSize ?? 10_000;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, namespace, name));
      CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, namespace TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);
    `);
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

  /** The newest resourceVersion (0 for an empty store). */
  currentRV(): number {
    return (this.stmt("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined)?.seq ?? 0;
  }

  get(key: Key): KubeObject {
    const row = this.stmt('SELECT rv, body FROM objects WHERE kind = ? AND namespace = ? AND name = ?').get(key.kind, key.namespace ?? '', key.name) as Row | undefined;
    if (!row) throw new StoreError('NotFound', `${key.kind.toLowerCase()} ${JSON.stringify(key.name)} not found${key.namespace ? ` in namespace ${key.namespace}` : ''}`);
    return JSON.parse(row.body) as KubeObject;
  }

  tryGet(key: Key): KubeObject | undefined {
    try {
      return this.get(key);
    } catch (e) {
      if (e instanceof StoreError && e.reason === 'NotFound') return undefined;
      throw e;
    }
  }

  /** Objects of a kind (in one namespace, or all), with the resourceVersion to watch from. */
  list(kind: string, namespace?: string): { items: KubeObject[]; resourceVersion: number } {
    return this.db.transaction(() => {
      const rows = (namespace === undefined
        ? this.stmt('SELECT rv, body FROM objects WHERE kind = ? ORDER BY namespace, name').all(kind)
        : this.stmt('SELECT rv, body FROM objects WHERE kind = ? AND namespace = ? ORDER BY name').all(kind, namespace)) as Row[];
      return { items: rows.map((r) => JSON.parse(r.body) as KubeObject), resourceVersion: this.currentRV() };
    })();
  }

  /**
   * Pods that hold a place on a node: all but those that ran to completion (Succeeded,
   * Failed), counting this transaction's writes. Kept in memory from the committed writes
   * (read once at start): counting them in SQL parsed every pod at every pod creation.
   */
  countActivePods(): number {
    const active = this.activePods ??= new Set((this.stmt("SELECT namespace || '/' || name AS key FROM objects WHERE kind = 'Pod' AND coalesce(json_extract(body, '$.status.phase'), '') NOT IN ('Succeeded', 'Failed')").all() as Array<{ key: string }>).map((r) => r.key));
    if (!this.pending.some(([e]) => e.object.kind === 'Pod')) return active.size;
    const now = new Set(active);
    for (const [e] of this.pending) trackPod(now, e);
    return now.size;
  }

  private activePods?: Set<string>;

  create(obj: KubeObject): KubeObject {
    return this.write(() => {
      const key = keyOf(obj);
      if (this.tryGet(key)) throw new StoreError('AlreadyExists', `${obj.kind.toLowerCase()} ${JSON.stringify(key.name)} already exists${key.namespace ? ` in namespace ${key.namespace}` : ''}`);
      const stored: KubeObject = {
        ...obj,
        metadata: { ...obj.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), generation: 1 },
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
      const current = this.get(key);
      this.stmt('DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?').run(key.kind, key.namespace ?? '', key.name);
      return this.commit('DELETED', current, false);
    });
  }

  /**
   * Calls `fn` for every event of `kind` (in `namespace`, or all) after resourceVersion
   * `since`: first those already in the log, then live ones. Returns the function that stops it.
   */
  watch(kind: string, namespace: string | undefined, since: number, fn: Listener): () => void {
    const backlog = this.db
      .prepare(`SELECT rv, type, body FROM events WHERE rv > ? AND kind = ?${namespace === undefined ? '' : ' AND namespace = ?'} ORDER BY rv`)
      .all(...(namespace === undefined ? [since, kind] : [since, kind, namespace])) as Array<Row & { type: EventType }>;
    const oldest = (this.stmt('SELECT MIN(rv) AS rv FROM events').get() as { rv: number | null }).rv;
    if (since > 0 && oldest !== null && since < oldest - 1) throw new StoreError('Gone', `too old resource version: ${since} (${oldest - 1})`);
    for (const e of backlog) fn({ type: e.type, object: JSON.parse(e.body) as KubeObject }, e.rv);
    const listener = { kind, namespace, fn };
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs writes in one transaction (nested calls join it); watchers hear of them only once it has committed. */
  write<T>(fn: () => T): T {
    const outer = !this.db.inTransaction;
    const mark = this.pending.length;
    let result: T;
    try {
      result = this.db.transaction(fn)(); // nested calls run in a savepoint
    } catch (e) {
      this.pending.length = mark; // rolled back (the whole transaction, or just this savepoint)
      throw e;
    }
    if (outer) {
      if (this.activePods) for (const [e] of this.pending) trackPod(this.activePods, e);
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
    } finally {
      this.delivering = false;
    }
  }

  private commit(type: EventType, obj: KubeObject, keep = true): KubeObject {
    const key = keyOf(obj);
    const ns = key.namespace ?? '';
    const info = this.stmt('INSERT INTO events (kind, namespace, type, body) VALUES (?, ?, ?, ?)').run(obj.kind, ns, type, '');
    const rv = Number(info.lastInsertRowid);
    const stored: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    const body = JSON.stringify(stored);
    this.stmt('UPDATE events SET body = ? WHERE rv = ?').run(body, rv);
    if (keep) this.stmt('INSERT OR REPLACE INTO objects (kind, namespace, name, rv, body) VALUES (?, ?, ?, ?, ?)').run(obj.kind, ns, key.name, rv, body);
    // Compact now and then, not on every write.
    if (rv % Math.min(1000, this.eventLogSize) === 0) this.stmt('DELETE FROM events WHERE rv <= ?').run(rv - this.eventLogSize);
    this.pending.push([{ type, object: stored }, rv]);
    return stored;
  }
}

/** Updates the keys of active pods with one committed event. */
function trackPod(active: Set<string>, e: WatchEvent): void {
  if (e.object.kind !== 'Pod') return;
  const key = `${e.object.metadata.namespace ?? ''}/${e.object.metadata.name}`;
  const phase = (e.object.status as { phase?: string } | undefined)?.phase;
  if (e.type === 'DELETED' || phase === 'Succeeded' || phase === 'Failed') active.delete(key);
  else active.add(key);
}

export function keyOf(obj: KubeObject): Key {
  if (!obj?.kind || typeof obj.metadata?.name !== 'string' || !obj.metadata.name) {
    throw new StoreError('Invalid', `object of kind ${JSON.stringify(obj?.kind)} needs metadata.name`);
  }
  return { kind: obj.kind, namespace: obj.metadata.namespace || undefined, name: obj.metadata.name };
}
