// Generated requests against the whole ingress proxy (fast path, Node's HTTP server behind it)
// over loopback (127.0.0.1 in the test's own process; no lab namespace needed): request
// lines in every form, paths built of dot segments, escapes and slashes, hosts with ports,
// dots and junk, duplicated and malformed headers, bodies that lie about their length. Each
// must get an answer or a clean close within its time; none may be a 5xx of the proxy's own
// making (the backend answers 200 or its own 4xx); and no request whose path is /admin's once
// normalised may reach the backend, whose /admin route only 10.0.0.0/8 may use. Bounded: a
// fixed number of requests from a fixed seed, a time limit each. FUZZ_SHOW=400 (or any
// status, or closed) prints the requests that got it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { EndpointSlice, Ingress, Service } from '../src/api/types.ts';
import { AccessLog } from '../src/ingress/accesslog.ts';
import { IngressMetrics } from '../src/ingress/metrics.ts';
import { normalizePath } from '../src/ingress/paths.ts';
import { IngressProxy } from '../src/ingress/proxy.ts';
import { buildRoutes } from '../src/ingress/routes.ts';

const REQUESTS = 3000;
const PARALLEL = 16;
const PER_REQUEST_MS = 5000;

let dir: string;
let backend: HttpServer;
let proxy: IngressProxy;
let port: number;
/** What the backend received, raw target and all. */
const received: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kwt-fuzz-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=fuzz', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
  backend = createHttpServer((req, res) => {
    received.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'app', namespace: 'default' }, spec: { ports: [{ port: 80 }] } };
  const slice: EndpointSlice = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'app-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'app' } }, addressType: 'IPv4', ports: [{ name: '', port: (backend.address() as AddressInfo).port, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }] };
  const ingress = (name: string, path: string, annotations: Record<string, string> = {}): Ingress => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: 'default', annotations, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { rules: [{ host: 'sec.com', http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: 'app', port: { number: 80 } } } }] } }] },
  });
  const { table } = buildRoutes({
    ingresses: [ingress('public', '/public'), ingress('root', '/'), ingress('admin', '/admin', { 'nginx.ingress.kubernetes.io/allowlist-source-range': '10.0.0.0/8' })],
    services: [service],
    slices: [slice],
    usableSecrets: new Set(),
  });
  proxy = new IngressProxy(
    { trustForwardedHeaders: false, defaultCertificate: { cert: readFileSync(join(dir, 'c'), 'utf8'), key: readFileSync(join(dir, 'k'), 'utf8') }, metrics: new IngressMetrics(), accessLog: new AccessLog('', () => undefined) },
    { table, certificates: new Map() },
  );
  await proxy.listen(0, 0, '127.0.0.1');
  port = proxy.ports().http;
});

