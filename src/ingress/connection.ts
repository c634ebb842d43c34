// The fast path: a client connection (plain, or TLS once the handshake is done) served by
// reading request heads straight off the socket and forwarding them on the endpoints'
// keep-alive connections. It takes the common requests of HTTP/1.1 (any method, a body
// given by Content-Length); at the first request that is anything else (chunked upload,
// Expect, Upgrade, HTTP/1.0, a malformed head) the connection is handed, with the bytes
// read so far, to Node's HTTP server, which serves the rest of it (proxy.ts). On this
// machine it costs about half the CPU per request of Node's HTTP server and undici.

import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { AccessLog, LoggedRequest } from './accesslog.ts';
import { addedHeaders, afterFailure, decide, nextEndpoint, TRACE_HEADER, traceAnswer, tracePort, traceRoute, type Decision } from './decide.ts';
import { clientAddress, forwardingLines } from './forward.ts';
import { errorPage, FORWARDED, findHeadEnd, headerOf, HOP_BY_HOP, MAX_HEAD, parseRequestHead, simpleResponse, STATUS_TEXT, type RequestHead, type ResponseHead } from './http1.ts';
import type { RateLimiter } from './limits.ts';
import type { IngressMetrics } from './metrics.ts';
import { parseRequestUri } from './paths.ts';
import type { Route, RouteTable, Upstream } from './table.ts';
import type { ResponseSink, UpstreamPools } from './upstream.ts';

export interface FastPathContext {
  table(): RouteTable;
  pick(upstream: Upstream, tried: readonly string[]): string | undefined;
  pools: UpstreamPools;
  trust: boolean;
  metrics: IngressMetrics;
  accessLog: AccessLog;
  /** Gives the connection to Node's HTTP server; `buffered` are bytes read and not served. */
  fallback(socket: Socket, buffered: Buffer | undefined): void;
  /** Open connections, each closable once its request in flight (if any) is answered. */
  connections: Set<{ drain(): void }>;
  limiter: RateLimiter;
}

export const KEEPALIVE_MS = 75_000; // ingress-nginx's keepalive_timeout

const headerLines = (headers: Array<[string, string]>) => {
  let out = '';
  for (const [k, v] of headers) out += `${k}: ${v}\r\n`;
  return out;
};

/** A random 32-hex-digit request id (ingress-nginx's $req_id), drawn from a pooled buffer. */
let ids = Buffer.alloc(0);
let idAt = 0;
export function newRequestId(): string {
  if (idAt + 16 > ids.length) {
    ids = randomBytes(4096);
    idAt = 0;
  }
  idAt += 16;
  return ids.toString('hex', idAt - 16, idAt);
}

/** The request line (with `target`, the URL rewritten or not) and the client's header lines an endpoint receives (see forward.ts for the rules). */
function keptLines(h: RequestHead, target: string): string {
  let out = `${h.method} ${target} HTTP/1.1\r\n`;
  for (let i = 0; i < h.names.length; i++) {
    const lower = h.names[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || FORWARDED.has(lower) || h.connection?.has(lower)) continue;
    out += `${h.names[i]}: ${h.values[i]}\r\n`;
  }
  return out;
}

/** Our forwarding header lines, then the blank line that ends the head. */
function forwardingText(h: RequestHead, scheme: 'http' | 'https', port: number, remote: string, trust: boolean, requestId: string): string {
  return `${forwardingLines({ remote, scheme, port, trust, host: h.host, clientFor: h.forwardedFor, requestId, claimed: (n) => h.claimed[n] })}\r\n`;
}

/** The head an endpoint receives, as text. */
export function requestText(h: RequestHead, scheme: 'http' | 'https', port: number, remote: string, trust: boolean, requestId: string): string {
  return keptLines(h, h.target) + forwardingText(h, scheme, port, remote, trust, requestId);
}

/**
 * The request an endpoint receives, head and body in one buffer. `received` starts with
 * the client's head (`headBytes` long, up to the CRLF ending its last header line); a
 * head with nothing to drop or rewrite goes on as received, else it is rebuilt (with
 * `target` for its URL, when rewritten); ours are appended.
 * (Header text is latin1 throughout: a character per byte.)
 */
export function upstreamRequest(received: Buffer, headBytes: number, h: RequestHead, body: Buffer | undefined, scheme: 'http' | 'https', port: number, remote: string, trust: boolean, requestId: string, target?: string): Buffer {
  const kept = h.plain && target === undefined ? undefined : keptLines(h, target ?? h.target);
  const forwarding = forwardingText(h, scheme, port, remote, trust, requestId);
  const at = kept === undefined ? headBytes : kept.length;
  const out = Buffer.allocUnsafe(at + forwarding.length + (body?.length ?? 0));
  if (kept === undefined) received.copy(out, 0, 0, headBytes);
  else out.write(kept, 0, 'latin1');
  out.write(forwarding, at, 'latin1');
  body?.copy(out, at + forwarding.length);
  return out;
}

