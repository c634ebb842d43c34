// Who `kubewire ui` answers (pure): its token, its own Host names, its own origins; and the
// trace request's checks (a bad body is a 400 with a message, never a 500).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admit, allowedHosts, cookieName, tokenOf, type Asked } from '../src/ui/guard.ts';
import { traceRequest } from '../src/ui/server.ts';

const g = { token: 'secret-token', port: 7468, address: '127.0.0.1' };
const ask = (headers: Asked['headers'], more: Partial<Asked> = {}): Asked => ({ method: 'GET', path: '/api/topology', headers: { host: '127.0.0.1:7468', cookie: `${cookieName(7468)}=secret-token`, ...headers }, ...more });

test('the token: from the cookie, a Bearer header or ?token=; none is 401, a wrong one 403', () => {
  assert.equal(admit(ask({}), g), undefined);
  assert.equal(admit(ask({ cookie: undefined, authorization: 'Bearer secret-token' }), g), undefined);
  assert.equal(admit(ask({ cookie: undefined }, { queryToken: 'secret-token' }), g), undefined);
  assert.equal(admit(ask({ cookie: undefined }), g)?.status, 401);
  assert.equal(admit(ask({ cookie: `${cookieName(7468)}=guess` }), g)?.status, 403);
  assert.equal(admit(ask({ cookie: `${cookieName(9999)}=secret-token` }), g)?.status, 401, "another port's cookie is not this server's");
  assert.equal(tokenOf(ask({ cookie: `a=b; ${cookieName(7468)}=x=y; c=d` }), 7468), 'x=y');
});

test('Host: only the loopback names (and --address) with the port; another name is DNS rebinding', () => {
  for (const host of ['127.0.0.1:7468', 'localhost:7468', '[::1]:7468', 'LOCALHOST:7468']) assert.equal(admit(ask({ host }), g), undefined, host);
  for (const host of ['evil.example:7468', '127.0.0.1', '127.0.0.1:80', 'localhost.evil.example:7468', '']) {
    const r = admit(ask({ host }), g);
    assert.equal(r?.status, 403, host);
    assert.match(r!.message, /DNS rebinding/);
  }
  assert.deepEqual(allowedHosts({ port: 1, address: '10.1.2.3' }), ['127.0.0.1:1', 'localhost:1', '[::1]:1', '10.1.2.3:1']);
  assert.deepEqual(allowedHosts({ port: 1, address: '::1' }), ['127.0.0.1:1', 'localhost:1', '[::1]:1']);
  assert.deepEqual(allowedHosts({ port: 1, address: '0.0.0.0' }), ['127.0.0.1:1', 'localhost:1', '[::1]:1']);
});

test('Origin: another page may not POST or open the event stream, whatever it holds', () => {
  const post = (origin: string | undefined, site?: string) => admit(ask({ origin, 'sec-fetch-site': site }, { method: 'POST', path: '/api/trace' }), g);
  assert.equal(post('http://127.0.0.1:7468'), undefined);
  assert.equal(post('http://localhost:7468'), undefined);
  assert.equal(post(undefined), undefined, 'a client that is not a browser (it holds the token)');
  assert.equal(post('http://evil.example')?.status, 403);
  assert.equal(post('null')?.status, 403);
  assert.equal(post('http://127.0.0.1:8080')?.status, 403, 'another port is another origin');
  assert.equal(post(undefined, 'cross-site')?.status, 403);
  assert.equal(admit(ask({ origin: 'http://evil.example' }, { path: '/api/events' }), g)?.status, 403);
  assert.equal(admit(ask({ 'sec-fetch-site': 'cross-site' }, { path: '/api/events' }), g)?.status, 403);
});

test('a trace request: a JSON object with from and to; every field checked, with a message', () => {
  assert.deepEqual(traceRequest('{"from":"pod/client","to":"service/web"}'), { from: 'pod/client', to: 'service/web', namespace: 'default' });
  assert.deepEqual(traceRequest('{"from":"external","to":"http://shop.example/","namespace":"shop","port":"8080","protocol":"tcp","node":"n1"}'), { from: 'external', to: 'http://shop.example/', namespace: 'shop', node: 'n1', port: 8080, protocol: 'tcp' });
  const bad = (body: string, message: RegExp) =>
    assert.throws(() => traceRequest(body), (e: Error & { status?: number }) => {
      assert.equal(e.status, 400, body);
      assert.match(e.message, message);
      return true;
    });
  bad('{"from":', /not JSON/);
  bad('', /not JSON/);
  bad('[1]', /JSON object/);
  bad('null', /JSON object/);
  bad('{"to":"service/web"}', /from: required/);
  bad('{"from":"pod/a","to":7}', /to: required, a non-empty string, not 7/);
  bad('{"from":"pod/a","to":"b","port":70000}', /port 70000: a port number/);
  bad('{"from":"pod/a","to":"b","port":1.5}', /port 1.5/);
  bad('{"from":"pod/a","to":"b","protocol":"sctp"}', /protocol "sctp": one of tcp, udp, icmp/);
  bad('{"from":"pod/a","to":"b","namespace":"../etc"}', /DNS label/);
  bad('{"from":"pod/a","to":"b","cmd":"rm"}', /unknown field "cmd"/);
});
