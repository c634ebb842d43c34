// Where a DNS pod's time goes, logged once a second while on (SIGUSR2 to the dns-server
// process turns it on and off; bench:dns-abuse PROFILE=1): the event loop's delay (how long a
// ready socket waits for its turn), GC pauses, the process's CPU, and the server's own
// counters (queries read, dropped, answered, time spent answering). Off by default: the
// histogram and the GC observer cost a little on every turn.

import { monitorEventLoopDelay, PerformanceObserver, type RecordableHistogram } from 'node:perf_hooks';

/**
 * One line a second: `counters()` as deltas since the last line, `gauges()` as they are,
 * `histograms` (ns) as p50/p99/max in ms, reset each line, the loop's delay, GC and CPU; returns stop.
 */
export function startProfile(counters: () => Record<string, number>, gauges: () => Record<string, number>, log: (line: string) => void, histograms: Record<string, RecordableHistogram> = {}): () => void {
  // A timer every 10 ms (1 ms made the loop wake a thousand times a second: the profile's own
  // cost showed in the latencies it was there to explain).
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let gcCount = 0;
  let gcMs = 0;
  let gcMax = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcMs += e.duration;
      gcMax = Math.max(gcMax, e.duration);
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  let cpu = process.cpuUsage();
  let last = counters();
  const timer = setInterval(() => {
    const now = counters();
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const delta = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, Math.round((v - (last[k] ?? 0)) * 100) / 100]));
    last = now;
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const spreads = Object.fromEntries(Object.entries(histograms).flatMap(([k, h]) => (h.count ? [[k, [ms(h.percentile(50)), ms(h.percentile(99)), ms(h.max)]]] : [])));
    log(`profile ${JSON.stringify({ loopP50: ms(delay.percentile(50)), loopP99: ms(delay.percentile(99)), loopMax: ms(delay.max), gc: gcCount, gcMs: Math.round(gcMs * 100) / 100, gcMax: Math.round(gcMax * 100) / 100, cpu: Math.round((used.user + used.system) / 1e4), ...delta, ...gauges(), ...spreads })}`);
    delay.reset();
    for (const h of Object.values(histograms)) h.reset();
    gcCount = gcMs = gcMax = 0;
  }, 1000);
  timer.unref();
  return () => {
    clearInterval(timer);
    delay.disable();
    gc.disconnect();
  };
}