/** Writes an endpoint's response to the client: its head and first bytes in one write. */
class ClientSink implements ResponseSink {
  close = false;
  private pendingHead: string | undefined;
  /** `extra`: header lines the proxy adds (each ending in CRLF). */
  constructor(private readonly socket: Socket, private readonly clientClose: boolean, private readonly extra = '') {}

  head(h: ResponseHead): void {
    let out = `HTTP/1.1 ${h.status} ${h.reason}\r\n${h.fields}${this.extra}`;
    this.close = this.clientClose || h.length === -2; // a body ended by the close ends the connection
    if (this.close) out += 'connection: close\r\n';
    this.pendingHead = `${out}\r\n`;
  }

  data(chunk: Buffer): boolean {
    if (this.socket.destroyed) return true; // the client left: the rest of the body is dropped
    if (this.pendingHead === undefined) return this.socket.write(chunk);
    const head = this.pendingHead;
    this.pendingHead = undefined;
    const out = Buffer.allocUnsafe(head.length + chunk.length); // latin1: a byte per character
    out.write(head, 0, 'latin1');
    chunk.copy(out, head.length);
    return this.socket.write(out);
  }

  onDrain(resume: () => void): void {
    this.socket.once('drain', resume);
    this.socket.once('close', resume);
  }

  end(): void {
    if (this.pendingHead !== undefined && !this.socket.destroyed) this.socket.write(this.pendingHead, 'latin1');
    this.pendingHead = undefined;
  }
}

