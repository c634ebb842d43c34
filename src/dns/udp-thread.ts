// DNS over UDP on a thread of its own. On the process's one event loop, a UDP answer waited
// behind whatever else the loop was doing: a slowloris's connections being accepted and timed
// out by the thousand, a /metrics scrape, the informers' watch, the main heap's collections
// (measured: in-process p99 16 ms under the slowloris on a quiet machine, 2.8 ms on the wire
// against dnsmasq's 0.44). Here a worker thread serves the UDP socket with a DnsServer of its
// own (the same code as in one thread: answer cache, fair queue, throttling) over a copy of the
// main thread's view (mirror.ts, fed by its informers' changes), and adds to metrics memory
// the main thread's scrape reads (metrics.ts). TCP, HTTP and the informers stay on the main
// thread; a throttle request and log lines come back to it as messages. CoreDNS answers each
// datagram on a goroutine, on every core; this gives UDP one core's worth of its own.

import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { recorder, seriesMemory } from './series.ts';
import { MirrorView } from './mirror.ts';
import { startProfile } from './profile.ts';
import { DnsServer } from './server.ts';
import type { ViewEvent } from './store-view.ts';
import type { InformerView } from './view.ts';

const MARK = 'kubewireDnsUdpThread';
/** How long the thread may take to load and bind its socket. */
const START_MS = 15_000;
const CLOSE_MS = 2_000;

interface Boot {
  [MARK]: true;
  port: number;
  host: string;
  zone: string;
  ranges: string[];
  upstream?: { host: string; port: number };
  metrics: SharedArrayBuffer;
  throttle: boolean;
}

type ToThread = { op: 'view'; event: ViewEvent } | { op: 'profile' } | { op: 'close' };
type FromThread = { op: 'listening'; port: number } | { op: 'synced' } | { op: 'throttle'; address: string } | { op: 'log'; line: string } | { op: 'closed' };

export interface UdpThreadOptions {
  port: number;
  host?: string;
  zone: string;
  ranges: string[];
  upstream?: { host: string; port: number };
  /** Where the thread's answers are counted (metrics.ts's seriesMemory; the scrape includes it). */
  metrics: SharedArrayBuffer;
  /** Throttles a flooding source (throttle.ts), on the main thread. */
  throttle?: (address: string) => void;
  log: (line: string) => void;
  /** The thread ended after it started serving (a crash): UDP is no longer answered. */
  onCrash: (why: string) => void;
}

export interface UdpThread {
  /** The UDP port it serves. */
  port: number;
  /** Whether its copy of the view has been listed. */
  readonly synced: boolean;
  /** Turns its profile's line a second on or off (profile.ts). */
  toggleProfile(): void;
  close(): Promise<void>;
}

/**
 * Starts the thread on `o.port` and feeds it `view`'s changes (call before view.start(): the
 * first list reaches it as any relist does); rejects when it cannot serve (then nothing is left running).
 */
