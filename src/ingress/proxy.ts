// The ingress data plane: HTTP on :80 and HTTPS on :443 of the node (its own network
// namespace, as ingress-nginx with hostNetwork), proxying straight to the endpoint pods of
// the matched route. Connections start on the fast path (connection.ts: heads read off the
// socket, keep-alive connections per endpoint); a request it does not take (upgrades,
// chunked uploads, Expect, HTTP/1.0) hands its connection to Node's HTTP server, served
// here with undici's pools. HTTPS clients that offer HTTP/2 (ALPN h2, as ingress-nginx
// serves it) go to Node's HTTP/2 server, served the same way. Either way a failed connect is
// retried on another endpoint, as nginx's proxy_next_upstream does. Configuration changes
// swap the route table; requests in flight keep the route they had.

import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Server as TlsServer } from 'node:tls';
import { Pool } from 'undici';
import { loggedRequest, type AccessLog } from './accesslog.ts';
import { KEEPALIVE_MS, newRequestId, serveConnection } from './connection.ts';
import { addedHeaders, afterFailure, decide, nextEndpoint, type RequestFacts } from './decide.ts';
import { clientAddress, Forward, upstreamHeaders, type ClientRequest } from './forward.ts';
import { errorPage, simpleResponse, STATUS_TEXT } from './http1.ts';
import { RateLimiter } from './limits.ts';
import type { IngressMetrics } from './metrics.ts';
import { parseRequestUri, type RequestUri } from './paths.ts';
import { secretForServerName } from './routes.ts';
import type { Route, RouteTable, Upstream } from './table.ts';
import { terminateTls, terminatingServer, type KeyPair } from './terminate.ts';
import { dialEndpoint, UpstreamPools } from './upstream.ts';

/** The request line and Host read as nginx does; undefined for what nginx answers 400 (two Hosts among them). */
function requestUri(req: ClientRequest): RequestUri | undefined {
  if (((req as IncomingMessage).headersDistinct?.host?.length ?? 0) > 1) return undefined;
  return parseRequestUri(req.url ?? '/', req.headers.host ?? (req.headers[':authority'] as string | undefined));
}

/** What the decision reads of a request Node's HTTP/1 or HTTP/2 server parsed. */
function requestFacts(req: ClientRequest, scheme: 'http' | 'https', uri: RequestUri | undefined, trust: boolean): RequestFacts {
  const h = req.headers;
  const length = h['content-length'];
  return {
    scheme,
    method: req.method ?? 'GET',
    uri,
    contentLength: length !== undefined && !h['transfer-encoding'] ? Number(length) : undefined,
    header: (name) => {
      const v = h[name] ?? (name === 'host' ? h[':authority'] : undefined);
      return Array.isArray(v) ? v[0] : v;
    },
    client: () => clientAddress(req.socket.remoteAddress ?? '', trust, h['x-forwarded-for'] as string | undefined),
  };
}

export interface ProxyConfig {
  table: RouteTable;
  /** namespace/name of a Secret -> its certificate and key. */
  certificates: Map<string, KeyPair>;
}

export interface ProxyOptions {
  /** ingress-nginx's use-forwarded-headers: trust the client's X-Forwarded-* (behind another proxy). */
  trustForwardedHeaders: boolean;
  defaultCertificate: KeyPair;
  metrics: IngressMetrics;
  accessLog: AccessLog;
}

/** Round robin over an upstream's endpoints, skipping those already tried for this request. */
export class Balancer {
  private next = new WeakMap<Upstream, number>();
  pick(upstream: Upstream, tried: readonly string[]): string | undefined {
    const eps = upstream.endpoints;
    const start = this.next.get(upstream) ?? Math.floor(Math.random() * eps.length);
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[(start + i) % eps.length]!;
      if (!tried.includes(ep)) {
        this.next.set(upstream, (start + i + 1) % eps.length);
        return ep;
      }
    }
    return undefined;
  }
}

/** undici's pools are per endpoint, protocol and connect timeout (a pool's connector has one). */
const poolKey = (endpoint: string, tls: boolean, connectTimeoutMs: number) => `${tls ? 'https' : 'http'}://${endpoint}/${connectTimeoutMs}`;

