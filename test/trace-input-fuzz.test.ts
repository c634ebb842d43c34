// The trace's inputs fuzzed (no root): generated FROM, TO, ports, protocols, namespaces and
// nodes, as the CLI's arguments (strings) and the page's JSON bodies (anything JSON holds),
// built from valid forms bent at one place (kinds, names, IPs, ports, URLs) and from odd
// values. parseTraceRequest must return a request that holds what the trace relies on, or
// throw a TraceError: one line naming the field, never another exception. The page's body
// checker (ui/server.ts traceRequest) goes first on the JSON text, as the server runs them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePort, parseTraceRequest, TraceError, type RawTraceRequest, type TraceRequest } from '../src/trace/input.ts';
import { traceRequest } from '../src/ui/server.ts';
import { gen, oddJson, ODD_STRINGS, type Gen } from './fuzz.ts';

const CASES = 20_000;
const SEED = 27_05;

const KINDS = ['pod', 'pods', 'po', 'node', 'nodes', 'no', 'service', 'services', 'svc', 'svcs', 'deployment', 'Pod', 'POD', '', 'ingress'];
const NAMES = ['web', 'web-1', 'a', 'a.b', 'client-7d9c-x2kqp', 'kubewire-node-1', 'a'.repeat(253), 'a'.repeat(254), 'Web', 'web_1', '-web', 'web-', 'a..b', '', ' web', 'web ', 'we b', '*', '../x'];
const IPS = ['10.244.1.3', '10.96.0.10', '172.18.0.11', '127.0.0.1', '0.0.0.0', '255.255.255.255', '224.0.0.1', '240.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '1.2.3.-4', '::1', '[::1]', 'fe80::1', '1.2.3.4 ', '１.２.３.４'];
const PORTS = ['80', '8080', '0', '1', '65535', '65536', '-1', '080', '80.0', '1e2', '', ' 80', 'http', '99999999999999999999', '0x50'];
const SCHEMES = ['http://', 'https://', 'ftp://', 'HTTP://', 'http:/', 'http:', 'javascript:', 'file://'];
const HOSTS = ['shop.example', 'web.default.svc.cluster.local', 'web.shop', 'web.shop.svc', 'web.shop.svc.other.domain', '10.244.1.3', '127.0.0.1', '[::1]', 'user:pw@shop.example', 'xn--nxasmq6b', 'a_b.example', '', 'shop.example:99999', 'shop.example:0', 'shop.example:8443'];
const PATHS = ['', '/', '/cart', '/a?b=c', '/%00', '/../etc/passwd', '/#frag', '/' + 'p'.repeat(3000)];

/** A FROM or TO as a user might type it, right or wrong at one place. */
function endpoint(g: Gen): string {
  switch (g.int(8)) {
    case 0: return `${g.pick(KINDS)}/${g.pick(NAMES)}`;
    case 1: return g.pick(IPS);
    case 2: return `${g.pick(IPS)}:${g.pick(PORTS)}`;
    case 3: return `${g.pick(SCHEMES)}${g.pick(HOSTS)}${g.pick(PATHS)}`;
    case 4: return g.pick(['external', 'External', 'external ', ' external']);
    case 5: return `${g.pick(NAMES)}${g.chance(0.5) ? `.${g.pick(NAMES)}` : ''}${g.chance(0.5) ? '.svc.cluster.local' : ''}${g.chance(0.3) ? `:${g.pick(PORTS)}` : ''}`;
    case 6: return g.pick(ODD_STRINGS);
    default: return g.text(g.int(30), 'abcdefghijklmnopqrstuvwxyz0123456789-./:@[]%?#');
  }
}

const GOOD: Record<keyof RawTraceRequest, readonly unknown[]> = {
  from: ['pod/client', 'node/kubewire-node-1', 'external', 'po/a.b'],
  to: ['service/web', 'svc/web', 'pod/web-1', '10.96.0.10', '10.244.1.3:8080', 'web.shop:80', 'web.shop.svc.cluster.local', 'http://shop.example/cart', 'https://10.244.1.3:8443/'],
  port: [undefined, 80, '8080', 65535],
  protocol: [undefined, 'tcp', 'udp'],
  namespace: [undefined, 'default', 'shop'],
  node: [undefined],
};

/** A request: a valid one bent at one or two fields (absent, mistyped, or anything a JSON body holds), or odd throughout. */
function raw(g: Gen): RawTraceRequest {
  const r = Object.fromEntries(Object.entries(GOOD).map(([k, vs]) => [k, g.pick(vs)])) as Record<keyof RawTraceRequest, unknown>;
  const bend = (k: keyof RawTraceRequest): unknown => {
    if (g.chance(0.1)) return undefined;
    if (g.chance(0.25)) return oddJson(g);
    if (k === 'from' || k === 'to') return endpoint(g);
    if (k === 'port') return g.chance(0.5) ? g.pick(PORTS) : g.pick([80, 0, 65535, 65536, 1.5, -1, NaN]);
    if (k === 'protocol') return g.pick(['tcp', 'udp', 'icmp', 'TCP', 'sctp', '']);
    if (k === 'namespace') return g.pick(['default', 'shop', 'kube-system', 'Shop', 'a'.repeat(64), 'a_b', '']);
    return g.pick(['kubewire-node-1', 'node-2', 'Node', 'a'.repeat(254), '']);
  };
  const keys = Object.keys(GOOD) as Array<keyof RawTraceRequest>;
  if (g.chance(0.1)) for (const k of keys) r[k] = bend(k);
  else for (let n = 1 + g.int(2); n > 0; n--) { const k = g.pick(keys); r[k] = bend(k); }
  return r;
}

/** What the trace (and the page) rely on in a request that passed. */
function holds(r: TraceRequest): string | undefined {
  if (!/^(external|pod\/[a-z0-9][-a-z0-9.]*|node\/[a-z0-9][-a-z0-9.]*)$/.test(r.from)) return `from ${r.from}`;
  if (!/^((pod|service)\/[a-z0-9][-a-z0-9.]*|\d+\.\d+\.\d+\.\d+|https?:\/\/\S+)$/.test(r.to)) return `to ${r.to}`;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(r.namespace)) return `namespace ${r.namespace}`;
  if (r.port !== undefined && !(Number.isInteger(r.port) && r.port >= 1 && r.port <= 65535)) return `port ${r.port}`;
  if (r.protocol !== undefined && !['tcp', 'udp', 'icmp'].includes(r.protocol)) return `protocol ${r.protocol}`;
  if (r.protocol === 'icmp' && r.port !== undefined) return 'icmp with a port';
  return undefined;
}