after(async () => {
  await proxy.close();
  backend.closeAllConnections();
  await new Promise((r) => backend.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** A small deterministic generator (the same requests every run). */
function generator(seed: number) {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, pick };
}

/** Path segments: the ones that route (with dot segments that move between routes), then the hostile ones. */
const SEGMENTS = ['public', 'public', 'admin', 'admin', 'ADMIN', 'x', 'x', '.', '..', '%2e', '%2E%2e', '.%2e', '', '%2f', 'a%20b', '%C3%A9', '~', 'admin;x', '..%2f'];
const HOSTILE = ['%00', '%zz', '%', '%4', 'é', '%ff', '*', '\\', '%5c', '%2e.'];
const HOSTS = ['sec.com', 'sec.com', 'sec.com', 'SEC.COM', 'sec.com.', 'sec.com:80', 'sec.com.:8080', 'sec..com', 'other.com', '', ' sec.com', 'sec.com/x', '[::1]', '[::1', 'sec.com\t'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'get', 'CONNECT', 'TRACE', 'PATCH'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1', ''];

const BENIGN_HEADERS = ['Content-Length: 3', 'Content-Length: 0', 'Connection: close', 'Connection: keep-alive, X-Drop', 'Expect: 100-continue', 'X-Forwarded-For: 6.6.6.6', 'Cookie: a=b', 'Origin: http://evil', 'Authorization: Basic !!!', 'Accept: */*'];
const HOSTILE_HEADERS = [
  'Content-Length: -1', 'Content-Length: 99999999999999999999', 'Content-Length: 3\r\nContent-Length: 4', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked',
  'Upgrade: websocket\r\nConnection: Upgrade', 'Bad Header: x', ' folded: y', 'Host : sec.com', 'X-Nul: a\0b', 'X-Long: ' + 'a'.repeat(70_000),
];

function request(g: ReturnType<typeof generator>): string {
  const segs = Array.from({ length: 1 + Math.floor(g.next() * 6) }, () => (g.next() < 0.05 ? g.pick(HOSTILE) : g.pick(SEGMENTS)));
  let target = `/${segs.join('/')}`;
  if (g.next() < 0.2) target += `?${g.pick(['q=1', 'q=/../admin', 'a=%2e%2e', '', '#frag'])}`;
  if (g.next() < 0.1) target = `http://${g.pick(HOSTS)}${target}`;
  if (g.next() < 0.03) target = g.pick(['*', 'sec.com:443', '', 'admin', 'http://', 'http://sec.com', '//admin']);
  const lines = [`${g.pick(METHODS)} ${target} ${g.pick(VERSIONS)}`.trimEnd()];
  const hosts = g.next() < 0.1 ? 2 : g.next() < 0.05 ? 0 : 1;
  for (let i = 0; i < hosts; i++) lines.push(`Host: ${g.pick(HOSTS)}`);
  let body = '';
  const extra = Math.floor(g.next() * 4);
  for (let i = 0; i < extra; i++) {
    lines.push(g.next() < 0.75 ? g.pick(BENIGN_HEADERS) : g.pick(HOSTILE_HEADERS));
  }
  if (lines.some((l) => l.startsWith('Content-Length: 3')) || g.next() < 0.1) body = g.pick(['abc', '3\r\nabc\r\n0\r\n\r\n', 'GET /admin HTTP/1.1\r\nHost: sec.com\r\n\r\n']);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** The status of the first final response in `out` once it is complete (1xx skipped), else undefined. */
function completeStatus(out: string, head: boolean): string | undefined {
  for (let at = 0; ; ) {
    const end = out.indexOf('\r\n\r\n', at);
    if (end < 0) return undefined;
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(out.slice(at))?.[1];
    if (!status) return `garbage ${JSON.stringify(out.slice(at, at + 80))}`;
    const fields = out.slice(at, end).toLowerCase();
    if (status.startsWith('1')) {
      at = end + 4;
      continue;
    }
    const body = out.slice(end + 4);
    const length = /\r\ncontent-length: *(\d+)/.exec(fields)?.[1];
    if (head || status === '204' || status === '304') return status;
    if (length !== undefined) return body.length >= Number(length) ? status : undefined;
    if (/\r\ntransfer-encoding: *chunked/.test(fields)) return body.includes('0\r\n\r\n') ? status : undefined;
    return undefined; // delimited by the close
  }
}

/**
 * Sends one request as a client would (no half-close: nginx, like the fast path, ends a
 * connection at the client's FIN). A request still waiting for more of its body after a
 * second gets the FIN. Resolves to the final status, or 'closed' when the proxy hung up
 * without one.
 */
function send(raw: string): Promise<string> {
  const head = raw.startsWith('HEAD ');
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(raw, 'latin1'));
    let out = '';
    let settled = false;
    const settle = (status: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(nudge);
      clearTimeout(timer);
      s.destroy();
      resolve(status);
    };
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      out += d;
      const status = completeStatus(out, head);
      if (status) settle(status);
    });
    s.on('error', () => undefined); // a reset after an answer is fine; what was read counts
    s.on('close', () => settle(completeStatus(out, head) ?? /^HTTP\/1\.[01] (\d{3})/.exec(out)?.[1] ?? (out ? `garbage ${JSON.stringify(out.slice(0, 80))}` : 'closed')));
    const nudge = setTimeout(() => s.end(), 1000);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer and no close within ${PER_REQUEST_MS} ms to ${JSON.stringify(raw.slice(0, 200))}`));
    }, PER_REQUEST_MS);
  });
}

test(`${REQUESTS} generated requests: each answered or closed in time, no 5xx of the proxy's own, nothing reaches /admin past its rule`, async () => {
  const g = generator(20261201);
  const requests = Array.from({ length: REQUESTS }, () => request(g));
  const tally = new Map<string, number>();
  const fives: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < requests.length) {
        const raw = requests[next++]!;
        const status = await send(raw);
        tally.set(status, (tally.get(status) ?? 0) + 1);
        if (process.env.FUZZ_SHOW === status) process.stdout.write(`# ${status} ${JSON.stringify(raw.slice(0, 160))}\n`);
        if (status.startsWith('5') || status.startsWith('garbage')) fives.push(`${status} for ${JSON.stringify(raw.slice(0, 300))}`);
      }
    }),
  );
  assert.deepEqual(fives, [], `answers of the proxy's own making:\n${fives.slice(0, 10).join('\n')}`);
  // The backend never got a request whose normalised path is /admin's (its rule would have refused it).
  const escaped = received.filter((url) => {
    const path = url.split(/[?#]/)[0]!;
    const normal = path.startsWith('/') ? normalizePath(path) : undefined;
    return normal !== undefined && /^\/admin(\/|$)/.test(normal); // locations are case-sensitive: /ADMIN is not /admin's
  });
  assert.deepEqual(escaped, [], 'requests that reached /admin past its allowlist');
  assert.ok((tally.get('200') ?? 0) > REQUESTS / 20, `enough requests went through to mean something: ${JSON.stringify([...tally])}`);
  assert.ok((tally.get('400') ?? 0) > REQUESTS / 10, `and enough were refused: ${JSON.stringify([...tally])}`);
  assert.ok((tally.get('403') ?? 0) > 0, `and /admin's rule was met: ${JSON.stringify([...tally])}`);
  // Still serving.
  assert.equal(await send('GET /public/ok HTTP/1.1\r\nHost: sec.com\r\nConnection: close\r\n\r\n'), '200');
  process.stdout.write(`# statuses: ${JSON.stringify(Object.fromEntries([...tally].sort()))}\n`);
});