function readBody(req: ClientRequest, limit: number): Promise<Buffer | undefined | 'too large'> {
  const length = req.headers['content-length'];
  // HTTP/2 says "no body" with the end of the stream on its headers, not with a length.
  const none = 'stream' in req ? req.stream.endAfterHeaders : !req.headers['transfer-encoding'] && (length === undefined || length === '0');
  if (none) return Promise.resolve(undefined);
  if (length !== undefined && Number(length) > limit) return Promise.resolve('too large');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too large');
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class IngressProxy {
  private config: ProxyConfig;
  private readonly pools = new Map<string, Pool>();
  private readonly fastPools = new UpstreamPools();
  private readonly balancer = new Balancer();
  private readonly servers: Server[] = [];
  private readonly fallbacks: HttpServer[] = [];
  private readonly connections = new Set<{ drain(): void }>();
  private readonly sessions = new Set<Http2Session>();
  private readonly limiter = new RateLimiter();
  /** The TLS server of each certificate (a new Secret version is a new key pair, so a new server). */
  private readonly tlsServers = new WeakMap<KeyPair, TlsServer>();

  constructor(private readonly opts: ProxyOptions, initial: ProxyConfig) {
    this.config = initial;
  }

  /** Swaps in a new configuration; pools of endpoints that are gone drain and close. */
  configure(config: ProxyConfig): void {
    this.config = config;
    const t = config.table;
    const routes = [...t.anyHost.routes, ...[...t.hosts.values(), ...t.wildcards.values()].flatMap((g) => g.routes), ...(t.defaultBackend ? [t.defaultBackend] : [])];
    const endpointsOf = (r: Route) => (r.canary ? [...r.upstream.endpoints, ...r.canary.upstream.endpoints] : r.upstream.endpoints);
    const live = new Set(routes.flatMap(endpointsOf));
    const livePools = new Set(routes.flatMap((r) => endpointsOf(r).map((ep) => poolKey(ep, r.options.backendTls, r.options.connectTimeoutMs))));
    for (const [k, pool] of this.pools) {
      if (livePools.has(k)) continue;
      this.pools.delete(k);
      void pool.close().catch(() => undefined);
    }
    this.fastPools.prune(live);
  }

  private pool(endpoint: string, tls: boolean, connectTimeoutMs: number): Pool {
    const k = poolKey(endpoint, tls, connectTimeoutMs);
    let p = this.pools.get(k);
    if (!p) {
      // Idle connections closed before the backend's own keep-alive timeout (Node's is 5 s);
      // HTTPS endpoints' certificates not verified, as ingress-nginx's proxy_ssl_verify off.
      p = new Pool(`${tls ? 'https' : 'http'}://${endpoint}`, { connect: { timeout: connectTimeoutMs, rejectUnauthorized: false }, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 60_000 });
      this.pools.set(k, p);
    }
    return p;
  }

  /** Listens on the node's :80 and :443 (this process runs in the node's network namespace). */
  async listen(httpPort = 80, httpsPort = 443, host = '0.0.0.0'): Promise<void> {
    const fallback = (scheme: 'http' | 'https', port: number) => {
      const server = createHttpServer({ keepAliveTimeout: KEEPALIVE_MS }, (req, res) => void this.handle(req, res, scheme, port));
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket as Socket, head, scheme, port));
      // CONNECT never reaches 'request' in Node's server: answered 405 as nginx does.
      server.on('connect', (_req: IncomingMessage, socket: Duplex) => socket.end(simpleResponse(405, STATUS_TEXT[405]!, [['content-type', 'text/html']], errorPage(405), true)));
      server.on('clientError', (_e, socket: Duplex) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        else socket.destroy();
      });
      this.fallbacks.push(server);
      return server;
    };
    const context = (scheme: 'http' | 'https', server: HttpServer) => ({
      table: () => this.config.table,
      pick: (u: Upstream, tried: readonly string[]) => this.balancer.pick(u, tried),
      pools: this.fastPools,
      trust: this.opts.trustForwardedHeaders,
      metrics: this.opts.metrics,
      accessLog: this.opts.accessLog,
      fallback: (socket: Socket, buffered: Buffer | undefined) => {
        if (buffered) socket.unshift(buffered);
        server.emit('connection', socket);
        socket.resume();
      },
      connections: this.connections,
      limiter: this.limiter,
    });
    const plain = context('http', fallback('http', httpPort));
    const secure = context('https', fallback('https', httpsPort));
    // Node's HTTP/2 compatibility response takes the calls made on a response here (writeHead
    // with a flat header list, write, end, 'drain', destroy), more than its types say.
    const h2 = createHttp2Server((req: Http2ServerRequest, res: Http2ServerResponse) => void this.handle(req, res as unknown as ServerResponse, 'https', httpsPort));
    h2.on('session', (session: Http2Session) => {
      session.setTimeout(KEEPALIVE_MS, () => session.close()); // idle, as nginx's keepalive_timeout
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
    });
    const http = createNetServer((socket) => serveConnection(socket, 'http', httpPort, plain));
    const terminating = (pair: KeyPair) => {
      let server = this.tlsServers.get(pair);
      if (!server) {
        server = terminatingServer(pair, ['h2', 'http/1.1'], (tls) => (tls.alpnProtocol === 'h2' ? h2.emit('connection', tls) : serveConnection(tls, 'https', httpsPort, secure)));
        this.tlsServers.set(pair, server);
      }
      return server;
    };
    const https = createNetServer((socket) =>
      terminateTls(socket, (name) => {
        const secret = name && secretForServerName(this.config.table, name);
        return terminating((secret && this.config.certificates.get(secret)) || this.opts.defaultCertificate);
      }),
    );
    for (const [server, port] of [[http, httpPort], [https, httpsPort]] as const) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      this.servers.push(server);
    }
  }

  /** The HTTP and HTTPS ports listened on (the kernel's choice where `listen` was given 0). */
  ports(): { http: number; https: number } {
    const [http, https] = this.servers.map((s) => (s.address() as AddressInfo).port);
    return { http: http!, https: https! };
  }

  /** Stops accepting; idle connections close now, busy ones once their response is out. */
  async close(): Promise<void> {
    const closed = Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    for (const c of this.connections) c.drain();
    for (const s of this.sessions) s.close(); // GOAWAY: streams in flight finish
    for (const f of this.fallbacks) {
      f.closeIdleConnections();
      setTimeout(() => f.closeAllConnections(), 5_000).unref(); // what Node's server still holds after 5 s
    }
    await closed;
    this.fastPools.close();
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
  }

  private async handle(req: ClientRequest, res: ServerResponse, scheme: 'http' | 'https', port: number): Promise<void> {
    const started = performance.now();
    const uri = requestUri(req);
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? newRequestId();
    let route: Route | undefined;
    let bytes: string | undefined; // the response's length, for the access log
    let alternative: Upstream | undefined; // the canary's, when it took the request
    const done = (status: number, upstreamAddr = '-', upstreamStatus = '-') => {
      const seconds = (performance.now() - started) / 1000;
      this.opts.metrics.request(route, req.method ?? 'GET', status, seconds);
      this.opts.accessLog.request(loggedRequest(req, requestId, alternative), status, seconds, route, upstreamAddr, upstreamStatus, bytes);
    };
    const answer = (status: number, headers: Array<[string, string]>, body: string, close: boolean, tried: string[] = []) => {
      if (res.headersSent) res.destroy();
      else {
        bytes = String(Buffer.byteLength(body));
        // HTTP/2 has no Connection header: the stream alone ends.
        const closing: Array<[string, string]> = close && !('stream' in req) ? [['connection', 'close']] : [];
        res.writeHead(status, [...headers, ['content-length', bytes], ...closing].flat()).end(body);
      }
      done(status, tried.join(', ') || '-', tried.length ? String(status) : '-');
    };
    const fail = (status: number, tried: string[] = []) => answer(status, [['content-type', 'text/html']], errorPage(status), status === 400, tried);

    // HTTP/0.9 ("GET /x" and no version) is refused, as nginx does for all but GET: nothing such a client could read.
    if (req.httpVersionMajor === 0) return void res.socket?.destroy();
    const d = decide(this.config.table, requestFacts(req, scheme, uri, this.opts.trustForwardedHeaders), this.limiter);
    route = d.route;
    if (d.kind === 'answer') return answer(d.status, d.headers, d.body, d.close);
    alternative = d.alternative;
    // A body of unknown length (chunked) meets its limit while it is read.
    let body: Buffer | undefined | 'too large';
    try {
      body = await readBody(req, d.route.options.bodyLimit);
    } catch {
      return fail(400);
    }
    if (body === 'too large') return answer(413, [['content-type', 'text/html']], errorPage(413), true);

    const headers = upstreamHeaders(req, scheme, port, this.opts.trustForwardedHeaders, requestId, uri!.authority);
    const target = d.target ?? uri!.uri;
    const options = d.route.options;
    const tried: string[] = [];
    const method = req.method ?? 'GET';
    let attempt: Forward | undefined;
    for (;;) {
      const endpoint = nextEndpoint(d, tried, (u, t) => this.balancer.pick(u, t));
      if (!endpoint) return fail(502, tried);
      tried.push(endpoint);
      const err = await new Promise<Error | undefined>((resolve) => {
        const forward = new Forward(res, resolve, addedHeaders(d, endpoint, scheme === 'https').flat());
        attempt = forward;
        this.pool(endpoint, options.backendTls, options.connectTimeoutMs).dispatch({ path: target, method: method as 'GET', headers, body, headersTimeout: options.readTimeoutMs, bodyTimeout: options.readTimeoutMs }, forward);
      });
      bytes = attempt!.length;
      if (!err) return done(attempt!.status, tried.join(', '), String(attempt!.status));
      const code = (err as { code?: string }).code ?? '';
      const next = afterFailure({ code, connecting: false, responseBegun: Boolean(attempt!.status) }, method, tried.length);
      if (next === 'cut') {
        // The response had begun: the client sees the connection cut, as from nginx.
        res.destroy();
        return done(attempt!.status, tried.join(', '), String(attempt!.status));
      }
      if (next !== 'retry') return fail(next, tried);
      this.opts.metrics.retry(d.route, code);
    }
  }

  /** Upgrades (websocket and others) are tunnelled: the request goes to an endpoint, then bytes flow both ways. */
  private upgrade(req: IncomingMessage, client: Socket, head: Buffer, scheme: 'http' | 'https', port: number): void {
    const started = performance.now();
    const uri = requestUri(req);
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? newRequestId();
    const d = decide(this.config.table, requestFacts(req, scheme, uri, this.opts.trustForwardedHeaders), this.limiter);
    const reject = (status: number, headers: Array<[string, string]> = []) => {
      client.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\nContent-Length: 0\r\n\r\n`);
      this.opts.metrics.request(d.route, req.method ?? 'GET', status, (performance.now() - started) / 1000);
    };
    if (d.kind === 'answer') return reject(d.status, d.headers.filter(([k]) => k !== 'content-type'));
    const { options } = d.route;
    client.on('error', () => undefined);
    // A session cookie is honoured (websockets of a sticky app stay with their endpoint); no new one is set on a 101.
    const headers = upstreamHeaders(req, scheme, port, this.opts.trustForwardedHeaders, requestId, uri!.authority);
    headers.push('connection', 'upgrade', 'upgrade', String(req.headers.upgrade));
    let lines = `${req.method} ${d.target ?? uri!.uri} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
    const tried: string[] = [];
    const attempt = () => {
      const endpoint = nextEndpoint(d, tried, (u, t) => this.balancer.pick(u, t));
      if (!endpoint) return reject(502);
      tried.push(endpoint);
      const { socket: upstream, ready } = dialEndpoint(endpoint, options.backendTls);
      upstream.setTimeout(options.connectTimeoutMs);
      upstream.once('timeout', () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT_CONNECT' })));
      let sent = false; // once the request is written, a failure cannot go to another endpoint
      upstream.once('error', (e: NodeJS.ErrnoException) => {
        if (sent) return void client.destroy();
        const next = afterFailure({ code: e.code ?? '', connecting: true, responseBegun: false }, req.method ?? 'GET', tried.length);
        if (next === 'retry') return attempt();
        reject(next === 'cut' ? 502 : next);
      });
      upstream.once(ready, () => {
        upstream.setTimeout(0);
        sent = true;
        upstream.write(`${lines}\r\n`);
        if (head.length) upstream.write(head);
        // The endpoint's status line (101 when it agrees) is what the metrics count.
        upstream.once('data', (first: Buffer) => {
          const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(first.subarray(0, 16).toString('latin1'))?.[1] ?? 502);
          this.opts.metrics.request(d.route, req.method ?? 'GET', status, (performance.now() - started) / 1000);
        });
        upstream.pipe(client).pipe(upstream);
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
      });
    };
    attempt();
  }
}
