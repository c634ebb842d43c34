// The ingress data plane: HTTP on :80 and HTTPS on :443 of the node (its own network
// namespace, as ingress-nginx with hostNetwork), proxying straight to the endpoint pods of
// the matched route. Upstream connections are keep-alive pools per endpoint (undici); a
// failed connect is retried on another endpoint, as nginx's proxy_next_upstream does.
// Configuration changes swap the route table; requests in flight keep the route they had.

import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { Pool } from 'undici';
import type { AccessLog } from './accesslog.ts';
import { Forward, upstreamHeaders } from './forward.ts';
import type { IngressMetrics } from './metrics.ts';
import { requestHost, requestPath } from './paths.ts';
import { matchRoute, secretForServerName, type Route, type RouteTable, type Upstream } from './routes.ts';

export interface ProxyConfig {
  table: RouteTable;
  /** namespace/name of a Secret -> its context. */
  contexts: Map<string, SecureContext>;
}

export interface ProxyOptions {
  /** ingress-nginx's use-forwarded-headers: trust the client's X-Forwarded-* (behind another proxy). */
  trustForwardedHeaders: boolean;
  defaultCertificate: { cert: string; key: string };
  metrics: IngressMetrics;
  accessLog: AccessLog;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Errors where the endpoint never got the request: any request may go to another one. */
const CONNECT_FAILED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Errors where the connection died before a response: safe to retry idempotent requests. */
const CONNECTION_LOST = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TRIES = 3;

const STATUS_TEXT: Record<number, string> = { 404: 'Not Found', 413: 'Request Entity Too Large', 502: 'Bad Gateway', 503: 'Service Temporarily Unavailable', 504: 'Gateway Timeout' };

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

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined | 'too large'> {
  const length = req.headers['content-length'];
  if (!req.headers['transfer-encoding'] && (length === undefined || length === '0')) return Promise.resolve(undefined);
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
  private readonly balancer = new Balancer();
  private readonly servers: Server[] = [];

  constructor(private readonly opts: ProxyOptions, initial: ProxyConfig) {
    this.config = initial;
  }

  /** Swaps in a new configuration; pools of endpoints that are gone drain and close. */
  configure(config: ProxyConfig): void {
    this.config = config;
    const live = new Set<string>();
    const all = [config.table.anyHost, ...config.table.hosts.values(), ...config.table.wildcards.values()];
    for (const g of all) for (const r of g.routes) for (const ep of r.upstream.endpoints) live.add(`${ep}/${r.options.connectTimeoutMs}`);
    for (const ep of config.table.defaultBackend?.upstream.endpoints ?? []) live.add(`${ep}/${config.table.defaultBackend!.options.connectTimeoutMs}`);
    for (const [k, pool] of this.pools) {
      if (live.has(k)) continue;
      this.pools.delete(k);
      void pool.close().catch(() => undefined);
    }
  }

  private pool(endpoint: string, connectTimeoutMs: number): Pool {
    const k = `${endpoint}/${connectTimeoutMs}`;
    let p = this.pools.get(k);
    if (!p) {
      // Idle connections closed before the backend's own keep-alive timeout (Node's is 5 s).
      p = new Pool(`http://${endpoint}`, { connect: { timeout: connectTimeoutMs }, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 60_000 });
      this.pools.set(k, p);
    }
    return p;
  }

  /** Listens on the node's :80 and :443 (this process runs in the node's network namespace). */
  async listen(httpPort = 80, httpsPort = 443, host = '0.0.0.0'): Promise<void> {
    const http = createHttpServer({ keepAliveTimeout: 75_000 }, (req, res) => void this.handle(req, res, 'http', httpPort));
    const https = createHttpsServer(
      {
        ...this.opts.defaultCertificate,
        keepAliveTimeout: 75_000,
        minVersion: 'TLSv1.2',
        SNICallback: (name, cb) => {
          const secret = secretForServerName(this.config.table, name.toLowerCase());
          cb(null, secret ? this.config.contexts.get(secret) : undefined);
        },
      },
      (req, res) => void this.handle(req, res, 'https', httpsPort),
    );
    for (const [server, scheme, port] of [[http, 'http', httpPort], [https, 'https', httpsPort]] as const) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket as Socket, head, scheme, port));
      server.on('clientError', (_e, socket: Duplex) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        else socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      this.servers.push(server);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise((r) => { s.close(r); s.closeIdleConnections(); })));
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https', port: number): Promise<void> {
    const started = performance.now();
    const host = requestHost(req.headers.host);
    const route = matchRoute(this.config.table, host, requestPath(req.url ?? '/'));
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? randomUUID().replaceAll('-', '');
    let bytes: string | undefined; // the response's length, for the access log
    const done = (status: number, upstreamAddr = '-', upstreamStatus = '-') => {
      const seconds = (performance.now() - started) / 1000;
      this.opts.metrics.request(route, req.method ?? 'GET', status, seconds);
      this.opts.accessLog.request(req, status, seconds, route, upstreamAddr, upstreamStatus, requestId, bytes);
    };
    const fail = (status: number, tried: string[] = []) => {
      if (!res.headersSent) {
        const body: string = `<html>\r\n<head><title>${status} ${STATUS_TEXT[status]}</title></head>\r\n<body>\r\n<center><h1>${status} ${STATUS_TEXT[status]}</h1></center>\r\n<hr><center>kubewire</center>\r\n</body>\r\n</html>\r\n`;
        bytes = String(Buffer.byteLength(body));
        res.writeHead(status, { 'content-type': 'text/html', 'content-length': bytes }).end(body);
      } else res.destroy();
      done(status, tried.join(', ') || '-', tried.length ? String(status) : '-');
    };

    if (!route) return fail(404);
    if (scheme === 'http' && route.tls) {
      bytes = '0';
      res.writeHead(308, { location: `https://${host}${req.url ?? '/'}`, 'content-length': 0 }).end();
      return done(308);
    }
    const upstream = route.upstream;
    if (!upstream.endpoints.length) return fail(503);
    let body: Buffer | undefined | 'too large';
    try {
      body = await readBody(req, route.options.bodyLimit);
    } catch {
      return fail(400);
    }
    if (body === 'too large') return fail(413);

    const headers = upstreamHeaders(req, scheme, port, this.opts.trustForwardedHeaders, requestId);
    const tried: string[] = [];
    const method = req.method ?? 'GET';
    let attempt: Forward | undefined;
    for (;;) {
      const endpoint = this.balancer.pick(upstream, tried);
      if (!endpoint) return fail(502, tried);
      tried.push(endpoint);
      const err = await new Promise<Error | undefined>((resolve) => {
        const forward = new Forward(res, resolve);
        attempt = forward;
        this.pool(endpoint, route.options.connectTimeoutMs).dispatch({ path: req.url ?? '/', method: method as 'GET', headers, body, headersTimeout: route.options.readTimeoutMs, bodyTimeout: route.options.readTimeoutMs }, forward);
      });
      bytes = attempt!.length;
      if (!err) return done(attempt!.status, tried.join(', '), String(attempt!.status));
      if (attempt!.status) {
        // The response had begun: nothing to retry; the client sees the connection cut, as from nginx.
        res.destroy();
        return done(attempt!.status, tried.join(', '), String(attempt!.status));
      }
      const code = (err as { code?: string }).code ?? '';
      const retryable = CONNECT_FAILED.has(code) || (CONNECTION_LOST.has(code) && IDEMPOTENT.has(method));
      if (retryable && tried.length < TRIES) {
        this.opts.metrics.retry(route, code);
        continue;
      }
      return fail(code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' ? 504 : 502, tried);
    }
  }

  /** Upgrades (websocket and others) are tunnelled: the request goes to an endpoint, then bytes flow both ways. */
  private upgrade(req: IncomingMessage, client: Socket, head: Buffer, scheme: 'http' | 'https', port: number): void {
    const started = performance.now();
    const host = requestHost(req.headers.host);
    const route: Route | undefined = matchRoute(this.config.table, host, requestPath(req.url ?? '/'));
    const requestId = (req.headers['x-request-id'] as string | undefined) ?? randomUUID().replaceAll('-', '');
    const reject = (status: number) => {
      client.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      this.opts.metrics.request(route, req.method ?? 'GET', status, (performance.now() - started) / 1000);
    };
    if (!route) return reject(404);
    if (!route.upstream.endpoints.length) return reject(503);
    client.on('error', () => undefined);
    const headers = upstreamHeaders(req, scheme, port, this.opts.trustForwardedHeaders, requestId);
    headers.push('connection', 'upgrade', 'upgrade', String(req.headers.upgrade));
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
    const tried: string[] = [];
    const attempt = () => {
      const endpoint = this.balancer.pick(route.upstream, tried);
      if (!endpoint) return reject(502);
      tried.push(endpoint);
      const colon = endpoint.lastIndexOf(':');
      const upstream = netConnect({ host: endpoint.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(endpoint.slice(colon + 1)), timeout: route.options.connectTimeoutMs });
      upstream.once('timeout', () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
      upstream.once('error', () => {
        if (upstream.connecting || !upstream.bytesWritten) return tried.length < TRIES ? attempt() : reject(502);
        client.destroy();
      });
      upstream.once('connect', () => {
        upstream.setTimeout(0);
        upstream.write(`${lines}\r\n`);
        if (head.length) upstream.write(head);
        // The endpoint's status line (101 when it agrees) is what the metrics count.
        upstream.once('data', (first: Buffer) => {
          const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(first.subarray(0, 16).toString('latin1'))?.[1] ?? 502);
          this.opts.metrics.request(route, req.method ?? 'GET', status, (performance.now() - started) / 1000);
        });
        upstream.pipe(client).pipe(upstream);
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
      });
    };
    attempt();
  }
}
