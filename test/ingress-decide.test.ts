// The proxy's one decision per request (answer or forward, in nginx's phase order) and its
// one decision after a failed attempt, as tables: every transport (fast path, Node's
// HTTP/1 and HTTP/2 servers, upgrades) asks these, so the order of checks is the same on
// every path. No sockets here; the transports are tested end to end in ingress*.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointSlice, Ingress, Service } from '../src/api/types.ts';
import { addedHeaders, afterFailure, decide, nextEndpoint, type RequestFacts } from '../src/ingress/decide.ts';
import { parseRequestUri } from '../src/ingress/paths.ts';
import { buildRoutes } from '../src/ingress/routes.ts';

function ingress(name: string, host: string, path: string, svc: string, annotations: Record<string, string> = {}, tls = false): Ingress {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: 'default', uid: name, creationTimestamp: '2026-01-01T00:00:00Z', annotations },
    spec: {
      ...(tls ? { tls: [{ hosts: [host], secretName: 'cert' }] } : {}),
      rules: [{ host, http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: svc, port: { number: 80 } } } }] } }],
    },
  };
}
const service = (name: string): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
const slice = (svc: string, ips: string[]): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: '', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

const { table } = buildRoutes({
  ingresses: [
    ingress('web', 'web.example', '/', 'web'),
    ingress('small', 'small.example', '/', 'web', { 'nginx.ingress.kubernetes.io/proxy-body-size': '1k' }),
    ingress('moved', 'moved.example', '/', 'web', { 'nginx.ingress.kubernetes.io/permanent-redirect': 'https://elsewhere.example/' }),
    ingress('empty', 'empty.example', '/', 'nothing'),
    ingress('secure', 'secure.example', '/', 'web', {}, true),
    ingress('cors', 'cors.example', '/', 'web', { 'nginx.ingress.kubernetes.io/enable-cors': 'true' }),
    ingress('sticky', 'sticky.example', '/', 'web', { 'nginx.ingress.kubernetes.io/affinity': 'cookie' }),
    ingress('rewrite', 'rewrite.example', '/app', 'web', { 'nginx.ingress.kubernetes.io/rewrite-target': '/' }),
    ingress('allow', 'allow.example', '/', 'web', { 'nginx.ingress.kubernetes.io/whitelist-source-range': '192.0.2.0/24' }),
  ],
  services: [service('web'), service('nothing')],
  slices: [slice('web', ['10.244.1.2', '10.244.2.2'])],
  usableSecrets: new Set(['default/cert']),
});

function facts(target: string, host: string, over: Partial<RequestFacts> & { headers?: Record<string, string> } = {}): RequestFacts {
  const headers: Record<string, string> = { host, ...over.headers };
  return { scheme: 'http', method: 'GET', uri: parseRequestUri(target, host), contentLength: undefined, header: (n) => headers[n], client: () => '198.51.100.7', ...over };
}

test('answers come in nginx\'s phase order: 400, 405, 413 (for the location, or the default server), 404, own answers, 503', () => {
  const cases: Array<[string, RequestFacts, number, boolean]> = [
    ['a path above the root', facts('/../x', 'web.example'), 400, true],
    ['TRACE', facts('/', 'web.example', { method: 'TRACE' }), 405, true],
    ['TRACE to no route: 405 before 404', facts('/', 'nowhere.example', { method: 'TRACE' }), 405, true],
    ['a body over the location\'s limit', facts('/', 'small.example', { contentLength: 2048 }), 413, true],
    ['a body over the default limit, no route: 413 before 404', facts('/', 'nowhere.example', { contentLength: 2 * 1024 * 1024 }), 413, true],
    ['a body over the limit of a redirecting location: 413 before the redirect', facts('/', 'moved.example', { contentLength: 2 * 1024 * 1024 }), 413, true],
    ['no route', facts('/', 'nowhere.example'), 404, false],
    ['a redirect of its own', facts('/', 'moved.example'), 301, false],
    ['plain HTTP to a TLS host', facts('/x?y=1', 'secure.example'), 308, false],
    ['a client outside the allowlist', facts('/', 'allow.example'), 403, false],
    ['no endpoints', facts('/', 'empty.example'), 503, false],
    ['an unknown length is left to the reader', facts('/', 'small.example', { contentLength: undefined }), 0, false],
  ];
  for (const [what, req, status, close] of cases) {
    const d = decide(table, req);
    if (status === 0) assert.equal(d.kind, 'forward', what);
    else {
      assert.equal(d.kind, 'answer', what);
      assert.equal(d.kind === 'answer' && d.status, status, what);
      assert.equal(d.kind === 'answer' && d.close, close, what);
    }
  }
  const redirect = decide(table, facts('/x?y=1', 'secure.example'));
  assert.deepEqual(redirect.kind === 'answer' && redirect.headers, [['location', 'https://secure.example/x?y=1']]);
});

