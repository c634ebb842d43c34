// A work queue as client-go's: keys, not events (a burst of changes to one object is one
// sync); a key is never handled twice at once; a failed key is retried with backoff.

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
    private readonly handle: (key: string) => Promise<void> | void,
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
    this.pump();
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

  private async work(key: string): Promise<void> {
    try {
      await this.handle(key);
      this.failures.delete(key);
    } catch (e) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.opts.onError?.(key, e);
      this.addAfter(key, Math.min(100 * 2 ** n, 10_000));
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
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
