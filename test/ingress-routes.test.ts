// The ingress routing table as plain data: the Kubernetes documentation's path-matching
// table, hosts and wildcards, precedence, backends by port name and number, problems, TLS;
// and the access log lines the routes are logged with.

import bcrypt from 'bcryptjs';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EndpointSlice, Ingress, IngressClass, PathType, Secret, Service } from '../src/api/types.ts';
import { validate } from '../src/api/validation.ts';
import { admitIngress, admitSecret } from '../src/apiserver/admission.ts';
import { AccessLog } from '../src/ingress/accesslog.ts';
import { parseSize } from '../src/ingress/annotations.ts';
import { affinityOf, sessionCookie, stickyEndpoint } from '../src/ingress/affinity.ts';
import { ownAnswer } from '../src/ingress/answers.ts';
import { chosenUpstream } from '../src/ingress/canary.ts';
import { corsHeaders, corsOf } from '../src/ingress/cors.ts';
import { RateLimiter, rateLimitOf } from '../src/ingress/limits.ts';
import { servedBy } from '../src/ingress/classes.ts';
import { compilePath, escapeUri, hostMatches, normalizePath, parseRequestUri, rewriteUrl, validHost } from '../src/ingress/paths.ts';
import { buildRoutes, matchRoute, secretForServerName } from '../src/ingress/routes.ts';
import { loadCertificate, loadTls } from '../src/ingress/tls.ts';

let n = 0;
function ingress(rules: Array<{ host?: string; paths: Array<[string, PathType, string, (number | string)?]> }>, extra: Partial<Ingress['spec']> = {}, meta: Partial<Ingress['metadata']> = {}): Ingress {
  n++;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: `ing-${n}`, namespace: 'default', uid: `uid-${n}`, creationTimestamp: `2026-01-01T00:00:${String(n).padStart(2, '0')}Z`, ...meta },
    spec: {
      rules: rules.map((r) => ({ host: r.host, http: { paths: r.paths.map(([path, pathType, svc, port]) => ({ path, pathType, backend: { service: { name: svc, port: typeof port === 'string' ? { name: port } : { number: port ?? 80 } } } })) } })),
      ...extra,
    },
  };
}

function service(name: string, ports: Array<{ name?: string; port: number }> = [{ port: 80 }]): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports } };
}

function slice(svc: string, ips: string[], port = 8080, portName = '', notReady: string[] = []): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: portName, port, protocol: 'TCP' }],
    endpoints: [...ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })), ...notReady.map((ip) => ({ addresses: [ip], conditions: { ready: false, terminating: true } }))],
  };
}

/** Services a..z with one endpoint each named after the Service, so a match names its backend. */
const names = ['a', 'b', 'c', 'd', 'e'];
const world = { services: names.map((s) => service(s)), slices: names.map((s, i) => slice(s, [`10.244.1.${i + 1}`])), usableSecrets: new Set<string>() };
const routed = (ings: Ingress[], host: string, path: string) => {
  const { table } = buildRoutes({ ingresses: ings, ...world });
  return matchRoute(table, host, path)?.upstream.service;
};

test('the documentation table of path matches (kubernetes.io, Ingress "Examples")', () => {
  const cases: Array<[Array<[string, PathType]>, string, boolean, string?]> = [
    [[['/', 'Prefix']], '/anything/at/all', true],
    [[['/foo', 'Exact']], '/foo', true],
    [[['/foo', 'Exact']], '/bar', false],
    [[['/foo', 'Exact']], '/foo/', false],
    [[['/foo/', 'Exact']], '/foo', false],
    [[['/foo', 'Prefix']], '/foo', true],
    [[['/foo', 'Prefix']], '/foo/', true],
    [[['/foo/', 'Prefix']], '/foo', true],
    [[['/foo/', 'Prefix']], '/foo/', true],
    [[['/aaa/bb', 'Prefix']], '/aaa/bbb', false],
    [[['/aaa/bbb', 'Prefix']], '/aaa/bbb', true],
    [[['/aaa/bbb/', 'Prefix']], '/aaa/bbb', true],
    [[['/aaa/bbb', 'Prefix']], '/aaa/bbb/', true],
    [[['/aaa/bbb', 'Prefix']], '/aaa/bbb/ccc', true],
    [[['/aaa/bbb', 'Prefix']], '/aaa/bbbxyz', false],
    [[['/', 'Prefix'], ['/aaa', 'Prefix']], '/aaa/ccc', true, '/aaa'],
    [[['/', 'Prefix'], ['/aaa', 'Prefix'], ['/aaa/bbb', 'Prefix']], '/aaa/bbb', true, '/aaa/bbb'],
    [[['/', 'Prefix'], ['/aaa', 'Prefix'], ['/aaa/bbb', 'Prefix']], '/ccc', true, '/'],
    [[['/aaa', 'Prefix']], '/ccc', false],
    [[['/foo', 'Prefix'], ['/foo', 'Exact']], '/foo', true, '/foo Exact'],
  ];
  for (const [paths, request, matches, winner] of cases) {
    const ing = ingress([{ paths: paths.map(([p, t], i) => [p, t, names[i]!]) }]);
    const { table } = buildRoutes({ ingresses: [ing], ...world });
    const route = matchRoute(table, 'example.com', request);
    const label = `${paths.map(([p, t]) => `${p} (${t})`).join(', ')} vs ${request}`;
    assert.equal(Boolean(route), matches, label);
    if (winner) assert.equal(`${route!.path}${winner.includes(' ') ? ` ${route!.pathType}` : ''}`, winner, label);
  }
});

