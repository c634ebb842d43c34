// How long the daemon's one event loop makes work wait, for benchmarks: with
// KUBEWIRE_LOOP_STATS=<seconds> in its environment, a line per period with the loop's delay
// (perf_hooks.monitorEventLoopDelay: how late a timer ran, the wait every request also sees
// before its turn) and the share of the time the loop was busy. bench:api reads them from
// the daemon's log for the window of its pod burst.

import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

export interface LoopStats {
  at: string;
  p50: number;
  p99: number;
  max: number;
  /** Busy share of the period, 0-1 (performance.eventLoopUtilization). */
  utilization: number;
}

export const LOOP_STATS_PREFIX = 'event loop:';

/** One period as a log line (after the log's own timestamp). */
export function formatLoopStats(s: LoopStats): string {
  return `${LOOP_STATS_PREFIX} at=${s.at} delay_p50_ms=${s.p50.toFixed(1)} delay_p99_ms=${s.p99.toFixed(1)} delay_max_ms=${s.max.toFixed(1)} utilization=${s.utilization.toFixed(2)}`;
}

/** The periods' lines found in a log's text, oldest first. */
export function parseLoopStats(text: string): LoopStats[] {
  const out: LoopStats[] = [];
  for (const m of text.matchAll(/event loop: at=(\S+) delay_p50_ms=([\d.]+) delay_p99_ms=([\d.]+) delay_max_ms=([\d.]+) utilization=([\d.]+)/g)) {
    out.push({ at: m[1]!, p50: Number(m[2]), p99: Number(m[3]), max: Number(m[4]), utilization: Number(m[5]) });
  }
  return out;
}

/** Starts the lines when `seconds` (KUBEWIRE_LOOP_STATS) is a positive number; returns the stop. */
export function reportLoopStats(seconds: string | undefined, log: (line: string) => void): () => void {
  const periodMs = Number(seconds) * 1000;
  if (!(periodMs > 0)) return () => undefined;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const ms = (ns: number) => ns / 1e6;
    log(formatLoopStats({ at: new Date().toISOString(), p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max), utilization: performance.eventLoopUtilization(now, last).utilization }));
    last = now;
    delay.reset();
  }, periodMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    delay.disable();
  };
}
