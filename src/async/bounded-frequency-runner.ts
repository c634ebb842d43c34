// kube-proxy's async.BoundedFrequencyRunner, as the service proxy and the NetworkPolicy
// enforcer both need it: a level-triggered sync (the whole desired state into the kernel) that
// any number of changes ask for, run at most once per minIntervalMs (changes in between are
// batched into the next run), never two at once, again after a delay when the caller says so
// (a failed sync, IPVS real servers draining). Beside it, the check that the kernel still
// holds what the last run put there (rules flushed by hand), which asks for a run when not.
//
// The interval is counted from the end of one run to the start of the next, so a sync that
// takes longer than the interval still leaves the event loop that much time in between.

export interface RuleCheck {
  /** How often; a check that took d ms waits at least 9 d before the next (at most a tenth of the time goes to checking). */
  everyMs: number;
  /** Whether the kernel still holds the rules (a rejection counts as no). */
  intact: () => Promise<boolean>;
  /** Whether there is nothing to check (no rules were put in, or none are wanted). */
  skip?: () => boolean;
  /** Told before the run that restores them. */
  lost: () => void;
}

export interface BoundedFrequencyRunnerOptions {
  /** The sync; its errors are its own to handle (log, then retryAfter). */
  fn: () => Promise<void>;
  /** Least time between the end of one run and the start of the next. */
  minIntervalMs: number;
  /** Whether a run may start yet (its informers listed); a request before that waits for the next run(). */
  ready?: () => boolean;
  check?: RuleCheck;
}

export class BoundedFrequencyRunner {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private pending = false;
  private lastEnd = 0;
  private stopped = false;
  private waiters: Array<() => void> = [];
  private checker?: NodeJS.Timeout;
  private checking = false;
  private nextCheck = 0;

  constructor(private readonly o: BoundedFrequencyRunnerOptions) {}

  /** Starts the periodic check (runs start only when asked). */
  start(): void {
    if (!this.o.check || this.checker) return;
    this.checker = setInterval(() => void this.check(), this.o.check.everyMs);
    this.checker.unref();
  }

  /** A run under way. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Asks for a run as soon as the interval allows; requests meanwhile are one run. */
  run(): void {
    this.pending = true;
    if (this.timer || this.running || this.stopped || (this.o.ready && !this.o.ready())) return;
    const wait = Math.max(0, this.lastEnd + this.o.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pending = false;
      const waiting = this.waiters.splice(0);
      this.running = this.o
        .fn()
        .catch(() => undefined) // fn handles its errors; a stray one must not stop the runner
        .finally(() => {
          this.lastEnd = Date.now();
          this.running = undefined;
          for (const w of waiting) w();
          if (this.pending) this.run();
        });
    }, wait);
  }

  /** Asks for a run in `ms` (a failed sync retried; a state that changes by itself). */
  retryAfter(ms: number): void {
    if (!this.stopped) setTimeout(() => this.run(), ms).unref();
  }

  /** Asks for a run; resolves once a run that started after this call has ended (or the runner stopped). */
  next(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      this.run();
    });
  }

  /** No further runs or checks; waits for the one under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.checker);
    await this.running;
    for (const w of this.waiters.splice(0)) w();
  }

  private async check(): Promise<void> {
    const c = this.o.check!;
    if (this.running || this.stopped || this.checking || Date.now() < this.nextCheck || c.skip?.()) return;
    const t0 = Date.now();
    this.checking = true;
    const ok = await c.intact().catch(() => false).finally(() => (this.checking = false));
    this.nextCheck = Date.now() + 9 * (Date.now() - t0);
    if (!ok && !this.stopped) {
      c.lost();
      this.run();
    }
  }
}
