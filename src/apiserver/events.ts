// Events, as the kubelet, scheduler and controllers record them: one per (object, reason,
// message), counted when it repeats, kept an hour. They are what `describe` shows last and
// what a user reads first when a pod does not start.

import { randomBytes } from 'node:crypto';
import type { Event, KubeObject } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { Api } from './api.ts';

export const EVENT_TTL_MS = 60 * 60 * 1000;

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

export class EventRecorder {
  /** (object uid, reason, message) -> event name, so that a repeat is a count, not a new object. */
  private readonly seen = new Map<string, string>();

  constructor(private readonly api: Api, private readonly component: string, private readonly host?: string) {}

  record(obj: KubeObject, type: Event['type'], reason: string, message: string): void {
    const ns = obj.metadata.namespace ?? 'default';
    const key = `${obj.metadata.uid}\u0000${reason}\u0000${message}`;
    const stamp = now();
    try {
      const name = this.seen.get(key);
      const existing = name ? this.api.tryGet<Event>({ kind: 'Event', namespace: ns, name }) : undefined;
      if (existing) {
        this.api.update<Event>({ ...existing, count: existing.count + 1, lastTimestamp: stamp, metadata: { ...existing.metadata, resourceVersion: undefined } });
        return;
      }
      const event = eventFor(obj, type, reason, message, { component: this.component, ...(this.host ? { host: this.host } : {}) }, `${obj.metadata.name}.${randomBytes(8).toString('hex')}`);
      this.api.create(event, { system: true });
      this.seen.set(key, event.metadata.name);
    } catch {
      // An event is never worth failing the work it describes (its namespace may be going away).
    }
  }
}

/** Deletes events last seen more than `ttlMs` ago; returns how many. */
export function expireEvents(api: Api, ttlMs = EVENT_TTL_MS, nowMs = Date.now()): number {
  let n = 0;
  for (const e of api.list('Event').items as Event[]) {
    if (nowMs - Date.parse(e.lastTimestamp) > ttlMs) {
      api.delete({ kind: 'Event', namespace: e.metadata.namespace, name: e.metadata.name });
      n++;
    }
  }
  return n;
}
