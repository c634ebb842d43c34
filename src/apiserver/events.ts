// Events, as the kubelet, scheduler and controllers record them: one per (object, reason,
// message), counted when it repeats, storms combined and rate-limited as client-go does,
// kept an hour. They are what `describe` shows last and what a user reads first when a pod
// does not start.

import { randomBytes } from 'node:crypto';
import type { Event, KubeObject } from '../api/types.ts';
import { now } from '../api/types.ts';
import { resourceOfKind } from '../api/resources.ts';
import type { Api } from './api.ts';
import { LocalClient, type ObjectClient } from './objects.ts';

export const EVENT_TTL_MS = 60 * 60 * 1000;
const EVENTS = resourceOfKind('Event');

/** A new v1 Event about `obj` (count 1, now). */
export function eventFor(obj: KubeObject, type: Event['type'], reason: string, message: string, source: Event['source'], name: string): Event {
  const stamp = now();
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: obj.metadata.namespace ?? 'default' },
    involvedObject: { kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name, uid: obj.metadata.uid, apiVersion: obj.apiVersion },
    reason,
    message,
    type,
    count: 1,
    firstTimestamp: stamp,
    lastTimestamp: stamp,
    source,
  };
}

/** client-go's EventSourceObjectSpamFilter: per object (and type), a burst of 25 events, then one per 5 minutes. */
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60 * 1000;
/** client-go's EventAggregator: past 10 different messages of one reason in 10 minutes, one combined event. */
const AGGREGATE_AFTER = 10;
const AGGREGATE_WINDOW_MS = 10 * 60 * 1000;
export const COMBINED_PREFIX = '(combined from similar events): ';

interface Similar {
  messages: Set<string>;
  since: number;
}

/**
 * Records Events as client-go's recorder does: an identical event is a count on the first;
 * more than 10 different messages for one (object, type, reason) within 10 minutes become
 * one combined event that counts the rest; and an object gets at most 25 events of a type
 * at once, then one per 5 minutes. A storm (thousands of pods created, a crash loop) is one counted
 * Event, not thousands of objects.
 */
export class EventRecorder {
  /** Dedup key -> the event as last written, so that a repeat is a count on it, not a new object (client-go's cache). */
  private readonly seen = new Map<string, Event>();
  private readonly similar = new Map<string, Similar>();
  private readonly tokens = new Map<string, { left: number; at: number }>();
  private readonly client: ObjectClient;

  /** `target`: the client to write through (an Api in this process is wrapped in a LocalClient). */
  constructor(target: ObjectClient | Api, private readonly component: string, private readonly host?: string, private readonly clock: () => number = Date.now) {
    this.client = 'store' in target ? new LocalClient(target, { shareObjects: true }) : target;
  }

  /** Records the event; the write goes on in the background (an event is never worth waiting for, nor failing the work it describes). */
  record(obj: KubeObject, type: Event['type'], reason: string, message: string): void {
    const t = this.clock();
    // Keyed by object and type (client-go: the object alone), so that a storm of Normal events never hides a Warning.
    if (!this.allow(`${obj.metadata.uid ?? `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`}\u0000${type}`, t)) return;
    const group = `${obj.metadata.uid}\u0000${type}\u0000${reason}`;
    let similar = this.similar.get(group);
    if (!similar || t - similar.since > AGGREGATE_WINDOW_MS) this.similar.set(group, (similar = { messages: new Set(), since: t }));
    similar.messages.add(message);
    const combined = similar.messages.size > AGGREGATE_AFTER;
    const key = combined ? `${group}\u0000combined` : `${group}\u0000${message}`;
    const text = combined ? `${COMBINED_PREFIX}${message}` : message;
    const existing = this.seen.get(key);
    if (existing) {
      const next: Event = { ...existing, message: text, count: existing.count + 1, lastTimestamp: now(), metadata: { ...existing.metadata, resourceVersion: undefined } };
      this.seen.set(key, next);
      this.client.update<Event>(EVENTS, next).then(
        (written) => this.seen.get(key) === next && this.seen.set(key, written),
        () => this.seen.get(key) === next && this.seen.delete(key), // expired meanwhile: the next repeat starts a new one
      );
    } else {
      const event = eventFor(obj, type, reason, text, { component: this.component, ...(this.host ? { host: this.host } : {}) }, `${obj.metadata.name}.${randomBytes(8).toString('hex')}`);
      this.seen.set(key, event);
      this.client.create<Event>(EVENTS, event).then(
        (written) => this.seen.get(key) === event && this.seen.set(key, written),
        () => this.seen.get(key) === event && this.seen.delete(key), // its namespace may be going away
      );
    }
    if (this.similar.size > 10_000 || this.seen.size > 10_000) this.forget(t);
  }

  /** The spam filter's token bucket for one object. */
  private allow(object: string, t: number): boolean {
    const bucket = this.tokens.get(object) ?? { left: SPAM_BURST, at: t };
    bucket.left = Math.min(SPAM_BURST, bucket.left + (t - bucket.at) / SPAM_REFILL_MS);
    bucket.at = t;
    this.tokens.set(object, bucket);
    if (bucket.left < 1) return false;
    bucket.left--;
    return true;
  }

  /** Drops what no longer matters: windows that closed, buckets that are full again. */
  private forget(t: number): void {
    for (const [k, v] of this.similar) if (t - v.since > AGGREGATE_WINDOW_MS) this.similar.delete(k);
    for (const [k, v] of this.tokens) if (v.left + (t - v.at) / SPAM_REFILL_MS >= SPAM_BURST) this.tokens.delete(k);
    if (this.seen.size > 10_000) this.seen.clear(); // a later repeat starts a new event instead of counting on an old one
  }
}

/** Deletes events last seen more than `ttlMs` ago; returns how many. */
export async function expireEvents(client: ObjectClient, ttlMs = EVENT_TTL_MS, nowMs = Date.now()): Promise<number> {
  let n = 0;
  for (const e of (await client.list<Event>(EVENTS)).items) {
    if (nowMs - Date.parse(e.lastTimestamp) > ttlMs) {
      await client.delete(EVENTS, e.metadata.namespace, e.metadata.name).catch(() => undefined); // gone meanwhile
      n++;
    }
  }
  return n;
}