test('longest path first; at equal paths Exact over Prefix over ImplementationSpecific', () => {
  const ing = ingress([{ paths: [['/foo', 'ImplementationSpecific', 'c'], ['/foo', 'Prefix', 'b'], ['/foo', 'Exact', 'a'], ['/foo/', 'Prefix', 'd']] }]);
  assert.equal(routed([ing], 'x', '/foo'), 'd', '/foo/ is longer than /foo and, element-wise, matches /foo');
  const ing2 = ingress([{ paths: [['/foo', 'ImplementationSpecific', 'c'], ['/foo', 'Prefix', 'b'], ['/foo', 'Exact', 'a']] }]);
  assert.equal(routed([ing2], 'x', '/foo'), 'a');
  assert.equal(routed([ing2], 'x', '/foo/x'), 'b');
  assert.equal(routed([ing2], 'x', '/foobar'), 'c', 'ImplementationSpecific is a plain string prefix, as in ingress-nginx');
});

test('hosts: precise, wildcard covering exactly one label, host-less rules for the rest', () => {
  const ing = ingress([
    { host: 'foo.bar.com', paths: [['/', 'Prefix', 'a']] },
    { host: '*.bar.com', paths: [['/', 'Prefix', 'b']] },
    { paths: [['/', 'Prefix', 'c']] },
  ]);
  assert.equal(routed([ing], 'foo.bar.com', '/'), 'a');
  assert.equal(routed([ing], 'baz.bar.com', '/'), 'b', 'one label in front of bar.com');
  assert.equal(routed([ing], 'baz.foo.bar.com', '/'), 'c', 'a wildcard covers one label only');
  assert.equal(routed([ing], 'bar.com', '/'), 'c', 'nor zero labels');
  assert.equal(routed([ing], 'other.org', '/x'), 'c');
  assert.equal(hostMatches('*.bar.com', 'a.bar.com'), true);
  assert.equal(hostMatches('*.bar.com', 'a.b.bar.com'), false);
  assert.equal(validHost('Foo.Bar.com:8080'), 'foo.bar.com');
  assert.equal(parseRequestUri('/a//b?x=1', 'a.com')!.path, '/a/b');
});

test("requests read as nginx reads them before choosing a location: the path normalised, the host validated, absolute form", () => {
  // nginx's ngx_http_parse_complex_uri: decoded, dot segments resolved, slashes merged; 400 above the root.
  const cases: Array<[string, string | undefined]> = [
    ['/plain/path', '/plain/path'],
    ['/public/../admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/public//../admin', '/admin'],
    ['/public/%2fadmin', '/public/admin'],
    ['/a/./b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/a/..', '/'],
    ['//a///b//', '/a/b/'],
    ['/%7Euser/a%20b', '/~user/a b'],
    ['/caf%C3%A9', '/café'],
    ['/%ff', '/\xff'],
    ['/..a/...', '/..a/...'],
    ['/.well-known/x', '/.well-known/x'],
    ['/..', undefined],
    ['/../../etc/passwd', undefined],
    ['/a/../..', undefined],
    ['/a/%2e%2e/%2e%2e/x', undefined],
    ['/a%zz', undefined],
    ['/a%2', undefined],
    ['/a%00b', undefined],
  ];
  for (const [raw, want] of cases) assert.equal(normalizePath(raw), want, raw);
  // Hosts: lowercased, port and trailing dot dropped; 400 for what nginx's ngx_http_validate_host refuses.
  assert.equal(validHost('Sec.Example.'), 'sec.example');
  assert.equal(validHost('sec.example.:80'), 'sec.example');
  assert.equal(validHost('[::1]:8080'), '[::1]');
  for (const bad of ['', 'a..b', 'a/b', 'a b', 'a\\b', '.', '[::1']) assert.equal(validHost(bad), undefined, JSON.stringify(bad));
  // The request line's authority wins over the Host header (RFC 9112 §3.2.2); the endpoint gets the origin form.
  assert.deepEqual(parseRequestUri('http://Sec.Example/public?x=1', 'demo.example'), { host: 'sec.example', path: '/public', uri: '/public?x=1', authority: 'Sec.Example' });
  assert.deepEqual(parseRequestUri('https://sec.example:8443', 'demo.example'), { host: 'sec.example', path: '/', uri: '/', authority: 'sec.example:8443' });
  assert.deepEqual(parseRequestUri('/x/../y?a=/../b', 'h.com.'), { host: 'h.com', path: '/y', uri: '/x/../y?a=/../b' }, 'the query is not a path; the endpoint gets the target as sent');
  assert.deepEqual(parseRequestUri('/x', undefined), { host: '', path: '/x', uri: '/x' }, 'HTTP/1.0 without Host');
  assert.equal(parseRequestUri('*', 'h.com'), undefined);
  assert.equal(parseRequestUri('h.com:443', 'h.com'), undefined, 'authority form (CONNECT)');
  assert.equal(parseRequestUri('/x', ''), undefined, 'an empty Host');
  assert.equal(parseRequestUri('http://a..b/x', 'h.com'), undefined);
  assert.equal(escapeUri('/a b/%/é?#'), '/a%20b/%25/%C3%A9%3F%23');
});

test('a host that matched keeps to its own rules, then the default backend, then 404', () => {
  const ing = ingress([{ host: 'foo.com', paths: [['/api', 'Prefix', 'a']] }, { paths: [['/', 'Prefix', 'b']] }]);
  assert.equal(routed([ing], 'foo.com', '/other'), undefined, 'no fall-through to host-less rules (ingress-nginx: server per host)');
  const withDefault = ingress([{ host: 'foo.com', paths: [['/api', 'Prefix', 'a']] }], { defaultBackend: { service: { name: 'e', port: { number: 80 } } } });
  assert.equal(routed([withDefault], 'foo.com', '/other'), 'e');
  assert.equal(routed([withDefault], 'nothing.org', '/'), 'e');
});