/** A TraceError's message: one line, naming something. */
function clear(e: unknown): string | undefined {
  if (!(e instanceof TraceError)) return `not a TraceError: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`;
  if (!e.message.trim()) return 'an empty message';
  if (/\n/.test(e.message.replace(/\\n/g, ''))) return `a message of several lines: ${e.message}`;
  if (/\bat .*\.ts:\d+/.test(e.message)) return `a stack in the message: ${e.message}`;
  return undefined;
}

test(`trace inputs: ${CASES.toLocaleString('en')} generated requests are parsed or refused with a TraceError naming the field`, () => {
  const g = gen(SEED);
  const started = performance.now();
  let passed = 0;
  for (let i = 0; i < CASES; i++) {
    const r = raw(g);
    let out: TraceRequest;
    try {
      out = parseTraceRequest(r);
    } catch (e) {
      const why = clear(e);
      assert.equal(why, undefined, `case ${i} (seed ${SEED}) ${JSON.stringify(r)}: ${why}`);
      continue;
    }
    passed++;
    assert.equal(holds(out), undefined, `case ${i} (seed ${SEED}) ${JSON.stringify(r)} -> ${JSON.stringify(out)}`);
    // Parsed again, the same (a Service's DNS name comes back as service/NAME: its namespace is then the request's).
    if (!out.toNamespace) assert.deepEqual(parseTraceRequest(out), out, `case ${i}: a parsed request parses to itself`);
  }
  // Both sides were exercised: many refused, a fair number taken.
  assert.ok(passed > CASES / 50 && passed < CASES - CASES / 10, `${passed} of ${CASES} taken`);
  assert.ok(performance.now() - started < 30_000);
});

test('trace inputs through the page: any body text is a request or a 4xx with a message, before parseTraceRequest', () => {
  const g = gen(SEED + 1);
  for (let i = 0; i < 5000; i++) {
    const body = g.next() < 0.7 ? JSON.stringify(g.chance(0.8) ? raw(g) : oddJson(g)) : g.pick([g.text(g.int(50)), '{', '{"from": ', '[1,2]', '"x"', '1', 'null', '{"from":"pod/a","to":"10.0.0.1","x":1}', '\u0000', '{"__proto__":{"from":"pod/a"}}']);
    let checked: ReturnType<typeof traceRequest> | undefined;
    try {
      checked = traceRequest(body ?? '');
    } catch (e) {
      const status = (e as { status?: number }).status;
      assert.ok(status !== undefined && status >= 400 && status < 500, `case ${i} ${body}: ${(e as Error).stack}`);
      assert.ok((e as Error).message.trim().length > 0);
      continue;
    }
    try {
      parseTraceRequest(checked);
    } catch (e) {
      assert.equal(clear(e), undefined, `case ${i} ${body}`);
    }
  }
});

test('ports: every form the CLI and the page may send, parsed or refused', () => {
  const g = gen(SEED + 2);
  for (let i = 0; i < 5000; i++) {
    const v = g.chance(0.5) ? g.pick(PORTS) : oddJson(g);
    try {
      const p = parsePort(v, '--port');
      assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535, `${JSON.stringify(v)} -> ${p}`);
    } catch (e) {
      assert.equal(clear(e), undefined, JSON.stringify(v));
    }
  }
});
