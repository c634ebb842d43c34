// The fast path's side towards the endpoints: keep-alive TCP connections per endpoint, and
// one exchange at a time on each: the request written, the response head parsed, the body
// passed through to a sink as it arrives, with backpressure, until its framing says it is
// complete. Each connection's listeners are attached once, and timeouts (idle 4 s, before a
// Node backend's own 5 s; no response in time) are checked by one sweep a second: per
// request there is no listener or timer to add and remove.

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ChunkedScanner, HEAD_END, MAX_HEAD, parseResponseHead, type ResponseHead } from './http1.ts';

const IDLE_MS = 4_000;
const MAX_IDLE = 320; // per endpoint, as ingress-nginx's upstream keepalive
const SWEEP_MS = 1_000;

/** Where a response goes: the client's connection. */
export interface ResponseSink {
  head(h: ResponseHead): void;
  /** Body bytes exactly as framed by the endpoint; false asks to pause until `onDrain`. */
  data(chunk: Buffer): boolean;
  onDrain(resume: () => void): void;
  end(): void;
}

export interface Outcome {
  /** The endpoint's status once its response began (after that nothing can be retried); 0 before. */
  status: number;
  /** Why the exchange failed: a socket error code, or ETIMEDOUT (no response in time), EPROTO (not HTTP), ECONNRESET. */
  error?: string;
  /** The connection may serve another request. */
  reusable: boolean;
  length?: string;
}

/** One request and its response on a connection. */
class Exchange {
  private pending: Buffer | undefined;
  head: ResponseHead | undefined;
  private left = 0;
  private scanner: ChunkedScanner | undefined;
  error: string | undefined;

  constructor(private readonly conn: UpstreamConnection, private readonly isHead: boolean, private readonly sink: ResponseSink, readonly deadline: number, private readonly done: (o: Outcome) => void) {}

  onData(d: Buffer): void {
    if (!this.head) {
      this.pending = this.pending ? Buffer.concat([this.pending, d]) : d;
      for (;;) {
        const end = this.pending.indexOf(HEAD_END);
        if (end < 0) {
          if (this.pending.length > MAX_HEAD) this.finish({ status: 0, error: 'EPROTO', reusable: false });
          return;
        }
        const h = parseResponseHead(this.pending.toString('latin1', 0, end + 2), this.isHead);
        if (!h) return this.finish({ status: 0, error: 'EPROTO', reusable: false });
        this.pending = this.pending.subarray(end + 4);
        if (h.status >= 100 && h.status < 200) {
          if (h.status === 101) return this.finish({ status: 0, error: 'EPROTO', reusable: false }); // never asked for
          continue; // an interim response (100, 103): the final one follows
        }
        this.head = h;
        break;
      }
      const head = this.head;
      this.sink.head(head);
      d = this.pending;
      this.pending = undefined;
      if (head.length === -1) this.scanner = new ChunkedScanner();
      else this.left = head.length;
      if (head.length === 0) return this.complete(d.length > 0);
    }
    if (this.scanner) {
      let n: number;
      try {
        n = this.scanner.scan(d);
      } catch {
        return this.finish({ status: this.head.status, error: 'EPROTO', reusable: false });
      }
      this.pass(n === d.length ? d : d.subarray(0, n));
      if (this.scanner.done) this.complete(n < d.length);
    } else if (this.head.length >= 0) {
      const n = Math.min(this.left, d.length);
      this.pass(n === d.length ? d : d.subarray(0, n));
      this.left -= n;
      if (!this.left) this.complete(n < d.length);
    } else this.pass(d); // delimited by the close
  }

  onClose(): void {
    if (this.head && this.head.length === -2) {
      this.sink.end();
      return this.finish({ status: this.head.status, reusable: false });
    }
    this.finish({ status: this.head?.status ?? 0, error: this.error ?? 'ECONNRESET', reusable: false });
  }

  private pass(d: Buffer): void {
    if (d.length && !this.sink.data(d)) {
      const socket = this.conn.socket;
      socket.pause();
      this.sink.onDrain(() => socket.resume());
    }
  }

  private complete(extra: boolean): void {
    this.sink.end();
    this.finish({ status: this.head!.status, reusable: !this.head!.close && !extra, length: this.head!.contentLength });
  }

  private finish(o: Outcome): void {
    if (this.conn.current !== this) return;
    this.conn.current = undefined;
    if (!o.reusable) this.conn.socket.destroy();
    this.done(o);
  }
}

/**
 * A new connection to an endpoint (ip:port, IPv6 in brackets), plain or TLS; `ready` names
 * the event after which it can carry a request. A TLS endpoint's certificate is not
 * verified, as ingress-nginx's default proxy_ssl_verify off.
 */
