// The fast path's HTTP/1.1 reading as plain data: which requests it takes (and which it
// leaves to Node's HTTP server), response framing, hop-by-hop removal, chunked bodies.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkedScanner, findHeadEnd, parseRequestHead, parseResponseHead, type RequestHead } from '../src/ingress/http1.ts';
import { requestText, upstreamRequest } from '../src/ingress/connection.ts';

test('requests: the common shapes are taken; anything unusual is left to Node\'s HTTP server', () => {
  const head = parseRequestHead('POST /a?b=1 HTTP/1.1\r\nHost: Shop.example.com:80\r\nContent-Length: 5\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nUser-Agent: t') as RequestHead;
  assert.equal(typeof head, 'object');
  assert.equal(head.method, 'POST');
  assert.equal(head.target, '/a?b=1');
  assert.equal(head.host, 'Shop.example.com:80');
  assert.equal(head.contentLength, 5);
  assert.equal(head.forwardedFor, '6.6.6.6');
  assert.equal(head.userAgent, 't');
  assert.equal(head.close, false);
  for (const [text, why] of [
    ['GET / HTTP/1.0\r\nHost: a', 'request line'],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked', 'transfer-encoding'],
    ['GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue', 'expect'],
    ['GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket', 'upgrade'],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2', 'content-length'],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1', 'content-length'],
    ['GET / HTTP/1.1\r\nHost: a\r\n folded', 'header line'],
    ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5', 'header line'], // a backend might take it for the length
    ['GET / HTTP/1.1\r\nX: 1', 'no Host header'],
    ['get / HTTP/1.1\r\nHost: a', 'request line'],
  ] as const) assert.equal(parseRequestHead(text), why, text);
  const twice = parseRequestHead('GET / HTTP/1.1\r\nHost: a\r\nHost: b') as RequestHead;
  assert.deepEqual([twice.host, twice.twoHosts], ['a', true], 'read, and marked for a 400 (nginx: "client sent duplicate host header")');
});

test('the request an endpoint receives: hop-by-hop and claimed forwarding headers gone, ours added', () => {
  const head = parseRequestHead('GET /x HTTP/1.1\r\nHost: a.com\r\nConnection: X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nProxy: evil\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*') as RequestHead;
  const text = requestText(head, 'https', 443, '172.18.0.200', false, 'abc');
  assert.equal(text, [
    'GET /x HTTP/1.1', 'Host: a.com', 'Accept: */*',
    'x-original-forwarded-for: 6.6.6.6', 'x-request-id: abc', 'x-real-ip: 172.18.0.200', 'x-forwarded-for: 172.18.0.200', 'x-forwarded-host: a.com', 'x-forwarded-port: 443', 'x-forwarded-proto: https', 'x-forwarded-scheme: https', 'x-scheme: https', '', '',
  ].join('\r\n'));
  // As bytes with the body: rebuilt when a header is dropped, else passed on as received.
  const received = Buffer.from('GET /x HTTP/1.1\r\nHost: a.com\r\nConnection: X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nProxy: evil\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n', 'latin1');
  assert.equal(head.plain, false);
  assert.equal(upstreamRequest(received, received.length - 2, head, undefined, 'https', 443, '172.18.0.200', false, 'abc').toString('latin1'), text);
  const plainText = 'PUT /y HTTP/1.1\r\nHost:  b.com \r\nContent-Length: 3\r\nAccept: */*';
  const plain = parseRequestHead(plainText) as RequestHead;
  assert.equal(plain.plain, true);
  const withBody = Buffer.from(`${plainText}\r\n\r\nabc`, 'latin1');
  const sent = upstreamRequest(withBody, plainText.length + 2, plain, withBody.subarray(plainText.length + 4), 'http', 80, '172.18.0.200', false, 'abc').toString('latin1');
  assert.equal(sent, `${plainText}\r\nx-request-id: abc\r\nx-real-ip: 172.18.0.200\r\nx-forwarded-for: 172.18.0.200\r\nx-forwarded-host: b.com\r\nx-forwarded-port: 80\r\nx-forwarded-proto: http\r\nx-forwarded-scheme: http\r\nx-scheme: http\r\n\r\nabc`);
  const trusted = requestText(head, 'http', 80, '10.0.0.1', true, 'abc');
  assert.match(trusted, /\r\nx-forwarded-for: 6\.6\.6\.6, 10\.0\.0\.1\r\n/);
  assert.match(trusted, /\r\nx-real-ip: 6\.6\.6\.6\r\n/);
});