test('several Ingresses share a host; for the same path the oldest wins and the other is told', () => {
  const older = ingress([{ host: 'shop.com', paths: [['/cart', 'Prefix', 'a']] }]);
  const newer = ingress([{ host: 'shop.com', paths: [['/pay', 'Prefix', 'b'], ['/cart', 'Prefix', 'c']] }]);
  const { table, problems } = buildRoutes({ ingresses: [newer, older], ...world });
  assert.equal(matchRoute(table, 'shop.com', '/cart/1')?.upstream.service, 'a');
  assert.equal(matchRoute(table, 'shop.com', '/pay')?.upstream.service, 'b');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.ingress.name, newer.metadata.name);
  assert.match(problems[0]!.message, new RegExp(`already served by the older Ingress default/${older.metadata.name}`));
});

test('backends by port number and by name; endpoints are the ready ones, by the slice port of that name', () => {
  const svc = service('web', [{ name: 'http', port: 80 }, { name: 'admin', port: 9000 }]);
  const slices = [{ ...slice('web', ['10.244.1.7', '10.244.2.9'], 8080, 'http', ['10.244.1.8']) }, { ...slice('web', ['10.244.1.7'], 9090, 'admin'), metadata: { name: 'web-2', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } }];
  const ing = ingress([{ paths: [['/', 'Prefix', 'web', 80], ['/admin', 'Prefix', 'web', 'admin']] }]);
  const { table, problems } = buildRoutes({ ingresses: [ing], services: [svc], slices, usableSecrets: new Set() });
  assert.deepEqual(problems, []);
  assert.deepEqual(matchRoute(table, 'x', '/')!.upstream.endpoints, ['10.244.1.7:8080', '10.244.2.9:8080'], 'the terminating 10.244.1.8 is left out');
  assert.deepEqual(matchRoute(table, 'x', '/admin/x')!.upstream.endpoints, ['10.244.1.7:9090']);
});

test('problems: missing Service, unknown port, unsafe path; each costs only its rule', () => {
  const ing = ingress([{ paths: [['/ok', 'Prefix', 'a'], ['/gone', 'Prefix', 'nope'], ['/port', 'Prefix', 'a', 'metrics'], ['/bad;x', 'Prefix', 'a'], ['/re(.*)', 'ImplementationSpecific', 'b']] }]);
  const { table, problems } = buildRoutes({ ingresses: [ing], ...world });
  assert.deepEqual(problems.map((p) => p.reason).sort(), ['InvalidPath', 'PortNotFound', 'ServiceNotFound']);
  assert.match(problems.find((p) => p.reason === 'ServiceNotFound')!.message, /service default\/nope not found/);
  assert.match(problems.find((p) => p.reason === 'PortNotFound')!.message, /no port named "metrics" \(it has <unnamed>\)/);
  assert.match(problems.find((p) => p.reason === 'InvalidPath')!.message, /spec\.rules\[0\]\.http\.paths\[3\]: path "\/bad;x"/);
  assert.equal(matchRoute(table, 'x', '/ok')!.upstream.service, 'a');
  const gone = matchRoute(table, 'x', '/gone')!;
  assert.deepEqual([gone.upstream.service, gone.upstream.endpoints], ['nope', []], 'a missing Service keeps its route, without endpoints: 503, not 404');
  assert.equal(matchRoute(table, 'x', '/bad;x'), undefined);
  assert.equal(matchRoute(table, 'x', '/re(.*)/y')!.upstream.service, 'b');
});

test('API validation: upstream path rules per pathType, hosts, backends, class annotation', () => {
  const errs = (ing: Ingress) => validate(ing).map((e) => `${e.field}: ${e.detail}`);
  assert.deepEqual(errs(ingress([{ paths: [['/a', 'Prefix', 'a']] }])), []);
  assert.match(errs(ingress([{ paths: [['a', 'Exact', 'a']] }]))[0]!, /paths\[0\]\.path: Invalid value: "a": must be an absolute path/);
  assert.match(errs(ingress([{ paths: [['/a//b', 'Prefix', 'a']] }]))[0]!, /must not contain '\/\/'/);
  assert.match(errs(ingress([{ paths: [['/a/..', 'Prefix', 'a']] }]))[0]!, /cannot end with '\/\.\.'/);
  assert.deepEqual(errs(ingress([{ paths: [['/a//b', 'ImplementationSpecific', 'a']] }])), []);
  assert.match(errs(ingress([{ paths: [['/a', 'Regex' as PathType, 'a']] }]))[0]!, /pathType: Unsupported value: "Regex"/);
  assert.match(errs(ingress([{ host: '10.0.0.1', paths: [['/', 'Prefix', 'a']] }]))[0]!, /host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address/);
  assert.match(errs(ingress([{ host: '*', paths: [['/', 'Prefix', 'a']] }]))[0]!, /host: Invalid value: "\*"/);
  assert.deepEqual(errs(ingress([{ host: '*.foo.com', paths: [['/', 'Prefix', 'a']] }])), []);
  assert.match(errs(ingress([]))[0]!, /either `defaultBackend` or `rules` must be specified/);
  const both = ingress([{ paths: [['/', 'Prefix', 'a']] }]);
  both.spec.rules![0]!.http!.paths[0]!.backend.service!.port = { name: 'http', number: 80 };
  assert.match(errs(both)[0]!, /exactly one of name or number/);
  assert.match(errs(ingress([{ paths: [['/', 'Prefix', 'a']] }], { ingressClassName: 'b' }, { annotations: { 'kubernetes.io/ingress.class': 'a' } }))[0]!, /must match `ingressClassName`/);
});

const ingressClass = (name: string, controller: string, isDefault = false): IngressClass => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'IngressClass',
  metadata: { name, annotations: isDefault ? { 'ingressclass.kubernetes.io/is-default-class': 'true' } : {} },
  spec: { controller },
});

