// A work queue as client-go's: keys, not events (a burst of changes to one object is one
// sync); a key is never handled twice at once; a failed key is retried with backoff. Work
// waits for a turn of the event loop, key by key: synchronous handlers (the controllers')
// never run inside the API request that woke them, nor keep its sockets waiting for a queue.

export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = 0;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    /** Syncs a key. 'now' queues it again (more to do), 'backoff' again after a growing delay (without an error to log). */
    private readonly handle: (key: string) => Promise<void | 'now' | 'backoff' | undefined> | void | 'now' | 'backoff',
    private readonly opts: { concurrency?: number; onError?: (key: string, e: unknown) => void } = {},
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key); // handled again once the running sync ends
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.schedulePump();
  }

  private pumpScheduled = false;

  /**
   * Work starts on a later turn of the event loop, never inside the caller: a watch event
   * delivered during an API request must not run a controller's sync before that request
   * is answered.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Adds the key after `ms` (resyncs, retries). */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.queued.clear();
  }

  /** Resolves when nothing is queued or running (tests, orderly shutdown). */
  idle(): Promise<void> {
    if (!this.running && !this.queued.size) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    const limit = this.opts.concurrency ?? 1;
    while (this.running < limit && this.queued.size && !this.stopped) {
      const key = this.queued.values().next().value as string;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.work(key);
    }
    if (!this.running && !this.queued.size) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Again after 100 ms, doubling per consecutive failure up to 10 s. */
  private backoff(key: string): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    this.addAfter(key, Math.min(100 * 2 ** n, 10_000));
  }

  private async work(key: string): Promise<void> {
    try {
      const requeue = await this.handle(key);
      if (requeue === 'backoff') this.backoff(key);
      else this.failures.delete(key);
      if (requeue === 'now') this.dirty.add(key);
    } catch (e) {
      this.opts.onError?.(key, e);
      this.backoff(key);
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key) && !this.stopped) this.queued.add(key);
      this.schedulePump();
    }
  }
}

export function nameKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
