// The runner both the service proxy and the NetworkPolicy enforcer sync on (src/async/):
// requests batched into one run per interval, never two at once, retries, waiters, the check
// for lost rules and its throttle. Real timers with small intervals, every wait bounded.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BoundedFrequencyRunner } from '../src/async/bounded-frequency-runner.ts';

async function until(what: string, ok: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('BoundedFrequencyRunner', () => {
  it('batches requests made while waiting or running into one run, never two at once, at most one per interval', async () => {
    let runs = 0;
    let inside = 0;
    let most = 0;
    const starts: number[] = [];
    const r = new BoundedFrequencyRunner({
      minIntervalMs: 60,
      fn: async () => {
        starts.push(Date.now());
        runs++;
        most = Math.max(most, ++inside);
        await sleep(30);
        inside--;
      },
    });
    for (let i = 0; i < 10; i++) r.run();
    await until('the first run', () => runs === 1);
    for (let i = 0; i < 10; i++) r.run(); // during the run: one more, after it
    await until('the second run', () => runs === 2);
    await sleep(150);
    assert.equal(runs, 2, 'twenty requests, two runs');
    assert.equal(most, 1, 'never two at once');
    assert.ok(starts[1]! - starts[0]! >= 30 + 60 - 5, `the interval counts from the end of a run: ${starts[1]! - starts[0]!} ms`);
    await r.stop();
  });

  it('waits for ready; next() resolves after a run that started after it; stop ends everything and resolves waiters', async () => {
    let ready = false;
    let runs = 0;
    const r = new BoundedFrequencyRunner({ minIntervalMs: 10, ready: () => ready, fn: async () => void runs++ });
    r.run();
    await sleep(40);
    assert.equal(runs, 0, 'not before ready');
    ready = true;
    await r.next();
    assert.equal(runs, 1);
    await r.next();
    assert.equal(runs, 2);
    await r.stop();
    r.run();
    await r.next();
    await sleep(30);
    assert.equal(runs, 2, 'nothing after stop');
  });

  it('retryAfter runs again later; a throwing fn does not stop the runner', async () => {
    let runs = 0;
    const r = new BoundedFrequencyRunner({
      minIntervalMs: 5,
      fn: async () => {
        runs++;
        if (runs === 1) {
          r.retryAfter(40);
          throw new Error('sync failed');
        }
      },
    });
    r.run();
    await until('the retry', () => runs === 2);
    await r.stop();
  });

  it('checks the rules periodically: lost -> told and run; skipped while told to; throttled to a tenth of the time', async () => {
    let intact = true;
    let lost = 0;
    let runs = 0;
    let checks = 0;
    let skip = true;
    const r = new BoundedFrequencyRunner({
      minIntervalMs: 5,
      fn: async () => void runs++,
      check: {
        everyMs: 10,
        skip: () => skip,
        intact: async () => {
          checks++;
          await sleep(20); // a slow check: the next waits 9 times as long
          return intact;
        },
        lost: () => void lost++,
      },
    });
    r.start();
    await sleep(50);
    assert.equal(checks, 0, 'skipped');
    skip = false;
    intact = false;
    await until('the lost rules restored', () => lost === 1 && runs === 1);
    intact = true;
    const before = checks;
    await sleep(200);
    assert.ok(checks - before <= 2, `checks of 20 ms at most once per ~200 ms: ${checks - before}`);
    await r.stop();
  });
});