test('a forward carries the upstream, the rewritten URL, CORS headers and the sticky endpoint', () => {
  const plain = decide(table, facts('/a', 'web.example'));
  assert.equal(plain.kind, 'forward');
  if (plain.kind !== 'forward') return;
  assert.deepEqual(plain.upstream.endpoints, ['10.244.1.2:8080', '10.244.2.2:8080']);
  assert.equal(plain.target, undefined, 'no rewrite: the client\'s URL goes on');
  assert.deepEqual(plain.responseHeaders, []);

  const rewritten = decide(table, facts('/app/x?q=1', 'rewrite.example'));
  assert.equal(rewritten.kind === 'forward' && rewritten.target, '/?q=1');

  const cors = decide(table, facts('/', 'cors.example', { headers: { origin: 'https://a.example' } }));
  assert.ok(cors.kind === 'forward' && cors.responseHeaders.some(([k]) => k === 'access-control-allow-origin'));

  // Affinity: the first request gets a cookie naming its endpoint; the next, sent with it, is sent there first.
  const first = decide(table, facts('/', 'sticky.example'));
  assert.ok(first.kind === 'forward');
  if (first.kind !== 'forward') return;
  assert.equal(first.sticky, undefined);
  const endpoint = nextEndpoint(first, [], (u) => u.endpoints[1]);
  assert.equal(endpoint, '10.244.2.2:8080');
  const cookie = addedHeaders(first, endpoint!, false).find(([k]) => k === 'set-cookie')?.[1];
  assert.ok(cookie, 'a session cookie is set');
  const again = decide(table, facts('/', 'sticky.example', { headers: { cookie: cookie!.split(';')[0]! } }));
  assert.ok(again.kind === 'forward');
  if (again.kind !== 'forward') return;
  assert.equal(nextEndpoint(again, [], (u) => u.endpoints[0]), '10.244.2.2:8080', 'the cookie\'s endpoint first');
  assert.equal(nextEndpoint(again, ['10.244.2.2:8080'], (u, tried) => u.endpoints.find((e) => !tried.includes(e))), '10.244.1.2:8080', 'then the others');
});

test('after a failure: retried while the endpoint never saw the request, or it was lost for an idempotent method; 504 for timeouts', () => {
  const cases: Array<[string, Parameters<typeof afterFailure>, ReturnType<typeof afterFailure>]> = [
    ['refused, POST', [{ code: 'ECONNREFUSED', connecting: true, responseBegun: false }, 'POST', 1], 'retry'],
    ['any connect failure', [{ code: 'EWHATEVER', connecting: true, responseBegun: false }, 'POST', 2], 'retry'],
    ['the third try failed', [{ code: 'ECONNREFUSED', connecting: true, responseBegun: false }, 'GET', 3], 502],
    ['connect timeout, last try', [{ code: 'ETIMEDOUT_CONNECT', connecting: true, responseBegun: false }, 'GET', 3], 504],
    ['undici connect timeout', [{ code: 'UND_ERR_CONNECT_TIMEOUT', connecting: false, responseBegun: false }, 'POST', 1], 'retry'],
    ['reset before the response, GET', [{ code: 'ECONNRESET', connecting: false, responseBegun: false }, 'GET', 1], 'retry'],
    ['reset before the response, POST: not sent twice', [{ code: 'ECONNRESET', connecting: false, responseBegun: false }, 'POST', 1], 502],
    ['read timeout, GET (nginx: proxy_next_upstream timeout)', [{ code: 'ETIMEDOUT', connecting: false, responseBegun: false }, 'GET', 1], 'retry'],
    ['undici read timeout, GET: the same', [{ code: 'UND_ERR_HEADERS_TIMEOUT', connecting: false, responseBegun: false }, 'GET', 1], 'retry'],
    ['read timeout, POST', [{ code: 'UND_ERR_HEADERS_TIMEOUT', connecting: false, responseBegun: false }, 'POST', 1], 504],
    ['the response had begun', [{ code: 'ECONNRESET', connecting: false, responseBegun: true }, 'GET', 1], 'cut'],
  ];
  for (const [what, args, want] of cases) assert.equal(afterFailure(...args), want, what);
});