export function startUdpThread(view: Pick<InformerView, 'onEvent'>, o: UdpThreadOptions): Promise<UdpThread> {
  const boot: Boot = { [MARK]: true, port: o.port, host: o.host ?? '0.0.0.0', zone: o.zone, ranges: o.ranges, ...(o.upstream ? { upstream: o.upstream } : {}), metrics: o.metrics, throttle: o.throttle !== undefined };
  // The thread runs this module (the bundle's chunk that holds it, or the source under tsx,
  // whose loader a worker does not inherit: registered there first).
  const url = JSON.stringify(import.meta.url);
  const code = import.meta.url.endsWith('.ts') ? `import('tsx/esm/api').then((t) => { t.register(); return import(${url}); })` : `import(${url})`;
  const worker = new Worker(code, { eval: true, workerData: boot, name: 'dns-udp' });
  let synced = false;
  let alive = true;
  const post = (m: ToThread) => alive && worker.postMessage(m);
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      if (!alive) return;
      alive = false;
      clearTimeout(timer);
      void worker.terminate();
      reject(new Error(`the UDP thread: ${why}`));
    };
    const timer = setTimeout(() => fail(`not serving after ${START_MS / 1000} s`), START_MS);
    let serving = false;
    const ended = (why: string) => {
      if (serving && alive) {
        alive = false;
        o.onCrash(why);
      } else fail(why);
    };
    worker.on('error', (e) => ended(e.message));
    worker.on('exit', (code) => ended(`exited (${code})`));
    let closed: (() => void) | undefined;
    worker.on('message', (m: FromThread) => {
      if (m.op === 'log') o.log(m.line);
      else if (m.op === 'throttle') o.throttle?.(m.address);
      else if (m.op === 'synced') synced = true;
      else if (m.op === 'closed') closed?.();
      else if (m.op === 'listening') {
        clearTimeout(timer);
        serving = true;
        resolve({
          port: m.port,
          get synced() {
            return synced;
          },
          toggleProfile: () => post({ op: 'profile' }),
          close: async () => {
            await new Promise<void>((done) => {
              closed = done;
              post({ op: 'close' });
              setTimeout(done, CLOSE_MS).unref();
            });
            alive = false;
            await worker.terminate();
          },
        });
      }
    });
    view.onEvent((event) => post({ op: 'view', event }));
  });
}

/**
 * The process's UDP thread, counted in `metrics`' scrape; undefined (and why, to `log`) when
 * UDP is to be served on the main thread: KUBEWIRE_DNS_UDP_THREAD=0, or the thread failed to
 * start. A crash of the thread later ends the process (its container is restarted), as a
 * crash of the one thread would.
 */
export async function udpThreadOrNot(view: Pick<InformerView, 'onEvent'>, metrics: { include(memory: SharedArrayBuffer): void }, o: Omit<UdpThreadOptions, 'metrics' | 'onCrash'>): Promise<UdpThread | undefined> {
  if (process.env.KUBEWIRE_DNS_UDP_THREAD === '0') {
    o.log('UDP served on the main thread (KUBEWIRE_DNS_UDP_THREAD=0)');
    return undefined;
  }
  const memory = seriesMemory();
  try {
    const thread = await startUdpThread(view, {
      ...o,
      metrics: memory,
      onCrash: (why) => {
        o.log(`the UDP thread ended: ${why}; exiting`);
        process.exit(1);
      },
    });
    metrics.include(memory);
    return thread;
  } catch (e) {
    o.log(`UDP served on the main thread: ${(e as Error).message}`);
    return undefined;
  }
}

/** The thread's side: a DnsServer on UDP only, over the mirrored view, until told to close. */
async function serveInThread(boot: Boot, parent: MessagePort): Promise<void> {
  const send = (m: FromThread) => parent.postMessage(m);
  const log = (line: string) => send({ op: 'log', line });
  const view = new MirrorView(boot.zone, boot.ranges);
  const dns = new DnsServer({ view, ...(boot.upstream ? { upstream: boot.upstream } : {}), observe: recorder(boot.metrics), ...(boot.throttle ? { throttle: (address: string) => send({ op: 'throttle', address }) } : {}) });
  let profiling: (() => void) | undefined;
  parent.on('message', (m: ToThread) => {
    if (m.op === 'view') {
      const was = view.synced;
      view.apply(m.event);
      if (!was && view.synced) send({ op: 'synced' });
    } else if (m.op === 'profile') {
      if (profiling) profiling = void profiling();
      else profiling = startProfile(() => ({ ...dns.counters }), () => ({ ...dns.stats(), udpThread: 1 }), log, { inProcessMs: dns.inProcess });
    } else if (m.op === 'close') {
      profiling?.();
      void dns.close().then(() => send({ op: 'closed' }));
    }
  });
  await dns.listen(boot.port, boot.host, { tcp: false });
  send({ op: 'listening', port: dns.udpPort });
}

// A failure to serve (the port taken) is an unhandled rejection: the worker's 'error' in the main thread.
if (!isMainThread && parentPort && (workerData as Partial<Boot> | null)?.[MARK]) void serveInThread(workerData as Boot, parentPort);
