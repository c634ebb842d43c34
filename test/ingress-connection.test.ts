// The fast path's connection handling over real loopback sockets (127.0.0.1 in the test's
// own process: no lab namespace needed, nothing of the machine's network touched): keep-alive
// and pipelined requests answered in order whether the proxy answers them itself or an
// endpoint does, a rewritten URL, a retry on another endpoint after a refused connect, the
// keep-alive connections to the endpoint reused, the client's Connection: close obeyed, and a
// rate limit counted as nginx's limit_req.

import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import type { EndpointSlice, Ingress, Service } from '../src/api/types.ts';
import { AccessLog } from '../src/ingress/accesslog.ts';
import { serveConnection, type FastPathContext } from '../src/ingress/connection.ts';
import { RateLimiter } from '../src/ingress/limits.ts';
import { IngressMetrics } from '../src/ingress/metrics.ts';
import { Balancer } from '../src/ingress/proxy.ts';
import { buildRoutes } from '../src/ingress/routes.ts';
import type { RouteTable } from '../src/ingress/table.ts';
import { UpstreamPools } from '../src/ingress/upstream.ts';

let backend: HttpServer;
let proxy: Server;
let refused: Server;
const upstreamSockets = new Set<string>();
const logged: string[] = [];
const pools = new UpstreamPools();

/** Sends `raw` on one connection and reads until the proxy closes it. */
function exchange(raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect((proxy.address() as AddressInfo).port, '127.0.0.1', () => s.write(raw)); // no half-close: as nginx, a client FIN ends the connection
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', reject);
    setTimeout(() => s.destroy(new Error(`no close; got ${JSON.stringify(out)}`)), 3000).unref();
  });
}