/** Serves one client connection until it closes or is handed to Node's HTTP server. */
export function serveConnection(socket: Socket, scheme: 'http' | 'https', port: number, ctx: FastPathContext): void {
  let buffered: Buffer | undefined;
  let busy = false;
  let draining = false;
  let ended = false; // we closed our side: nothing more is read or served
  const remote = socket.remoteAddress ?? '';
  const handle = {
    drain: () => {
      draining = true;
      if (!busy) socket.end();
    },
  };
  ctx.connections.add(handle);
  socket.once('close', () => ctx.connections.delete(handle));
  socket.setNoDelay(true);
  socket.setTimeout(KEEPALIVE_MS);

  // Idle keep-alive connections close after 75 s; one waiting on a slow endpoint (a read
  // timeout may be set longer by annotation) is left to that timeout.
  const onTimeout = () => (busy ? socket.setTimeout(KEEPALIVE_MS) : socket.destroy());
  const onError = () => undefined;
  const onData = (d: Buffer) => {
    buffered = buffered ? Buffer.concat([buffered, d]) : d;
    if (!busy) next();
  };
  const handOff = () => {
    socket.removeListener('data', onData);
    socket.removeListener('timeout', onTimeout);
    socket.removeListener('error', onError);
    socket.setTimeout(0);
    socket.pause();
    ctx.connections.delete(handle);
    ctx.fallback(socket, buffered);
    buffered = undefined;
  };

  /** The decision for the head at the front of the buffer, kept while its body arrives (so it is made once). */
  let waiting: { head: RequestHead; decision: Decision; headBytes: number; bodyAt: number; total: number } | undefined;

  const next = (): void => {
    while (buffered && !busy && !ended) {
      if (!waiting) {
        const bounds = findHeadEnd(buffered);
        if (bounds === 'bare CR') return handOff(); // Node's server answers 400, as nginx does
        if (!bounds) {
          if (buffered.length > MAX_HEAD) handOff(); // Node's server answers 431
          return;
        }
        const head = parseRequestHead(buffered.toString('latin1', 0, bounds.text));
        // Node's server takes the other shapes, absolute-form targets among them.
        if (typeof head === 'string' || head.target.charCodeAt(0) !== 47 /* '/' */) return handOff();
        if (!bounds.crlf) head.plain = false; // bare LF ends (nginx takes them): the endpoint gets CRLF
        const uri = head.twoHosts ? undefined : parseRequestUri(head.target, head.host);
        const decision = decide(ctx.table(), { scheme, method: head.method, uri, contentLength: head.contentLength, header: (name) => headerOf(head, name), client: () => clientAddress(remote, ctx.trust, head.forwardedFor) }, ctx.limiter);
        // 400, 405, 413: answered at once, and the connection ends (its body is not read).
        if (decision.kind === 'answer' && decision.close) return refuse(head, decision, bounds.total);
        waiting = { head, decision, headBytes: bounds.lines, bodyAt: bounds.total, total: bounds.total + head.contentLength };
      }
      const { head, decision, headBytes, bodyAt, total } = waiting;
      if (buffered.length < total) return; // the body is on its way
      waiting = undefined;
      const received = buffered.subarray(0, total);
      buffered = buffered.length > total ? buffered.subarray(total) : undefined;
      busy = true;
      // (The keep-alive timeout stays armed: traffic either way re-arms it.)
      let inLoop = true;
      serve(head, decision, received, headBytes, bodyAt, (close) => {
        busy = false;
        if (close || head.close || draining) {
          ended = true;
          return void socket.end();
        }
        if (!inLoop && buffered) next(); // answered later: serve what came meanwhile
      });
      inLoop = false;
    }
  };

  /** Answers and ends the connection, reading no more of it. */
  const refuse = (head: RequestHead, d: Extract<Decision, { kind: 'answer' }>, length: number): void => {
    socket.removeListener('data', onData);
    socket.on('data', () => undefined);
    buffered = undefined;
    respond(head, d.route, d.status, d.headers, d.body, true, length);
  };

  const logged = (head: RequestHead, length: number, requestId: string, alternative?: Upstream): LoggedRequest => ({ remote, method: head.method, url: head.target, httpVersion: '1.1', referer: head.referer, userAgent: head.userAgent, length, requestId, alternative });

  /** Answers the client from here (404, redirects, 502...); returns `close`. */
  const respond = (head: RequestHead, route: Route | undefined, status: number, headers: Array<[string, string]>, body: string, close: boolean, length: number, started = performance.now(), tried: string[] = []): boolean => {
    if (!socket.destroyed) socket.write(simpleResponse(status, STATUS_TEXT[status] ?? '', headers, body, close || head.close), 'latin1');
    if (close) socket.end();
    const seconds = (performance.now() - started) / 1000;
    ctx.metrics.request(route, head.method, status, seconds);
    ctx.accessLog.request(logged(head, length, head.requestId ?? newRequestId()), status, seconds, route, tried.join(', ') || '-', tried.length ? String(status) : '-', String(Buffer.byteLength(body)));
    return close;
  };

  /** One request, as decided; `done` is told whether the connection must close. */
  const serve = (head: RequestHead, d: Decision, received: Buffer, headBytes: number, bodyAt: number, done: (close: boolean) => void): void => {
    const started = performance.now();
    const length = received.length;
    if (d.kind === 'answer') return done(respond(head, d.route, d.status, tracePort(headerOf(head, TRACE_HEADER)) ? [...d.headers, traceAnswer(d)] : d.headers, d.body, false, length, started));
    const { route } = d;
    const requestId = head.requestId ?? newRequestId();
    const body = head.contentLength ? received.subarray(bodyAt) : undefined;
    const request = upstreamRequest(received, headBytes, head, body, scheme, port, remote, ctx.trust, requestId, d.target);
    const tried: string[] = [];
    const traced = tracePort(headerOf(head, TRACE_HEADER));
    const fail = (status: number) => done(respond(head, route, status, [['content-type', 'text/html'], ...(traced && tried.length ? [traceRoute(d, tried.at(-1)!, tried.slice(0, -1))] : [])], errorPage(status), false, length, started, tried));
    const failed = (code: string, connecting: boolean): void => {
      const next = afterFailure({ code, connecting, responseBegun: false }, head.method, tried.length);
      if (next !== 'retry') return fail(next === 'cut' ? 502 : next);
      ctx.metrics.retry(route, code);
      attempt();
    };

    // Each attempt takes an endpoint not tried yet (afterFailure says when another is tried).
    const attempt = (): void => {
      const endpoint = nextEndpoint(d, tried, ctx.pick);
      if (!endpoint) return fail(502);
      tried.push(endpoint);
      // A traced request's attempts leave from the trace's ports: the first from its port, a retry from the next.
      const localPort = traced ? traced + tried.length - 1 : undefined;
      ctx.pools.acquire(endpoint, route.options.backendTls, route.options.connectTimeoutMs, (e, conn) => {
        if (!conn) return failed(e?.code ?? '', true);
        const added = addedHeaders(d, endpoint, scheme === 'https');
        const sink = new ClientSink(socket, head.close, headerLines(traced ? [...added, traceRoute(d, endpoint, tried.slice(0, -1))] : added));
        conn.exchange(request, head.method === 'HEAD', sink, route.options.readTimeoutMs, (o) => {
          if (o.reusable) ctx.pools.release(conn);
          if (!o.error || o.status) {
            const seconds = (performance.now() - started) / 1000;
            ctx.metrics.request(route, head.method, o.status, seconds);
            ctx.accessLog.request(logged(head, length, requestId, d.alternative), o.status, seconds, route, tried.length === 1 ? endpoint : tried.join(', '), String(o.status), o.length);
            if (o.error) socket.destroy(); // the response had begun: the client sees it cut, as from nginx
            return done(sink.close);
          }
          failed(o.error, false);
        });
      }, localPort);
    };
    attempt();
  };

  socket.on('data', onData);
  socket.on('timeout', onTimeout);
  socket.on('error', onError);
}