test('classes: our controller name, the deprecated annotation, the default class', () => {
  const ours = 'kubewire.dev/ingress-controller';
  const classes = [ingressClass('kubewire', ours, true), ingressClass('mine', ours), ingressClass('nginx', 'k8s.io/ingress-nginx')];
  assert.equal(servedBy(ingress([], { ingressClassName: 'mine' }), classes, ours), true);
  assert.equal(servedBy(ingress([], { ingressClassName: 'nginx' }), classes, ours), false, 'another controller\'s class is left alone');
  assert.equal(servedBy(ingress([], { ingressClassName: 'absent' }), classes, ours), false);
  assert.equal(servedBy(ingress([], {}, { annotations: { 'kubernetes.io/ingress.class': 'mine' } }), classes, ours), true);
  assert.equal(servedBy(ingress([], {}, { annotations: { 'kubernetes.io/ingress.class': 'nginx' } }), classes, ours), false);
  assert.equal(servedBy(ingress([]), classes, ours), true, 'class-less, and our class is the default');
  assert.equal(servedBy(ingress([]), [ingressClass('kubewire', ours)], ours), false, 'class-less, no default class');
  assert.equal(admitIngress(ingress([]), classes).spec.ingressClassName, 'kubewire');
  assert.throws(() => admitIngress(ingress([]), [...classes, ingressClass('other', ours, true)]), /2 default IngressClasses were found/);
});