before(async () => {
  backend = createHttpServer((req, res) => {
    upstreamSockets.add(`${req.socket.remotePort}`);
    res.end(`${req.method} ${req.url} via ${req.headers['x-forwarded-host']}`);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  // A port that refuses: a listener closed again.
  refused = createServer();
  await new Promise<void>((r) => refused.listen(0, '127.0.0.1', r));
  const deadPort = (refused.address() as AddressInfo).port;
  await new Promise<void>((r) => refused.close(() => r()));

  const port = (backend.address() as AddressInfo).port;
  const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ port: 80 }] } };
  const slice = (name: string, p: number): EndpointSlice => ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ name: '', port: p, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }] });
  const ingress = (name: string, host: string, path: string, annotations: Record<string, string> = {}): Ingress => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: 'default', annotations, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { rules: [{ host, http: { paths: [{ path, pathType: 'ImplementationSpecific', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
  });
  const { table } = buildRoutes({
    ingresses: [
      ingress('a', 'a.com', '/'),
      ingress('r', 'r.com', '/api(/|$)(.*)', { 'nginx.ingress.kubernetes.io/rewrite-target': '/v2/$2' }),
      ingress('l', 'l.com', '/', { 'nginx.ingress.kubernetes.io/limit-rps': '1' }),
      // /public open, /admin only for 10.0.0.0/8 (this test's client, 127.0.0.1, gets 403).
      ingress('public', 'sec.com', '/public'),
      ingress('admin', 'sec.com', '/admin', { 'nginx.ingress.kubernetes.io/allowlist-source-range': '10.0.0.0/8' }),
    ],
    services: [service],
    slices: [slice('web-1', port), slice('web-2', deadPort)],
    usableSecrets: new Set(),
  });
  const balancer = new Balancer();
  const ctx: FastPathContext = {
    table: (): RouteTable => table,
    pick: (u, tried) => balancer.pick(u, tried),
    pools,
    trust: false,
    metrics: new IngressMetrics(),
    accessLog: new AccessLog('', (bytes) => logged.push(bytes.toString('latin1'))),
    fallback: (socket) => socket.destroy(),
    connections: new Set(),
    limiter: new RateLimiter(),
  };
  proxy = createServer((socket) => serveConnection(socket, 'http', 80, ctx));
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
});

after(async () => {
  pools.close();
  await new Promise((r) => proxy.close(r));
  backend.closeAllConnections();
  await new Promise((r) => backend.close(r));
});

test('pipelined requests are answered in order, by the proxy itself or by the endpoint; Connection: close ends it', async () => {
  const requests = [
    'GET /one HTTP/1.1\r\nHost: nowhere.com\r\n\r\n',
    'GET /two HTTP/1.1\r\nHost: a.com\r\n\r\n',
    'GET /three HTTP/1.1\r\nHost: nowhere.com\r\n\r\n',
    'POST /four HTTP/1.1\r\nHost: a.com\r\nContent-Length: 3\r\n\r\nabc',
    'GET /api/x?y=1 HTTP/1.1\r\nHost: r.com\r\nConnection: close\r\n\r\n',
    'GET /never HTTP/1.1\r\nHost: a.com\r\n\r\n',
  ];
  const out = await exchange(requests.join(''));
  const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['404', '200', '404', '200', '200'], out);
  const order = ['GET /two via a.com', 'POST /four via a.com', 'GET /v2/x?y=1 via r.com'].map((b) => out.indexOf(b));
  assert.ok(order.every((at, i) => at > 0 && (i === 0 || at > order[i - 1]!)), `the endpoint's answers, in order (the last rewritten, its query kept):\n${out}`);
  assert.ok(!out.includes('/never'), 'nothing served after Connection: close');
  assert.match(out, /connection: close\r\n/i, 'the last response says close');
});

test('a refused endpoint is skipped for another; connections to the endpoint are kept alive and reused', async () => {
  upstreamSockets.clear();
  for (let i = 0; i < 4; i++) {
    const out = await exchange(`GET /n${i} HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n`);
    assert.match(out, new RegExp(`^HTTP/1\\.1 200 [\\s\\S]*GET /n${i} via a\\.com$`), out);
  }
  assert.equal(upstreamSockets.size, 1, 'one keep-alive connection served all four');
  await new Promise((r) => setTimeout(r, 150)); // the access log's 100 ms
  const lines = logged.join('').split('\n').filter((l) => l.includes('"GET /n'));
  assert.equal(lines.length, 4);
  assert.ok(lines.some((l) => / 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ - [\d.]+ 200 /.test(l)), `a request that went to the second endpoint after the first refused:\n${lines.join('\n')}`);
});

test('limit-rps as nginx\'s limit_req with burst 5x and nodelay: six at once pass, the seventh is refused (503)', async () => {
  const request = (last: boolean) => `GET /x HTTP/1.1\r\nHost: l.com\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
  const out = await exchange(Array.from({ length: 8 }, (_, i) => request(i === 7)).join(''));
  const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '200', '200', '200', '200', '200', '503', '503'], out);
});

test("paths are normalised before the route is chosen (nginx's $uri); what climbs above the root, two Hosts: 400 and the connection ends", async () => {
  const status = async (target: string, host = 'sec.com') => {
    const out = await exchange(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    return `${/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1]} ${out.slice(out.indexOf('\r\n\r\n') + 4)}`;
  };
  assert.equal(await status('/public/x'), '200 GET /public/x via sec.com');
  for (const escape of ['/public/../admin', '/public/%2e%2e/admin', '/public//../admin', '/public/.%2E/admin', '/public/../ADMIN/../admin/x']) {
    assert.match(await status(escape), /^403 /, `${escape} is /admin's, and its allowlist applies`);
  }
  assert.equal(await status('/x/../public/a%20b?q=/../'), '200 GET /x/../public/a%20b?q=/../ via sec.com', "the endpoint gets the target as sent (nginx's $request_uri)");
  assert.equal(await status('/public/y', 'SEC.com.'), '200 GET /public/y via SEC.com.', 'a trailing dot and case do not change the host');
  for (const bad of ['/../../etc/passwd', '/public/../../x', '/public/%00', '/public/%zz']) assert.match(await status(bad), /^400 .*400 Bad Request/s, bad);
  const twoHosts = await exchange('GET /public/x HTTP/1.1\r\nHost: sec.com\r\nHost: a.com\r\n\r\nGET /public/y HTTP/1.1\r\nHost: sec.com\r\n\r\n');
  assert.match(twoHosts, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close\r\n/);
  assert.ok(!twoHosts.includes('/public/y'), 'nothing served after the 400');
});