test('bare LF ends a line, as nginx reads requests; a bare CR is refused (400) at once, never waited on', () => {
  const bounds = (text: string) => findHeadEnd(Buffer.from(text, 'latin1'));
  // The common shape, then bare LF everywhere, then mixed: the head, the lines to pass on, where the body starts.
  assert.deepEqual(bounds('GET / HTTP/1.1\r\nHost: x\r\n\r\nbody'), { text: 23, lines: 25, total: 27, crlf: true });
  assert.deepEqual(bounds('GET / HTTP/1.1\nHost: x\n\nbody'), { text: 22, lines: 23, total: 24, crlf: false });
  assert.deepEqual(bounds('GET / HTTP/1.1\r\nHost: x\n\r\n'), { text: 23, lines: 24, total: 26, crlf: false });
  assert.deepEqual(bounds('GET / HTTP/1.1\nHost: x\r\n\n'), { text: 22, lines: 24, total: 25, crlf: false });
  assert.deepEqual(bounds('GET / HTTP/1.1\nHost: x\r\n\r\n'), { text: 22, lines: 24, total: 26, crlf: true }, 'the tail only: the head\'s own lines are parseRequestHead\'s to judge');
  // The first empty line ends the head, whichever form it takes (a pipelined CRLF request behind it does not count).
  assert.equal((bounds('GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n') as { total: number }).total, 25);
  for (const partial of ['GET / HTTP/1.1\nHost: x\n', 'GET / HTTP/1.1\r\nHost: x\r', 'GET / HTTP/1.1\r']) assert.equal(bounds(partial), undefined, JSON.stringify(partial));
  for (const cr of ['GET / HTTP/1.1\rHost: x\r\r', 'GET / HTTP/1.1\r\nHost: x\rY: z', 'GET / HTTP/1.1\rH']) assert.equal(bounds(cr), 'bare CR', JSON.stringify(cr));

  const head = parseRequestHead('GET /a HTTP/1.1\nHost: x\nAccept: */*') as RequestHead;
  assert.deepEqual([head.method, head.target, head.host, head.names, head.values, head.plain], ['GET', '/a', 'x', ['Host', 'Accept'], ['x', '*/*'], false]);
  assert.equal((parseRequestHead('GET /a HTTP/1.1\r\nHost: x\nAccept: */*') as RequestHead).plain, false, 'one bare LF: rebuilt');
  assert.equal((parseRequestHead('GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*') as RequestHead).plain, true);
  // nginx: a header line may end in CR CR LF; the request line in one CR; any other CR is a bad request.
  assert.equal((parseRequestHead('GET / HTTP/1.1\r\nHost: x\r\r') as RequestHead).host, 'x');
  for (const text of ['GET / HTTP/1.1\r\r\nHost: x', 'GET / HTTP/1.1\r\nHost: x\ry', 'GET /\r HTTP/1.1\nHost: x']) assert.equal(parseRequestHead(text), 'bare CR', JSON.stringify(text));
  // A bare-LF head is passed on rebuilt, in CRLF (the endpoint's parser may refuse bare LF: Node's does).
  const received = Buffer.from('GET /a HTTP/1.1\nHost: x\n\n', 'latin1');
  const b = findHeadEnd(received) as { text: number; lines: number; crlf: boolean };
  const h = parseRequestHead(received.toString('latin1', 0, b.text)) as RequestHead;
  h.plain &&= b.crlf;
  assert.equal(upstreamRequest(received, b.lines, h, undefined, 'http', 80, '172.18.0.200', false, 'abc').toString('latin1').split('\r\n').slice(0, 3).join('|'), 'GET /a HTTP/1.1|Host: x|x-request-id: abc');
});

test('responses: framing by Content-Length, chunked, HEAD/204/304, or the close; hop-by-hop headers removed', () => {
  const r = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n', false)!;
  assert.deepEqual({ status: r.status, length: r.length, close: r.close, fields: r.fields }, { status: 200, length: 12, close: false, fields: 'Content-Type: text/plain\r\nContent-Length: 12\r\n' });
  const chunked = parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n', false)!;
  assert.equal(chunked.length, -1);
  assert.equal(chunked.fields, 'Transfer-Encoding: chunked\r\n', 'Content-Length dropped when chunked (RFC 9112 6.3)');
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n', true)!.length, 0, 'a HEAD response has no body');
  assert.equal(parseResponseHead('HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n', false)!.length, 0);
  const untilClose = parseResponseHead('HTTP/1.1 200 OK\r\nX: 1\r\n', false)!;
  assert.deepEqual([untilClose.length, untilClose.close], [-2, true]);
  assert.equal(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n', false)!.close, true, 'HTTP/1.0 closes unless keep-alive');
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n', false)!.close, true);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nContent-Length: 1\r\n', false)!.fields, 'Content-Length: 1\r\n');
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n', false), undefined, 'conflicting lengths');
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\n bad\r\n', false), undefined);
  assert.equal(parseResponseHead('SSH-2.0-OpenSSH\r\n', false), undefined);
});

test('chunked bodies: the end is found across any split, extensions and trailers included; garbage refused', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT');
  for (let split = 1; split < body.length - 4; split++) {
    const s = new ChunkedScanner();
    const a = s.scan(body.subarray(0, split));
    assert.equal(a, split);
    const b = s.scan(body.subarray(split));
    assert.equal(s.done, true, `split at ${split}`);
    assert.equal(split + b, body.length - 4, 'the bytes after the body are not part of it');
  }
  assert.throws(() => new ChunkedScanner().scan(Buffer.from('zz\r\n')), /bad chunk size/);
  assert.throws(() => new ChunkedScanner().scan(Buffer.from('2\r\nabX\r\n')), /not followed by CRLF/);
});