test('generated paths over HTTP/2 (TLS, ALPN h2): no 5xx of the proxy\'s own, nothing reaches /admin past its rule', async () => {
  const g = generator(7);
  const session = http2Connect(`https://127.0.0.1:${proxy.ports().https}`, { rejectUnauthorized: false, servername: 'sec.com' } as object);
  session.on('error', () => undefined);
  const before = received.length;
  const tally = new Map<string, number>();
  try {
    for (let i = 0; i < 300; i++) {
      const segs = Array.from({ length: 1 + Math.floor(g.next() * 6) }, () => (g.next() < 0.05 ? g.pick(HOSTILE) : g.pick(SEGMENTS)));
      const path = `/${segs.join('/')}`;
      const status = await new Promise<string>((resolve) => {
        const req = session.request({ ':path': path, ':authority': g.pick(['sec.com', 'SEC.com.', 'sec.com:443']) });
        req.on('response', (h) => resolve(String(h[':status'])));
        req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
        req.resume();
        req.end();
        setTimeout(() => resolve('timeout'), PER_REQUEST_MS).unref();
      });
      tally.set(status, (tally.get(status) ?? 0) + 1);
      assert.ok(!status.startsWith('5') && status !== 'timeout', `${status} for ${path}`);
    }
  } finally {
    session.destroy();
  }
  const escaped = received.slice(before).filter((url) => /^\/admin(\/|$)/.test(normalizePath(url.split(/[?#]/)[0]!) ?? ''));
  assert.deepEqual(escaped, []);
  assert.ok((tally.get('200') ?? 0) > 30 && (tally.get('400') ?? 0) > 10 && (tally.get('403') ?? 0) > 5, JSON.stringify([...tally]));
});
