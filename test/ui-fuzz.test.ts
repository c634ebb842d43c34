// The page's API fuzzed over HTTP (no root): `kubewire ui`'s server on 127.0.0.1 with an
// in-process API behind it (two nodes, a Service, pods) and a fake kernel. Generated requests,
// written to the socket as bytes (any target, any header): methods, paths and query
// strings, Host, Origin, Sec-Fetch-Site and the token in each of its places, right or
// wrong, and trace bodies (JSON bent at one field, odd JSON, not JSON, too large, another
// content type). Every answer must be the guard's verdict for the request (401/403 before
// anything else), never a 5xx, never a stack trace or a source path, and a refusal says why.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Api } from '../src/apiserver/api.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { Store } from '../src/apiserver/store.ts';
import { DEFAULT_SPEC, planCluster, podNetnsName } from '../src/cluster/plan.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { admit, cookieName } from '../src/ui/guard.ts';
import { traceRequest, UiServer } from '../src/ui/server.ts';
import { parseTraceRequest } from '../src/trace/input.ts';
import { gen, oddJson, ODD_STRINGS, type Gen } from './fuzz.ts';

const REQUESTS = 2000;
const SEED = 2705;
const TOKEN = 'fuzz-token-0123456789';

let dir: string;
let store: Store;
let ui: UiServer;
let port = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kwt-uifuzz-'));
  process.env.KUBEWIRE_STATE_DIR = dir; // pods' records are looked for here (none: the fake kernel has the pods)
  store = new Store(join(dir, 'store.db'));
  const api = new Api(store);
  const plan = planCluster({ ...DEFAULT_SPEC, name: 'kwhf', nodes: 2 });
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  plan.nodes.forEach((n, i) => api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, spec: { podCIDR: `10.244.${i}.0/24` }, status: { addresses: [{ type: 'InternalIP', address: n.ip }], conditions: [{ type: 'Ready', status: 'True' }] } }, { system: true }));
  for (const [i, name] of ['client', 'web-1'].entries()) {
    api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: name === 'client' ? 'client' : 'web' } }, spec: { nodeName: plan.nodes[i]!.name, containers: [{ name: 'c', image: 'hello', ports: [{ containerPort: 8080 }] }] }, status: { phase: 'Running', podIP: `10.244.${i}.5`, conditions: [{ type: 'Ready', status: 'True' }] } });
  }
  api.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } });
  // The cluster's namespaces in a fake kernel: a trace the page takes runs through (and finds nothing there).
  const dp = new FakeDataplane();
  for (const ns of [plan.networkNetns, plan.externalNetns, ...plan.nodes.map((n) => n.netns), ...['client', 'web-1'].map((name, i) => podNetnsName(plan.spec.name, plan.nodes[i]!.name, { namespace: 'default', name }))]) await dp.createNetns(ns);
  ui = new UiServer({ client: new LocalClient(api), plan, dp, port: 0, token: TOKEN });
  port = Number(new URL(await ui.start()).port);
});

after(async () => {
  await ui?.stop();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Sent {
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body?: string;
}

/** One exchange over a fresh connection, as bytes: the status, the head and the body (the event stream is cut after its head). */
function exchange(r: Sent): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const head = end < 0 ? text : text.slice(0, end);
      const raw = end < 0 ? '' : text.slice(end + 4);
      resolve({ status, head, body: Buffer.from(/transfer-encoding: chunked/i.test(head) ? dechunk(raw) : raw, 'latin1').toString('utf8') });
    };
    s.on('data', (d) => {
      chunks.push(d);
      if (/^HTTP\/1\.1 200[^]*content-type: text\/event-stream/i.test(Buffer.concat(chunks).toString('latin1'))) s.destroy(); // an open stream: its head is the answer
    });
    s.on('close', done);
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
    s.setTimeout(15_000, () => s.destroy(new Error(`no answer to ${r.method} ${r.target}`)));
    const body = r.body === undefined ? undefined : Buffer.from(r.body, 'utf8');
    const head = [`${r.method} ${r.target} HTTP/1.1`, ...r.headers.map(([k, v]) => `${k}: ${v}`), 'Connection: close', ...(body ? [`Content-Length: ${body.length}`] : []), '', ''].join('\r\n');
    s.end(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1'));
  });
}