export function dialEndpoint(endpoint: string, tls: boolean, localPort?: number): { socket: Socket; ready: 'connect' | 'secureConnect' } {
  const colon = endpoint.lastIndexOf(':');
  const to = { host: endpoint.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(endpoint.slice(colon + 1)), ...(localPort ? { localPort } : {}) };
  if (tls) return { socket: tlsConnect({ ...to, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }), ready: 'secureConnect' };
  return { socket: connect({ ...to, noDelay: true }), ready: 'connect' };
}

export class UpstreamConnection {
  current: Exchange | undefined;
  idleSince = 0;
  /** Opened for one request (a traced one, from its own port): closed after it, never pooled. */
  once = false;

  constructor(readonly socket: Socket, readonly endpoint: string, readonly tls: boolean, pools: UpstreamPools) {
    socket.on('data', (d: Buffer) => (this.current ? this.current.onData(d) : socket.destroy())); // bytes nobody asked for
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (this.current) this.current.error = e.code ?? 'ECONNRESET';
    });
    socket.once('close', () => {
      pools.forget(this);
      this.current?.onClose();
    });
  }

  /** Writes one request and streams the response into `sink`; `done` is told how it went. */
  exchange(request: Buffer, isHead: boolean, sink: ResponseSink, readTimeoutMs: number, done: (o: Outcome) => void): void {
    this.current = new Exchange(this, isHead, sink, Date.now() + readTimeoutMs, done);
    this.socket.write(request);
  }
}

export class UpstreamPools {
  /** Idle connections per endpoint, plain and TLS apart. */
  private readonly idle = { plain: new Map<string, UpstreamConnection[]>(), tls: new Map<string, UpstreamConnection[]>() };
  private readonly busy = new Set<UpstreamConnection>();
  private sweeper?: NodeJS.Timeout;

  /**
   * Calls back with an idle connection to `endpoint` (ip:port) at once, or with a new one once
   * connected (with `tls`, once the handshake is done); with `localPort`, always a new one from that port, used once.
   */
  acquire(endpoint: string, tls: boolean, connectTimeoutMs: number, then: (e: NodeJS.ErrnoException | undefined, conn?: UpstreamConnection) => void, localPort?: number): void {
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    const list = localPort ? undefined : this.idle[tls ? 'tls' : 'plain'].get(endpoint);
    while (list?.length) {
      const conn = list.pop()!;
      if (conn.socket.destroyed) continue;
      this.busy.add(conn);
      return then(undefined, conn);
    }
    const { socket, ready } = dialEndpoint(endpoint, tls, localPort);
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT_CONNECT' })), connectTimeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      if (tls) socket.setNoDelay(true);
      const conn = new UpstreamConnection(socket, endpoint, tls, this);
      conn.once = localPort !== undefined;
      this.busy.add(conn);
      then(undefined, conn);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      then(Object.assign(e, { code: e.code ?? 'ECONNREFUSED' }));
    });
  }

  /** Back to the idle list (or closed, if the list is full). */
  release(conn: UpstreamConnection): void {
    this.busy.delete(conn);
    const idle = this.idle[conn.tls ? 'tls' : 'plain'];
    let list = idle.get(conn.endpoint);
    if (!list) idle.set(conn.endpoint, (list = []));
    if (list.length >= MAX_IDLE || conn.socket.destroyed || conn.once) return void conn.socket.destroy();
    conn.idleSince = Date.now();
    list.push(conn);
  }

  /** A connection that closed: out of the lists. */
  forget(conn: UpstreamConnection): void {
    this.busy.delete(conn);
    const list = this.idle[conn.tls ? 'tls' : 'plain'].get(conn.endpoint);
    const i = list ? list.indexOf(conn) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /** Closes idle connections past 4 s and exchanges past their read timeout. */
  private sweep(): void {
    const now = Date.now();
    for (const idle of [this.idle.plain, this.idle.tls]) for (const list of idle.values()) for (const c of [...list]) if (now - c.idleSince > IDLE_MS) c.socket.destroy();
    for (const c of this.busy) {
      if (c.current && now > c.current.deadline) {
        c.current.error = 'ETIMEDOUT';
        c.socket.destroy();
      }
    }
  }

  /** Closes the idle connections of endpoints no longer in `live`. */
  prune(live: Set<string>): void {
    for (const idle of [this.idle.plain, this.idle.tls]) {
      for (const [endpoint, list] of idle) {
        if (live.has(endpoint)) continue;
        for (const c of list.splice(0)) c.socket.destroy();
        idle.delete(endpoint);
      }
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.prune(new Set());
  }
}