test('TLS Secrets: loaded, checked (key mismatch, garbage, wrong type, missing), chosen by SNI with wildcards', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const make = (name: string, san: string) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
    return { crt: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  };
  const foo = make('foo', 'DNS:foo.com');
  const wild = make('wild', 'DNS:*.bar.com');
  const secret = (name: string, data: Record<string, string>, type = 'kubernetes.io/tls'): Secret => admitSecret({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default' }, type, stringData: data });
  const secrets = [
    secret('foo', { 'tls.crt': foo.crt, 'tls.key': foo.key }),
    secret('wild', { 'tls.crt': wild.crt, 'tls.key': wild.key }),
    secret('mismatch', { 'tls.crt': foo.crt, 'tls.key': wild.key }),
    secret('garbage', { 'tls.crt': 'hello', 'tls.key': 'world' }),
    secret('opaque', { 'tls.crt': foo.crt, 'tls.key': foo.key }, 'Opaque'),
  ];
  assert.match((await loadCertificate(foo.crt, wild.key)) as string, /^tls\.key does not belong to tls\.crt$/);
  assert.match((await loadCertificate('hello', 'world')) as string, /^tls\.crt is not a PEM certificate/);
  const opaque = await loadTls([ingress([{ host: 'o.com', paths: [['/', 'Prefix', 'a']] }], { tls: [{ hosts: ['o.com'], secretName: 'opaque' }, { hosts: ['g.com'], secretName: 'garbage' }] })], secrets);
  assert.deepEqual(opaque.problems.map((p) => p.message), [
    'spec.tls: secret default/opaque is of type "Opaque", not kubernetes.io/tls: hosts o.com get the default certificate',
    'spec.tls: secret default/garbage: tls.crt is not a PEM certificate (no BEGIN CERTIFICATE block): hosts g.com get the default certificate',
  ]);
  const ing = ingress([{ host: 'foo.com', paths: [['/', 'Prefix', 'a']] }, { host: 'x.bar.com', paths: [['/', 'Prefix', 'a']] }], {
    tls: [{ hosts: ['foo.com'], secretName: 'foo' }, { hosts: ['*.bar.com'], secretName: 'wild' }, { hosts: ['m.com'], secretName: 'mismatch' }, { hosts: ['g.com'], secretName: 'missing' }, { hosts: ['other.com'], secretName: 'foo' }],
  });
  const tls = await loadTls([ing], secrets);
  assert.deepEqual([...tls.certificates.keys()].sort(), ['default/foo', 'default/wild']);
  assert.deepEqual(tls.problems.map((p) => p.reason), ['BadTLSSecret', 'BadTLSSecret', 'TLSHostMismatch']);
  assert.match(tls.problems[1]!.message, /secret default\/missing not found: hosts g\.com get the default certificate/);
  assert.match(tls.problems[2]!.message, /is for foo\.com, not other\.com/);
  const { table } = buildRoutes({ ingresses: [ing], ...world, usableSecrets: new Set(tls.certificates.keys()) });
  assert.equal(secretForServerName(table, 'foo.com'), 'default/foo');
  assert.equal(secretForServerName(table, 'x.bar.com'), 'default/wild');
  assert.equal(secretForServerName(table, 'a.x.bar.com'), undefined, 'wildcards cover one label');
  assert.equal(secretForServerName(table, 'm.com'), undefined, 'an unusable secret leaves the host to the default certificate');
  assert.equal(matchRoute(table, 'foo.com', '/')!.tls, true, 'a TLS host: plain HTTP is redirected');
});

test('annotations: sizes and timeouts as ingress-nginx spells them', () => {
  assert.equal(parseSize('8m', 0), 8 * 1024 * 1024);
  assert.equal(parseSize('512k', 0), 512 * 1024);
  assert.equal(parseSize('0', 5), Infinity);
  assert.equal(parseSize('lots', 5), 5);
  const ing = ingress([{ paths: [['/', 'Prefix', 'a']] }], {}, { annotations: { 'nginx.ingress.kubernetes.io/proxy-read-timeout': '3', 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' } });
  const r = buildRoutes({ ingresses: [ing], ...world }).table.anyHost.routes[0]!;
  assert.equal(r.options.readTimeoutMs, 3000);
  assert.equal(r.options.sslRedirect, false);
  assert.equal(r.options.connectTimeoutMs, 5000);
});

test('access log: ingress-nginx\'s upstreaminfo line, bytes as received, buffered until 64 KiB or 100 ms', async () => {
  const writes: string[] = [];
  const log = new AccessLog('/nonexistent/never-opened', (bytes) => writes.push(bytes.toString('latin1')));
  const route = matchRoute(buildRoutes({ ingresses: [ingress([{ host: 'a.com', paths: [['/', 'Prefix', 'a']] }])], ...world }).table, 'a.com', '/')!;
  const request = { remote: '172.18.0.200', method: 'GET', url: '/caf\xe9?q="x"', httpVersion: '1.1', userAgent: 'curl/8', length: 77, requestId: 'f'.repeat(32) };
  log.request(request, 200, 0.0123, route, '10.244.1.1:8080', '200', '12');
  log.request({ ...request, method: 'POST' }, 404, 0.001, undefined, '-', '-', '146');
  assert.equal(writes.length, 0, 'nothing written per request');
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(writes.length, 1, 'one write after 100 ms');
  const [first, second] = writes[0]!.split('\n');
  assert.match(first!, /^172\.18\.0\.200 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/caf\xe9\?q=\\x22x\\x22 HTTP\/1\.1" 200 12 "-" "curl\/8" 77 0\.012 \[default-a-80\] \[\] 10\.244\.1\.1:8080 - 0\.012 200 f{32}$/);
  assert.match(second!, / "POST .* 404 146 .* \[upstream-default-backend\] \[\] - - - - f{32}$/);
  // A full buffer is written at once; nothing is lost or split.
  for (let i = 0; i < 400; i++) log.request({ ...request, url: `/${i}/${'x'.repeat(200)}` }, 200, 0.001, route, '10.244.1.1:8080', '200', '1');
  assert.ok(writes.length >= 2, 'written when 64 KiB filled');
  log.flush();
  const lines = writes.slice(1).join('').split('\n').filter(Boolean);
  assert.equal(lines.length, 400);
  assert.deepEqual(lines.map((l) => Number(/"GET \/(\d+)\//.exec(l)![1])), [...Array(400).keys()]);
});

test('use-regex and rewrite-target as ingress-nginx: all paths of the host become case-insensitive regexes; URLs rewritten with $1..$9', () => {
  const annotated = (a: Record<string, string>) => ({ annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [`nginx.ingress.kubernetes.io/${k}`, v])) });
  const rewriting = ingress([{ host: 'r.com', paths: [['/something(/|$)(.*)', 'ImplementationSpecific', 'a']] }], {}, annotated({ 'rewrite-target': '/$2' }));
  const plain = ingress([{ host: 'r.com', paths: [['/plain', 'Prefix', 'b']] }, { host: 'other.com', paths: [['/plain', 'Prefix', 'c']] }]);
  const toRoot = ingress([{ host: 'pay.com', paths: [['/pay', 'Prefix', 'd']] }], {}, annotated({ 'rewrite-target': '/' }));
  const withQuery = ingress([{ host: 'q.com', paths: [['/q', 'Prefix', 'e']] }], {}, annotated({ 'rewrite-target': '/x?a=1' }));
  const same = ingress([{ host: 'same.com', paths: [['/same', 'Prefix', 'a']] }], {}, annotated({ 'rewrite-target': '/same' }));
  const { table, problems } = buildRoutes({ ingresses: [rewriting, plain, toRoot, withQuery, same], ...world });
  assert.deepEqual(problems, []);
  const to = (host: string, url: string) => {
    const uri = parseRequestUri(url, host)!;
    const r = matchRoute(table, host, uri.path);
    return r && `${r.upstream.service} ${r.rewrite ? rewriteUrl(r.rewrite, uri.path, uri.uri) : url}`;
  };
  assert.equal(to('r.com', '/something'), 'a /');
  assert.equal(to('r.com', '/something/'), 'a /');
  assert.equal(to('r.com', '/something/new/x'), 'a /new/x');
  assert.equal(to('r.com', '/SOMETHING/new?x=1&y=2'), 'a /new?x=1&y=2', 'case-insensitive; the query string follows');
  assert.equal(to('r.com', '/somethingelse'), undefined);
  // The other Ingress's Prefix path on the same host is a regex prefix too (ingress-nginx's
  // enforceRegex per server): /plainly and /PLAIN match there, not on another host.
  assert.equal(to('r.com', '/plainly'), 'b /plainly');
  assert.equal(to('r.com', '/PLAIN/x'), 'b /PLAIN/x');
  assert.equal(to('other.com', '/plainly'), undefined);
  assert.equal(to('other.com', '/PLAIN'), undefined);
  assert.equal(to('pay.com', '/pay/x/y?z=1'), 'd /?z=1', 'the whole URL becomes the target');
  assert.equal(to('r.com', '/something/a%20b/../c%3F'), 'a /c%3F', 'groups come from the normalised path and are escaped again');
  assert.equal(to('q.com', '/q/r?b=2'), 'e /x?a=1&b=2', "the client's query string after the target's");
  assert.equal(to('same.com', '/same/x'), 'a /same/x', 'a target equal to the path is no rewrite');
  assert.equal(to('same.com', '/SAME'), undefined, 'and makes no regex');

  const broken = ingress([{ host: 'r.com', paths: [['/bad(', 'ImplementationSpecific', 'c'], ['/fine', 'ImplementationSpecific', 'c']] }], {}, annotated({ 'use-regex': 'true' }));
  const built = buildRoutes({ ingresses: [broken, plain], ...world });
  assert.equal(built.problems.length, 1);
  assert.equal(built.problems[0]!.reason, 'InvalidPath');
  assert.match(built.problems[0]!.message, /spec\.rules\[0\]\.http\.paths\[0\]: path "\/bad\(" is not a valid regular expression .*use-regex or rewrite-target/);
  assert.equal(matchRoute(built.table, 'r.com', '/fine/1')?.upstream.service, 'c', 'the rest is served');
  assert.equal(matchRoute(built.table, 'r.com', '/Plain')?.upstream.service, 'b');
});

test("the proxy's own answers: app-root, redirect annotations, HTTPS redirect, allowlist; invalid values reported", () => {
  const annotated = (a: Record<string, string>) => ({ annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [`nginx.ingress.kubernetes.io/${k}`, v])) });
  const on = (host: string, a: Record<string, string>, extra: Partial<Ingress['spec']> = {}) => ingress([{ host, paths: [['/', 'Prefix', 'a']] }], extra, annotated(a));
  const { table, problems } = buildRoutes({
    ingresses: [
      on('root.com', { 'app-root': '/app1' }),
      on('moved.com', { 'permanent-redirect': 'https://example.org/new', 'permanent-redirect-code': '308' }),
      on('temp.com', { 'temporal-redirect': 'http://example.org/t', 'permanent-redirect': 'https://example.org/p' }),
      on('force.com', { 'force-ssl-redirect': 'true' }),
      on('tls.com', {}, { tls: [{ hosts: ['tls.com'] }] }),
      on('notls.com', { 'ssl-redirect': 'false' }, { tls: [{ hosts: ['notls.com'] }] }),
      on('allow.com', { 'allowlist-source-range': '10.0.0.0/8, 192.168.1.7' }),
      on('old.com', { 'whitelist-source-range': '172.18.0.0/16' }),
      on('broken.com', { 'allowlist-source-range': '10.0.0.0/8,nonsense', 'permanent-redirect': 'javascript:alert(1)' }),
      on('inject.com', { 'app-root': '/x\r\nSet-Cookie: a=b' }),
    ],
    ...world,
  });
  const answer = (host: string, target = '/', scheme: 'http' | 'https' = 'http', client = '172.18.0.200') => {
    const uri = parseRequestUri(target, `${host}:8080`)!;
    const route = matchRoute(table, host, uri.path)!;
    return ownAnswer(route, { scheme, host: `${host}:8080`, uri, client, method: 'GET' });
  };
  assert.deepEqual(answer('root.com'), { status: 302, location: 'http://root.com:8080/app1' });
  assert.equal(answer('root.com', '/other'), undefined, 'app-root: only for /');
  assert.deepEqual(answer('moved.com', '/x?y=1'), { status: 308, location: 'https://example.org/new' });
  assert.deepEqual(answer('temp.com'), { status: 302, location: 'http://example.org/t' }, 'temporal before permanent, as ingress-nginx');
  assert.deepEqual(answer('force.com', '/a?b'), { status: 308, location: 'https://force.com/a?b' });
  assert.equal(answer('force.com', '/a', 'https'), undefined);
  assert.deepEqual(answer('tls.com', '/z'), { status: 308, location: 'https://tls.com/z' });
  assert.equal(answer('notls.com'), undefined);
  assert.deepEqual(answer('allow.com'), { status: 403 });
  assert.equal(answer('allow.com', '/', 'http', '10.1.2.3'), undefined);
  assert.equal(answer('allow.com', '/', 'http', '::ffff:192.168.1.7'), undefined, 'an IPv4-mapped peer address');
  assert.deepEqual(answer('allow.com', '/', 'http', '192.168.1.8'), { status: 403 });
  assert.equal(answer('old.com'), undefined, 'the pre-1.9 annotation name');
  assert.deepEqual(answer('broken.com', '/', 'http', '10.0.0.1'), { status: 503 }, 'an allowlist that cannot be read denies everyone');
  assert.equal(answer('inject.com'), undefined, 'no header injection through app-root');
  const reported = problems.map((p) => `${p.ingress.name} ${p.reason} ${p.message}`).join('\n');
  assert.match(reported, /allowlist-source-range: "nonsense" is not a CIDR or IP address: every request is answered 503/);
  assert.match(reported, /permanent-redirect: "javascript:alert\(1\)" is not an absolute http or https URL: ignored/);
  assert.match(reported, /app-root: .* is not a path: ignored/);
  assert.equal(problems.length, 3);
});

test('canary Ingresses as ingress-nginx: joined to the main route of the same host and path; header, then cookie, then weight', () => {
  const annotated = (a: Record<string, string>) => ({ annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [`nginx.ingress.kubernetes.io/${k}`, v])) });
  const main = ingress([{ host: 'c.com', paths: [['/', 'Prefix', 'a'], ['/api', 'Prefix', 'a']] }]);
  const byHeader = ingress([{ host: 'c.com', paths: [['/', 'Prefix', 'b']] }], {}, annotated({ canary: 'true', 'canary-by-header': 'X-Canary', 'canary-by-cookie': 'canary', 'canary-weight': '30' }));
  const byValue = ingress([{ host: 'c.com', paths: [['/api', 'Prefix', 'c']] }], {}, annotated({ canary: 'true', 'canary-by-header': 'X-Env', 'canary-by-header-value': 'staging' }));
  const second = ingress([{ host: 'c.com', paths: [['/', 'Prefix', 'd']] }], {}, annotated({ canary: 'true', 'canary-weight': '50' }));
  const orphan = ingress([{ host: 'none.com', paths: [['/', 'Prefix', 'e']] }], {}, annotated({ canary: 'true', 'canary-weight': 'lots' }));
  const { table, problems } = buildRoutes({ ingresses: [main, byHeader, byValue, second, orphan], ...world });
  const reported = problems.map((p) => `${p.ingress.name} ${p.reason} ${p.message}`);
  assert.equal(problems.length, 3, reported.join('\n'));
  assert.ok(reported.some((r) => r.startsWith(`${second.metadata.name} CanaryConflict`) && r.includes(`already has the canary default/${byHeader.metadata.name}`)));
  assert.ok(reported.some((r) => r.startsWith(`${orphan.metadata.name} CanaryWithoutMain`)));
  assert.ok(reported.some((r) => r.startsWith(`${orphan.metadata.name} InvalidAnnotation`) && r.includes('canary-weight: "lots"')));
  assert.equal(matchRoute(table, 'none.com', '/'), undefined, 'a canary serves nothing on its own');

  const root = matchRoute(table, 'c.com', '/x')!;
  const api = matchRoute(table, 'c.com', '/api/v1')!;
  const to = (route: typeof root, headers: Record<string, string>, roll = 0.99) => chosenUpstream(route, (n) => headers[n], () => roll).service;
  assert.equal(to(root, {}), 'a');
  assert.equal(to(root, {}, 0.29), 'b', '30 of 100 by weight');
  assert.equal(to(root, {}, 0.3), 'a');
  assert.equal(to(root, { 'x-canary': 'always' }), 'b');
  assert.equal(to(root, { 'x-canary': 'never' }, 0.01), 'a', 'never overrides the weight');
  assert.equal(to(root, { 'x-canary': 'maybe', cookie: 'a=1; canary=always' }), 'b', 'another header value: the cookie decides');
  assert.equal(to(root, { 'x-canary': 'always', cookie: 'canary=never' }), 'b', 'the header before the cookie');
  assert.equal(to(root, { cookie: 'canary=never' }, 0.01), 'a');
  assert.equal(to(api, { 'x-env': 'staging' }), 'c');
  assert.equal(to(api, { 'x-env': 'always' }), 'a', 'with a value given, only that value');
  assert.equal(to(api, {}, 0), 'a', 'no weight: never by chance');
});

test('CORS and sticky sessions from annotations, as ingress-nginx', () => {
  const problems: string[] = [];
  const problem = (_r: string, m: string) => void problems.push(m);
  const cors = corsOf((k) => ({ 'enable-cors': 'true', 'cors-allow-origin': 'https://app.example.com, https://*.example.org', 'cors-expose-headers': 'X-Total' })[k], problem)!;
  assert.deepEqual(corsHeaders(cors, 'https://app.example.com'), [
    ['access-control-allow-origin', 'https://app.example.com'],
    ['access-control-allow-methods', 'GET, PUT, POST, DELETE, PATCH, OPTIONS'],
    ['access-control-allow-headers', 'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization'],
    ['access-control-max-age', '1728000'],
    ['access-control-allow-credentials', 'true'],
    ['access-control-expose-headers', 'X-Total'],
  ]);
  assert.equal(corsHeaders(cors, 'https://a.b.example.org')[0]![1], 'https://a.b.example.org', 'a wildcard origin covers subdomains');
  assert.deepEqual(corsHeaders(cors, 'https://example.org'), [], 'not the bare domain');
  assert.deepEqual(corsHeaders(cors, 'https://evil.com?.example.org'), [], 'only host labels in front');
  assert.deepEqual(corsHeaders(cors, 'http://app.example.com'), [], 'nor another scheme');
  assert.deepEqual(corsHeaders(cors, undefined), []);
  const any = corsOf((k) => ({ 'enable-cors': 'true', 'cors-allow-credentials': 'false', 'cors-allow-methods': 'GET\r\nX: y' })[k], problem)!;
  assert.equal(corsHeaders(any, undefined)[0]![1], '*', 'every request, Origin or not');
  assert.ok(!corsHeaders(any, 'https://x').some(([k]) => k === 'access-control-allow-credentials'));
  assert.equal(corsHeaders(any, 'x')[1]![1], 'GET, PUT, POST, DELETE, PATCH, OPTIONS', 'no header injection: the default');
  assert.equal(corsOf(() => undefined, problem), undefined);

  const sticky = affinityOf((k) => ({ affinity: 'cookie', 'session-cookie-name': 'route', 'session-cookie-max-age': '60', 'session-cookie-samesite': 'Lax' })[k], problem)!;
  const upstream = { name: 'default/web:80', namespace: 'default', service: 'web', endpoints: ['10.244.1.2:8080', '10.244.2.3:8080'] };
  const first = sessionCookie(sticky, upstream, '10.244.2.3:8080', undefined, compilePath('/app', 'Prefix'), true)!;
  assert.match(first, /^route=[0-9a-f]{32}; Path=\/app; HttpOnly; Max-Age=60; Secure; SameSite=Lax$/);
  const value = first.slice(6, 38);
  assert.equal(stickyEndpoint(sticky, upstream, `a=1; route=${value}`), '10.244.2.3:8080');
  assert.equal(stickyEndpoint(sticky, { ...upstream, endpoints: ['10.244.1.2:8080'] }, `route=${value}`), undefined, 'the endpoint is gone');
  assert.equal(sessionCookie(sticky, upstream, '10.244.2.3:8080', '10.244.2.3:8080', compilePath('/', 'Prefix'), false), undefined, 'the client holds it already');
  assert.equal(sessionCookie(sticky, upstream, '10.244.1.2:8080', '10.244.2.3:8080', compilePath('/', 'Prefix'), false), undefined, 'kept after a failure unless change-on-failure');
  assert.equal(affinityOf((k) => ({ affinity: 'ip' })[k], problem), undefined);
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems.join('\n'), /cors-allow-methods: .* is not a header value/);
  assert.match(problems.join('\n'), /affinity: "ip" is not supported/);
});

test('basic authentication from a Secret, as ingress-nginx: htpasswd file or one key per user; 401 with a challenge', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const secret = (name: string, data: Record<string, string>): Secret => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default' }, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) });
  const apr1 = execFileSync('openssl', ['passwd', '-apr1', 'open sesame']).toString().trim();
  const sha512 = execFileSync('openssl', ['passwd', '-6', 'x']).toString().trim();
  const file = secret('htpasswd', { auth: `alice:${apr1}\nbob:${bcrypt.hashSync('hunter2', 4)}\ncarol:{SHA}${createHash('sha1').update('pw').digest('base64')}\ndave:${sha512}\n` });
  const map = secret('users', { erin: `{PLAIN}plain` });
  const secrets = new Map([file, map].map((s) => [`default/${s.metadata.name}`, s]));
  const annotated = (a: Record<string, string>) => ({ annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [`nginx.ingress.kubernetes.io/${k}`, v])) });
  const on = (host: string, a: Record<string, string>) => ingress([{ host, paths: [['/', 'Prefix', 'a']] }], {}, annotated(a));
  const { table, problems } = buildRoutes({
    ingresses: [
      on('file.com', { 'auth-type': 'basic', 'auth-secret': 'htpasswd', 'auth-realm': 'Staff "only"' }),
      on('map.com', { 'auth-type': 'basic', 'auth-secret': 'default/users', 'auth-secret-type': 'auth-map' }),
      on('missing.com', { 'auth-type': 'basic', 'auth-secret': 'nope' }),
      on('digest.com', { 'auth-type': 'digest', 'auth-secret': 'htpasswd' }),
    ],
    ...world,
    secrets,
  });
  const ask = (host: string, user?: string, password?: string) => ownAnswer(matchRoute(table, host, '/')!, { scheme: 'http', host, uri: parseRequestUri('/', host)!, client: '10.0.0.1', method: 'GET', ...(user !== undefined ? { authorization: `Basic ${b64(`${user}:${password}`)}` } : {}) });
  assert.deepEqual(ask('file.com'), { status: 401, headers: [['www-authenticate', 'Basic realm="Staff only"']] });
  assert.equal(ask('file.com', 'alice', 'open sesame'), undefined, '$apr1$ as htpasswd and openssl make it');
  assert.equal(ask('file.com', 'bob', 'hunter2'), undefined, 'bcrypt');
  assert.equal(ask('file.com', 'bob', 'hunter2'), undefined, 'bcrypt, remembered');
  assert.equal(ask('file.com', 'carol', 'pw'), undefined, '{SHA}');
  assert.equal(ask('file.com', 'alice', 'open sesamE')?.status, 401);
  assert.equal(ask('file.com', 'bob', 'hunter3')?.status, 401);
  assert.equal(ask('file.com', 'dave', 'x')?.status, 401, 'a hash kubewire cannot check: reported, not let in');
  assert.equal(ask('file.com', 'mallory', 'x')?.status, 401);
  assert.equal(ask('map.com', 'erin', 'plain'), undefined, 'auth-map');
  assert.equal(ask('missing.com', 'alice', 'open sesame')?.status, 503, 'a Secret that is not there denies everyone');
  assert.equal(ask('digest.com')?.status, 503);
  const reported = problems.map((p) => p.message).join('\n');
  assert.match(reported, /user "dave" is in a format kubewire cannot check/);
  assert.match(reported, /auth-secret: Secret default\/nope not found: every request is answered 503/);
  assert.match(reported, /auth-type: "digest" is not supported/);
  assert.equal(problems.length, 3);
});