/** A chunked body's data. */
function dechunk(raw: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const eol = raw.indexOf('\r\n', at);
    const size = parseInt(raw.slice(at, eol), 16);
    if (eol < 0 || !size) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

const PATHS = ['/', '/app.js', '/api/topology', '/api/events', '/api/details', '/api/trace', '/api', '/api/', '/API/topology', '/api/topology/', '//api/topology', '/api/../api/topology', '/%2e%2e/etc/passwd', '/index.html', '/favicon.ico', '/api/trace?x=1', '*'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'get', 'FOO'];

/** Percent-encoded; a lone surrogate as the bytes UTF-8 forbids for it (the server must still answer). */
const enc = (v: string) => {
  try {
    return encodeURIComponent(v);
  } catch {
    return '%ED%A0%80';
  }
};

/** A query string: the token, a details id, junk. */
function query(g: Gen): string {
  const parts: string[] = [];
  for (let n = g.int(4); n > 0; n--) {
    const k = g.pick(['token', 'id', 'x', '', 'token', '%zz', 'id']);
    const v = k === 'token' ? g.pick([TOKEN, 'wrong', '', '%00', TOKEN.toUpperCase()]) : k === 'id' ? g.pick(['pod/default/client', 'node/kwhf-node-1', 'service/default/web', 'nope', '', '%', '\u00e9', 'x'.repeat(3000)]) : g.pick(ODD_STRINGS);
    parts.push(`${enc(k)}=${g.chance(0.8) ? enc(v) : v.replace(/[\s\u0000-\u001f\u007f-\uffff]/g, '')}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** A trace body: valid, bent at one field, odd JSON, not JSON, or too large. */
function traceBody(g: Gen): string {
  const valid: Record<string, unknown> = { from: g.pick(['pod/client', 'external', 'node/kwhf-node-1', 'pod/nope']), to: g.pick(['service/web', 'pod/web-1', '10.96.0.10:80', 'service/nope', '127.0.0.1:80']), ...(g.chance(0.3) ? { port: g.pick([80, '8080']) } : {}) };
  switch (g.int(6)) {
    case 0: return JSON.stringify(valid);
    case 1: return JSON.stringify({ ...valid, [g.pick(['from', 'to', 'port', 'protocol', 'namespace', 'node', 'extra', '__proto__'])]: oddJson(g) });
    case 2: return JSON.stringify(oddJson(g));
    case 3: return g.pick(['', '{', 'nul\u0000l', '{"from": "pod/a", "to": }', '[]', g.text(g.int(200))]);
    case 4: return JSON.stringify({ ...valid, padding: 'x'.repeat(66_000 + g.int(10_000)) });
    default: return JSON.stringify({ ...valid, from: g.pick(ODD_STRINGS) });
  }
}

/** A request: most hold the token and name the server properly (the API behind the guard gets fuzzed), the rest are bent anywhere (the guard gets fuzzed). */
function request(g: Gen): Sent {
  const proper = g.chance(0.6);
  const method = proper ? g.pick(['GET', 'GET', 'POST', 'POST', 'POST', 'PUT', 'HEAD']) : g.pick(METHODS);
  const path = proper && method === 'POST' && g.chance(0.8) ? '/api/trace' : g.chance(0.9) ? g.pick(PATHS) : `/${g.text(g.int(60), "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%")}`;
  const target = `${path}${path === '*' ? '' : query(g)}`;
  const headers: Array<[string, string]> = [];
  const host = proper || g.chance(0.6) ? `127.0.0.1:${port}` : g.pick([`localhost:${port}`, `LOCALHOST:${port}`, '127.0.0.1', `evil.example:${port}`, `127.0.0.1:${port + 1}`, '', `[::1]:${port}`, 'x'.repeat(300)]);
  if (proper || g.chance(0.95)) headers.push(['Host', host]);
  const token = proper ? TOKEN : g.pick([TOKEN, TOKEN, 'wrong', '', `${TOKEN}x`]);
  switch (proper ? g.int(2) : g.int(5)) {
    case 0: headers.push(['Cookie', `${cookieName(port)}=${token}`]); break;
    case 1: headers.push(['Authorization', `${proper ? 'Bearer' : g.pick(['Bearer', 'bearer', 'Basic', 'Bearer  '])} ${token}`]); break;
    case 2: headers.push(['Cookie', `a=b; ${cookieName(port + 1)}=${token}; ${g.pick(ODD_STRINGS).replace(/[\r\n\u0000]/g, '')}`]); break;
    default: break; // none, or only in the query
  }
  if (g.chance(0.3)) headers.push(['Origin', proper ? `http://127.0.0.1:${port}` : g.pick([`http://127.0.0.1:${port}`, `http://localhost:${port}`, 'http://evil.example', 'null', `https://127.0.0.1:${port}`, ''])]);
  if (g.chance(0.2)) headers.push(['Sec-Fetch-Site', proper ? 'same-origin' : g.pick(['same-origin', 'cross-site', 'none', 'same-site'])]);
  let body: string | undefined;
  if (method === 'POST' || g.chance(0.1)) {
    body = traceBody(g);
    if (g.chance(0.9)) headers.push(['Content-Type', g.chance(0.8) ? 'application/json' : g.pick(['application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/jsonx', 'multipart/form-data'])]);
  }
  return { method, target, headers, ...(body !== undefined ? { body } : {}) };
}

/** A server's answer may not show its insides. */
function leaks(text: string): string | undefined {
  if (/\n\s+at .+[(:]\d+/.test(text) || /\bat (async )?\w+ \(/.test(text)) return 'a stack trace';
  if (/\/work\/|node_modules|\.ts:\d+/.test(text)) return 'a source path';
  if (/TypeError|ReferenceError|RangeError|SyntaxError: Unexpected/.test(text)) return 'an internal error';
  return undefined;
}

test(`the page's API: ${REQUESTS.toLocaleString('en')} generated requests answered by the guard's verdict or a 2xx/4xx with a message, never a 5xx or a trace`, async () => {
  const g = gen(SEED);
  const started = performance.now();
  const statuses = new Map<number, number>();
  let reached = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const r = request(g);
    const { status, head, body } = await exchange(r);
    const what = `case ${i} (seed ${SEED}): ${r.method} ${r.target.slice(0, 200)} ${JSON.stringify(r.headers).slice(0, 300)} ${r.body?.slice(0, 200) ?? ''} -> ${status} ${body.slice(0, 300)}`;
    // A trace the page took runs on the fake kernel (its probes, which it cannot send, time out): a trace answered, and only
    // for a request the trace's own checks take. Run as an ordinary user (test:unit as nobody), it stops before, at /run: 403.
    if ((status === 200 && /"verdict":/.test(body) && /"hops":/.test(body)) || (status === 403 && /permission denied: .*tracing needs root/.test(body))) {
      assert.doesNotThrow(() => parseTraceRequest(traceRequest(r.body ?? '')), what);
      reached++;
      continue;
    }
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    assert.ok(status >= 200 && status < 500, what);
    if (status >= 400 || /content-type: application\/json/i.test(head)) assert.equal(leaks(body), undefined, what); // (the page's own script is code)
    // The guard's verdict, for requests Node's parser let through: a refusal before anything else.
    const h = Object.fromEntries(r.headers.map(([k, v]) => [k.toLowerCase(), v]));
    if (status !== 400 && r.method !== 'HEAD' && /^[A-Z]+$/.test(r.method)) {
      const url = new URL(r.target === '*' ? '/' : r.target, 'http://x');
      const verdict = admit({ method: r.method, path: url.pathname, queryToken: url.searchParams.get('token'), headers: h }, { token: TOKEN, port, address: '127.0.0.1' });
      if (verdict) assert.equal(status, verdict.status, what);
      else assert.ok(status !== 401 && status !== 403, what);
    }
    // A refusal says why: JSON {error} for the API, a page for /.
    if (status >= 400 && r.method !== 'HEAD' && body) {
      const json = /content-type: application\/json/i.test(head);
      if (json) {
        let error: unknown;
        assert.doesNotThrow(() => (error = (JSON.parse(body) as { error?: unknown }).error), what);
        assert.ok(typeof error === 'string' && error.length > 5, what);
      }
      else assert.match(body, /<p>.{5,}/, what);
    }
  }
  process.stdout.write(`# statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; ${reached} traces reached the kernel\n`);
  assert.ok(reached > 3, 'valid traces got through every check');
  assert.ok((statuses.get(200) ?? 0) > REQUESTS / 40, 'enough requests got through the guard to exercise the API');
  assert.ok(performance.now() - started < 30_000, `${Math.round(performance.now() - started)} ms`);
});
