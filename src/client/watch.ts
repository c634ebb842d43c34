// The small decisions of a watching client (pure): how a stream of newline-delimited
// events is cut into events, how long to wait before trying a server again, and how long to
// ask the server to keep a watch open (client-go's reflector: a random 5 to 10 minutes, so
// that watchers spread their reconnects).

import type { KubeObject } from '../api/types.ts';

export interface WatchEvent {
  type: string;
  object: KubeObject;
}

/** Cuts a watch stream into events; `broken` once a line is not an event (the stream is then of no use). */
export class WatchLines {
  private buffered = '';
  broken = false;

  push(chunk: string): WatchEvent[] {
    this.buffered += chunk;
    const out: WatchEvent[] = [];
    let nl;
    while (!this.broken && (nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as WatchEvent;
        if (typeof e?.type !== 'string' || typeof e.object !== 'object' || e.object === null) throw new Error('not an event');
        out.push(e);
      } catch {
        this.broken = true;
      }
    }
    return out;
  }
}

/** Wait before the `attempt`-th retry (from 0): 200 ms doubling to 4 s, ±20 % so that clients do not march in step. */
export function backoffMs(attempt: number, random = Math.random): number {
  const base = Math.min(4000, 200 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** A watch's timeoutSeconds: 300 to 600 (client-go's minWatchTimeout of 5 min, times 1 to 2). */
export function watchTimeoutSeconds(random = Math.random): number {
  return Math.floor(300 * (1 + random()));
}