test('rate limits as nginx\'s limit_req: the bucket leaks at the rate, holds the burst, exempts the allowlist', () => {
  const problems: string[] = [];
  const limit = rateLimitOf((k) => ({ 'limit-rps': '2', 'limit-burst-multiplier': '2', 'limit-allowlist': '10.0.0.0/8, bogus' })[k], (_r, m) => void problems.push(m))!;
  assert.equal(limit.burst, 4);
  const limiter = new RateLimiter();
  const at = (ms: number, client = '172.18.0.200') => limiter.over(limit, client, 1_000_000 + ms);
  assert.deepEqual([0, 0, 0, 0, 0, 0].map((ms) => at(ms)), [false, false, false, false, false, true], 'the first and a burst of 4');
  assert.equal(at(499), true, 'not yet leaked a whole request');
  assert.equal(at(501), false, 'after 1/rate');
  assert.equal(at(501), true);
  assert.equal(at(0, '172.18.0.201'), false, 'another client has its own bucket');
  for (let i = 0; i < 20; i++) assert.equal(at(0, '10.1.2.3'), false, 'the allowlist is not limited');
  const perMinute = rateLimitOf((k) => ({ 'limit-rpm': '60', 'limit-rps': '5' })[k], () => undefined)!;
  assert.equal(perMinute.rate, 1 / 1000, 'the stricter of the two');
  assert.equal(rateLimitOf((k) => ({ 'limit-rps': '0' })[k], (_r, m) => void problems.push(m)), undefined);
  assert.deepEqual(problems.map((p) => p.replace(/^annotation nginx\.ingress\.kubernetes\.io\//, '')), ['limit-allowlist: "bogus" is not a CIDR or IP address: ignored', 'limit-rps: "0" is not a positive whole number: ignored']);
});

test('a rewrite-target that would break the request line (spaces, CR/LF) is refused, not sent', () => {
  const bad = ingress([{ host: 'x.com', paths: [['/a', 'Prefix', 'a']] }], {}, { annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/b HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /c' } });
  const { table, problems } = buildRoutes({ ingresses: [bad], ...world });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /rewrite-target: .* is not a URL path \(spaces or control characters\): ignored/);
  assert.equal(matchRoute(table, 'x.com', '/a/1')?.rewrite, undefined);
});
