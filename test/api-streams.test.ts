// The API's streams (exec, attach, port-forward, log options). Without root: the channel
// framing, SPDY frames and sessions, the query checks, and the upgrade server end to end on a
// scratch unix socket with stand-in hooks (a local shell for exec, a local echo server for
// port-forward), through the `ws` client and a SPDY client written here. With root: a cluster
// (kapis) and a pod, exec over the daemon's socket, and the real kubectl 1.32 once
// `kubewire kubeconfig` exists.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, connect, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { constants as zc, createDeflate, createInflate } from 'node:zlib';
import { WebSocket, createWebSocketStream } from 'ws';
import { StatusError } from '../src/apiserver/status.ts';
import { parseExecQuery, type ContainerSession, type ExecRequest } from '../src/apiserver/streams/exec.ts';
import { parseLogQuery } from '../src/apiserver/streams/logs.ts';
import { parsePort, queryPorts } from '../src/apiserver/streams/portforward.ts';
import { decodeFrames, decodeHeaderBlock, encodeControl, encodeData, encodeHeaderBlock, FLAG_FIN, PING, SPDY3_DICTIONARY, SpdyError, SYN_REPLY, SYN_STREAM, u32s } from '../src/apiserver/streams/spdy.ts';
import { offeredProtocols, StreamServer } from '../src/apiserver/streams/upgrade.ts';
import { chooseProtocol, decodeChannel, encodeChannel, EXEC_PROTOCOLS, exitStatus, parseResize, portPrefix, protocolFeatures } from '../src/apiserver/streams/websocket-channels.ts';
import { logStream } from '../src/daemon/logs.ts';
import { onTerminal, shellQuote } from '../src/daemon/streams.ts';
import { daemonPaths } from '../src/state/paths.ts';
import { umlMissing } from '../src/supervisor/uml.ts';
import { isRoot } from './helpers.ts';

describe('channel framing (pure)', () => {
  test('a message is the channel byte and the payload, both ways', () => {
    const m = encodeChannel(2, 'oops');
    assert.deepEqual([...m], [2, ...Buffer.from('oops')]);
    assert.deepEqual(decodeChannel(m), { channel: 2, data: Buffer.from('oops') });
    assert.equal(decodeChannel(Buffer.alloc(0)), undefined);
    assert.deepEqual([...portPrefix(1, 8080)], [1, 0x90, 0x1f]);
  });

  test('protocols: the server prefers v5; v5 alone has the close channel, v4 on a Status', () => {
    assert.equal(chooseProtocol(['v4.channel.k8s.io', 'v5.channel.k8s.io'], EXEC_PROTOCOLS), 'v5.channel.k8s.io');
    assert.equal(chooseProtocol(['base64.channel.k8s.io'], EXEC_PROTOCOLS), undefined);
    assert.deepEqual(protocolFeatures('v5.channel.k8s.io'), { statusOnError: true, resize: true, close: true });
    assert.deepEqual(protocolFeatures('v4.channel.k8s.io'), { statusOnError: true, resize: true, close: false });
    assert.deepEqual(protocolFeatures('channel.k8s.io'), { statusOnError: false, resize: false, close: false });
    assert.deepEqual(offeredProtocols(['v5.channel.k8s.io, v4.channel.k8s.io', 'channel.k8s.io']), ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io']);
  });

  test('resize messages as kubectl sends them; anything else is no size', () => {
    assert.deepEqual(parseResize('{"Width":120,"Height":40}\n'), { width: 120, height: 40 });
    assert.equal(parseResize('{"Width":-1,"Height":40}'), undefined);
    assert.equal(parseResize('garbage'), undefined);
  });

  test('the error channel: Success, or NonZeroExitCode with the code as an ExitCode cause; text before v4', () => {
    assert.deepEqual(JSON.parse(exitStatus({ code: 0 }, ['true'])), { metadata: {}, status: 'Success' });
    const failed = JSON.parse(exitStatus({ code: 3 }, ['sh', '-c', 'exit 3']));
    assert.equal(failed.status, 'Failure');
    assert.equal(failed.reason, 'NonZeroExitCode');
    assert.deepEqual(failed.details.causes, [{ reason: 'ExitCode', message: '3' }]);
    assert.equal(exitStatus({ code: 0 }, ['true'], false), '');
    assert.match(exitStatus({ code: 3 }, ['false'], false), /exit code 3/);
    assert.equal(JSON.parse(exitStatus({ message: 'cannot run' }, ['x'])).reason, 'InternalError');
  });

  test('exec and attach queries: a command and a stream are required; tty takes stderr onto stdout', () => {
    const q = new URLSearchParams('command=sh&command=-c&command=echo+hi&container=web&stdout=true&stderr=true&tty=true');
    assert.deepEqual(parseExecQuery('exec', 'default', 'p', q), { namespace: 'default', pod: 'p', container: 'web', command: ['sh', '-c', 'echo hi'], stdin: false, stdout: true, stderr: false, tty: true });
    assert.throws(() => parseExecQuery('exec', 'default', 'p', new URLSearchParams('stdout=true')), (e: Error & { code?: number }) => e.code === 400 && /at least one command/.test(e.message));
    assert.throws(() => parseExecQuery('attach', 'default', 'p', new URLSearchParams('')), (e: Error & { code?: number }) => e.code === 400 && /at least 1 of stdin, stdout, stderr/.test(e.message));
  });

  test('port-forward ports: 1-65535, from `ports`', () => {
    assert.equal(parsePort('8080'), 8080);
    assert.match(String(parsePort('0')), /invalid port "0"/);
    assert.match(String(parsePort('80a')), /invalid port/);
    assert.deepEqual(queryPorts(new URLSearchParams('ports=80&ports=8080,9090')), [80, 8080, 9090]);
    assert.throws(() => queryPorts(new URLSearchParams('')), /"ports" is required/);
    assert.throws(() => queryPorts(new URLSearchParams('ports=70000')), /invalid port "70000"/);
  });

  test('log options as kube-apiserver checks them', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    assert.deepEqual(parseLogQuery('p', new URLSearchParams('follow=true&tailLines=5&timestamps=true&limitBytes=10&sinceSeconds=60&container=c'), now), { container: 'c', follow: true, tailLines: 5, since: now - 60_000, timestamps: true, limitBytes: 10, previous: false });
    assert.equal(parseLogQuery('p', new URLSearchParams('sinceTime=2026-01-01T00:00:00Z')).since, Date.parse('2026-01-01T00:00:00Z'));
    const err = (q: string, code: number, re: RegExp) => assert.throws(() => parseLogQuery('p', new URLSearchParams(q)), (e: Error & { code?: number }) => e.code === code && re.test(e.message));
    err('tailLines=-1', 422, /PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0/);
    err('limitBytes=0', 422, /limitBytes: Invalid value: 0/);
    err('sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z', 422, /at most one of `sinceTime` or `sinceSeconds`/);
    err('tailLines=ten', 400, /tailLines: unable to parse "ten"/);
    err('sinceTime=yesterday', 400, /sinceTime: "yesterday" is not an RFC 3339 time/);
  });

  test('a tty command goes through script(1), quoted for its shell', () => {
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.equal(shellQuote('/bin/sh'), '/bin/sh');
    assert.deepEqual(onTerminal(['sh', '-c', 'echo $HOME']), ['script', '--quiet', '--return', '--flush', '--command', "exec sh -c 'echo $HOME'", '/dev/null']);
  });
});

describe('logs: limitBytes and attach from the end', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-logs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const read = (s: NodeJS.ReadableStream) => new Promise<string>((resolve) => {
    let out = '';
    s.on('data', (b: Buffer) => (out += b));
    s.on('end', () => resolve(out));
  });

  test('limitBytes cuts the log, tailLines first', async () => {
    const file = join(dir, 'a.log');
    writeFileSync(file, 'one\ntwo\nthree\n');
    assert.equal(await read(logStream(file, { follow: false, limitBytes: 5, stillThere: () => true })), 'one\nt');
    assert.equal(await read(logStream(file, { follow: false, tailLines: 1, limitBytes: 3, stillThere: () => true })), 'thr');
    // follow stops at the limit
    assert.equal(await read(logStream(file, { follow: true, limitBytes: 4, stillThere: () => true })), 'one\n');
  });

  test('fromEnd: only what is written after', async () => {
    const file = join(dir, 'b.log');
    writeFileSync(file, 'old\n');
    let there = true;
    const s = logStream(file, { follow: true, fromEnd: true, stillThere: () => there });
    const text = read(s);
    await new Promise((r) => setTimeout(r, 250));
    writeFileSync(file, 'old\nnew\n');
    await new Promise((r) => setTimeout(r, 450));
    there = false;
    assert.equal(await text, 'new\n');
  });
});

/** A SPDY/3 client as spdystream is: odd stream ids, one zlib context per direction. */
class SpdyClient {
  private nextId = 1;
  private rest: Buffer = Buffer.alloc(0);
  private readonly deflate = createDeflate({ dictionary: SPDY3_DICTIONARY });
  private readonly inflate = createInflate({ dictionary: SPDY3_DICTIONARY });
  readonly data = new Map<number, Buffer[]>();
  readonly fin = new Set<number>();
  readonly replies: Array<{ id: number; headers: Record<string, string> }> = [];
  readonly pings: number[] = [];
  constructor(readonly t: Duplex) {
    t.on('data', (b: Buffer) => {
      const d = decodeFrames(Buffer.concat([this.rest, b]));
      this.rest = d.rest;
      for (const f of d.frames) {
        if (!f.control) {
          this.data.set(f.streamId, [...(this.data.get(f.streamId) ?? []), f.data]);
          if (f.flags & FLAG_FIN) this.fin.add(f.streamId);
        } else if (f.type === SYN_REPLY) {
          const id = f.body.readUInt32BE(0);
          void this.z(this.inflate, f.body.subarray(4)).then((h) => this.replies.push({ id, headers: decodeHeaderBlock(h) }));
        } else if (f.type === PING) this.pings.push(f.body.readUInt32BE(0));
      }
    });
  }
  private z(s: ReturnType<typeof createDeflate> | ReturnType<typeof createInflate>, input: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const on = (c: Buffer) => chunks.push(c);
      s.on('data', on);
      s.write(input);
      s.flush(zc.Z_SYNC_FLUSH, () => {
        s.off('data', on);
        resolve(Buffer.concat(chunks));
      });
    });
  }
  async open(headers: Record<string, string>, fin = false): Promise<number> {
    const id = this.nextId;
    this.nextId += 2;
    const block = await this.z(this.deflate, encodeHeaderBlock(headers));
    this.t.write(encodeControl(SYN_STREAM, fin ? FLAG_FIN : 0, Buffer.concat([u32s(id, 0), Buffer.from([0, 0]), block])));
    return id;
  }
  write(id: number, b: Buffer | string, fin = false): void {
    this.t.write(encodeData(id, Buffer.from(b), fin ? FLAG_FIN : 0));
  }
  text(id: number): string {
    return Buffer.concat(this.data.get(id) ?? []).toString();
  }
}

describe('SPDY frames (pure)', () => {
  test('header blocks round trip; a truncated one is an error', () => {
    const block = encodeHeaderBlock({ StreamType: 'data', port: '8080', requestid: '0' });
    assert.deepEqual(decodeHeaderBlock(block), { streamtype: 'data', port: '8080', requestid: '0' });
    assert.throws(() => decodeHeaderBlock(block.subarray(0, block.length - 2)), SpdyError);
    assert.throws(() => decodeHeaderBlock(Buffer.from([0xff, 0xff, 0xff, 0xff])), SpdyError);
  });

  test('frames split anywhere decode the same, and control frames carry version 3', () => {
    const bytes = Buffer.concat([encodeControl(PING, 0, u32s(7)), encodeData(3, Buffer.from('hello'), FLAG_FIN)]);
    assert.deepEqual([...bytes.subarray(0, 4)], [0x80, 0x03, 0x00, 0x06]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const a = decodeFrames(bytes.subarray(0, cut));
      const b = decodeFrames(Buffer.concat([a.rest, bytes.subarray(cut)]));
      const frames = [...a.frames, ...b.frames];
      assert.equal(frames.length, 2, `cut at ${cut}`);
      assert.deepEqual(frames[1], { control: false, streamId: 3, flags: FLAG_FIN, data: Buffer.from('hello') });
    }
    assert.throws(() => decodeFrames(Buffer.from([0x80, 0x02, 0, 1, 0, 0, 0, 0])), /SPDY version 2/);
  });
});

/** Stand-in hooks: exec runs a local shell; port-forward dials a local echo server; everything else is refused. */
function localHooks(echoPort: number) {
  const exec = async (r: ExecRequest): Promise<ContainerSession> => {
    if (r.pod === 'missing') throw new StatusError(404, 'NotFound', 'pods "missing" not found');
    const child = spawn(r.command[0]!, r.command.slice(1), { stdio: 'pipe' });
    child.stdin.on('error', () => undefined);
    if (!r.stdin) child.stdin.end();
    const done = new Promise<{ code: number }>((resolve) => child.once('close', (code) => resolve({ code: code ?? 1 })));
    return { stdin: r.stdin ? child.stdin : undefined, stdout: child.stdout, stderr: r.stderr ? child.stderr : undefined, done, kill: () => child.kill('SIGKILL') };
  };
  const portForward = async () => ({
    pod: 'p',
    uid: 'u',
    dial: (port: number) =>
      new Promise<Duplex>((resolve, reject) => {
        const s: Socket = connect(port === 1 ? 1 : echoPort, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
  });
  return { exec, portForward };
}

describe('the upgrade server, on a scratch socket with stand-in hooks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-streams-'));
  const socketPath = join(dir, 'api.sock');
  let http: Server;
  let echo: NetServer;
  let streams: StreamServer;
  const base = `ws+unix://${socketPath}:/api/v1/namespaces/default/pods`;

  before(async () => {
    echo = createNetServer((s) => s.on('data', (b) => s.write(`echo:${b}`)).on('end', () => s.end()));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    streams = new StreamServer(localHooks((echo.address() as { port: number }).port));
    http = createHttpServer((_req, res) => res.end());
    streams.attach(http);
    await new Promise<void>((r) => http.listen(socketPath, r));
  });
  after(async () => {
    streams.close();
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
    await new Promise((r) => echo.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs an exec over WebSocket; returns what each channel carried. */
  function wsExec(query: string, protocol: string, input?: string): Promise<{ stdout: string; stderr: string; error: string; closeCode: number }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base}/p/exec?${query}`, [protocol]);
      const out = { stdout: '', stderr: '', error: '' };
      const timer = setTimeout(() => (ws.terminate(), reject(new Error('exec timed out'))), 10_000);
      ws.on('open', () => {
        assert.equal(ws.protocol, protocol);
        if (input !== undefined) {
          ws.send(encodeChannel(0, input));
          ws.send(Buffer.from([255, 0])); // stdin EOF (v5)
        }
      });
      ws.on('message', (b: Buffer) => {
        const m = decodeChannel(b)!;
        if (m.channel === 1) out.stdout += m.data;
        else if (m.channel === 2) out.stderr += m.data;
        else if (m.channel === 3) out.error += m.data;
      });
      ws.on('close', (code) => {
        clearTimeout(timer);
        resolve({ ...out, closeCode: code });
      });
      ws.on('error', reject);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => reject(Object.assign(new Error(body), { status: res.statusCode })));
      });
    });
  }

  test('exec over v5: stdout and stderr apart, the exit code as a Status on channel 3, close 1000', async () => {
    const r = await wsExec('command=sh&command=-c&command=echo+out;+echo+err+>%262;+exit+3&stdout=true&stderr=true', 'v5.channel.k8s.io');
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.deepEqual(JSON.parse(r.error).details.causes, [{ reason: 'ExitCode', message: '3' }]);
    assert.equal(r.closeCode, 1000);
  });

  test('exec over v5 with stdin: the input comes back, the close channel ends it', async () => {
    const r = await wsExec('command=cat&stdin=true&stdout=true', 'v5.channel.k8s.io', 'round trip\n');
    assert.equal(r.stdout, 'round trip\n');
    assert.deepEqual(JSON.parse(r.error), { metadata: {}, status: 'Success' });
  });

  test('exec over v4 and channel.k8s.io: the same output, the error channel as each version has it', async () => {
    const v4 = await wsExec('command=sh&command=-c&command=echo+hi;+exit+2&stdout=true', 'v4.channel.k8s.io');
    assert.equal(v4.stdout, 'hi\n');
    assert.equal(JSON.parse(v4.error).reason, 'NonZeroExitCode');
    const v1 = await wsExec('command=sh&command=-c&command=exit+2&stdout=true', 'channel.k8s.io');
    assert.match(v1.error, /exit code 2/);
  });

  test('refusals are Statuses before any upgrade: unknown pod 404, no command 400, no protocol in common 400', async () => {
    const missing = new WebSocket(`${base}/missing/exec?command=true&stdout=true`, ['v5.channel.k8s.io']);
    const status = await new Promise<{ code: number; body: any }>((resolve) => missing.on('unexpected-response', (_q, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ code: res.statusCode!, body: JSON.parse(body) }));
    }));
    assert.equal(status.code, 404);
    assert.equal(status.body.kind, 'Status');
    assert.equal(status.body.reason, 'NotFound');
    await assert.rejects(wsExec('stdout=true', 'v5.channel.k8s.io'), (e: Error & { status?: number }) => e.status === 400 && /at least one command/.test(e.message));
    await assert.rejects(wsExec('command=true&stdout=true', 'base64.channel.k8s.io'), (e: Error & { status?: number }) => e.status === 400 && /unable to negotiate protocol/.test(e.message));
  });

  test('port-forward over WebSocket channels (client-node): port prefixes, then the bytes both ways', async () => {
    const ws = new WebSocket(`${base}/p/portforward?ports=8080`, ['v4.channel.k8s.io']);
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(encodeChannel(0, 'ping')));
      ws.on('message', (b: Buffer) => {
        got.push(b);
        if (Buffer.concat(got.filter((m) => m[0] === 0).map((m) => m.subarray(1))).includes('echo:ping')) resolve();
      });
      ws.on('error', reject);
      setTimeout(() => reject(new Error('port-forward timed out')), 5000);
    });
    ws.close();
    assert.deepEqual([...got[0]!], [0, 0x90, 0x1f]);
    assert.deepEqual([...got[1]!], [1, 0x90, 0x1f]);
  });

  async function spdyPortForward(t: Duplex): Promise<void> {
    const c = new SpdyClient(t);
    // A working request: error stream then data stream, as kubectl opens them.
    const err = await c.open({ streamtype: 'error', port: '8080', requestid: '0' }, true);
    const data = await c.open({ streamtype: 'data', port: '8080', requestid: '0' });
    c.write(data, 'hello');
    c.t.write(encodeControl(PING, 0, u32s(1)));
    await waitUntil(() => c.text(data) === 'echo:hello' && c.pings.includes(1) && c.replies.length === 2, 'the echo through SPDY');
    c.write(data, '', true);
    await waitUntil(() => c.fin.has(data) && c.fin.has(err), 'both streams to end');
    // A port where nothing listens: the reason on the error stream.
    const err2 = await c.open({ streamtype: 'error', port: '1', requestid: '1' }, true);
    await c.open({ streamtype: 'data', port: '1', requestid: '1' });
    await waitUntil(() => c.fin.has(err2), 'the error stream of a refused port');
    assert.match(c.text(err2), /error forwarding port 1 to pod p, uid u: connect ECONNREFUSED/);
  }

  test('port-forward over SPDY tunnelled in WebSocket (kubectl 1.32): streams paired by requestid, PING answered, refusals as text', async () => {
    // `ws`'s client refuses a subprotocol with a '/', as kubectl's is: the handshake by hand, then ws frames the messages.
    const s = connect(socketPath);
    s.write(`GET /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n`);
    const { head, rest } = await responseHead(s);
    assert.match(head, /^HTTP\/1.1 101 /);
    assert.match(head, /Sec-WebSocket-Protocol: SPDY\/3.1\+portforward.k8s.io/i);
    const ws = new WebSocket(null as unknown as string, undefined, { autoPong: true });
    (ws as unknown as { _isServer: boolean })._isServer = false; // a client: its frames masked
    (ws as unknown as { setSocket(s: Socket, h: Buffer, o: object): void }).setSocket(s, rest, { maxPayload: 16 << 20 });
    s.resume();
    const t = createWebSocketStream(ws);
    await spdyPortForward(t);
    t.destroy();
  });

  test('port-forward over plain SPDY/3.1 (kubectl\'s fallback)', async () => {
    const s = connect(socketPath);
    s.write('POST /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n');
    const { head, rest } = await responseHead(s);
    if (rest.length) s.unshift(rest);
    s.resume();
    assert.match(head, /^HTTP\/1.1 101 /);
    assert.match(head, /X-Stream-Protocol-Version: portforward.k8s.io/i);
    await spdyPortForward(s);
    s.destroy();
  });

  test('exec over plain SPDY (kubectl\'s fallback): one stream per channel, the Status on the error stream', async () => {
    const s = connect(socketPath);
    s.write('POST /api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=cat;+echo+e+>%262;+exit+4&stdin=true&stdout=true&stderr=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n');
    const { head, rest } = await responseHead(s);
    if (rest.length) s.unshift(rest);
    s.resume();
    assert.match(head, /X-Stream-Protocol-Version: v4.channel.k8s.io/i);
    const c = new SpdyClient(s);
    const error = await c.open({ streamtype: 'error' }, true);
    const stdin = await c.open({ streamtype: 'stdin' });
    const stdout = await c.open({ streamtype: 'stdout' }, true);
    const stderr = await c.open({ streamtype: 'stderr' }, true);
    c.write(stdin, 'spdy in\n', true);
    await waitUntil(() => c.fin.has(error), 'the error stream to end');
    assert.equal(c.text(stdout), 'spdy in\n');
    assert.equal(c.text(stderr), 'e\n');
    assert.deepEqual(JSON.parse(c.text(error)).details.causes, [{ reason: 'ExitCode', message: '4' }]);
    s.destroy();
  });
});

/** An HTTP response's head off a socket, and the bytes after it. */
function responseHead(s: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const on = (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      s.off('data', on);
      s.pause();
      resolve({ head: buf.subarray(0, i).toString(), rest: buf.subarray(i + 4) });
    };
    s.on('data', on);
  });
}

async function waitUntil(ok: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}


// ---- root: a cluster, exec and port-forward over its api.sock, and the real kubectl when the HTTPS listener is there ----

const CLI = new URL('../bin/kubewire.js', import.meta.url).pathname;
const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
let KUBECONFIG_FILE = ''; // up merges its context here (a file of this test's), never into ~/.kube/config

function kubewire(args: string[], timeout = 240_000) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout, env: { ...process.env, KUBECONFIG: KUBECONFIG_FILE } });
}

const POD = `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}
  - {name: talker, image: busybox, command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.5; done"]}
`;

/** The same checks on this machine's kernel and in a user-mode Linux kernel of the cluster's own. */
const CLUSTERS = [
  { name: 'kapis', kernel: 'host', skip: isRoot ? false : 'needs root: a cluster on this kernel' },
  { name: 'kapis2', kernel: 'uml', skip: !isRoot ? 'needs root (the uml cluster shares the setup of root\'s)' : umlMissing() ? `user-mode Linux is not installed: ${umlMissing()}` : false },
];

/** One exec over a WebSocket on `socketPath` (v5): what each channel carried. */
function execOver(socketPath: string, query: string, input?: string): Promise<{ stdout: string; stderr: string; status: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${socketPath}:/api/v1/namespaces/default/pods/web/exec?${query}`, ['v5.channel.k8s.io']);
    const out = { stdout: '', stderr: '', error: '' };
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('exec timed out'))), 20_000);
    ws.on('open', () => {
      if (input === undefined) return;
      ws.send(encodeChannel(0, input));
      ws.send(Buffer.from([255, 0]));
    });
    ws.on('message', (b: Buffer) => {
      const m = decodeChannel(b)!;
      if (m.channel === 1) out.stdout += m.data;
      else if (m.channel === 2) out.stderr += m.data;
      else if (m.channel === 3) out.error += m.data;
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve({ stdout: out.stdout, stderr: out.stderr, status: out.error ? JSON.parse(out.error) : undefined });
    });
    ws.on('error', reject);
  });
}

for (const { name: CLUSTER, kernel, skip } of CLUSTERS)
describe(`a cluster (${CLUSTER}, kernel ${kernel}): exec and port-forward over its api.sock, and kubectl 1.32`, { skip }, () => {
  let work: string;
  let kubeconfig: string | undefined;
  let podIP = '';
  const sock = daemonPaths(CLUSTER).socket;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'kwt-streams-root-'));
    kubewire(['down', '--cluster', CLUSTER], 120_000); // a leftover of an earlier run
    KUBECONFIG_FILE = join(work, 'kubeconfig');
    writeFileSync(KUBECONFIG_FILE, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n', { mode: 0o600 });
    const up = kubewire(['up', '--cluster', CLUSTER, '--nodes', '1', '--kernel', kernel, ...(kernel === 'uml' ? ['--kernel-memory', '1024'] : [])], 600_000);
    assert.equal(up.status, 0, `up: ${up.stderr}`);
    writeFileSync(join(work, 'pod.yaml'), POD);
    const applied = kubewire(['apply', '--cluster', CLUSTER, '-f', join(work, 'pod.yaml')], 60_000);
    assert.equal(applied.status, 0, applied.stderr);
    const wait = kubewire(['wait', '--cluster', CLUSTER, '--for=condition=Ready', 'pod/web', '--timeout=240s'], 300_000);
    assert.equal(wait.status, 0, `pod web not Ready: ${wait.stderr}`);
    podIP = JSON.parse(kubewire(['get', '--cluster', CLUSTER, 'pod', 'web', '-o', 'json'], 30_000).stdout).status.podIP;
    // The kubeconfig, when the HTTPS listener and `kubewire kubeconfig` exist.
    const kc = kubewire(['kubeconfig', '--cluster', CLUSTER], 30_000);
    if (kc.status === 0 && /server: https:\/\/127\.0\.0\.1:\d+/.test(kc.stdout)) {
      kubeconfig = join(work, 'kubeconfig.print');
      writeFileSync(kubeconfig, kc.stdout, { mode: 0o600 });
    }
  });
  after(() => {
    kubewire(['down', '--cluster', CLUSTER], 180_000);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('exec over api.sock (v5): in the pod\'s network namespace, stdout and stderr apart, exit code 3, stdin round trip', async () => {
    const r = await execOver(sock, 'command=sh&command=-c&command=ip+-o+-4+addr+show+eth0;+echo+err+>%262;+exit+3&stdout=true&stderr=true');
    assert.match(r.stdout, new RegExp(`inet ${podIP.replace(/\./g, '\\.')}/`), 'the pod\'s own eth0 and address');
    assert.equal(r.stderr, 'err\n');
    assert.deepEqual(r.status.details.causes, [{ reason: 'ExitCode', message: '3' }]);
    const missing = await execOver(sock, 'command=no-such-command-kw&stdout=true&stderr=true');
    assert.deepEqual(missing.status.details.causes, [{ reason: 'ExitCode', message: '127' }]);
    assert.match(missing.stderr, /no-such-command-kw/);
    const cat = await execOver(sock, 'command=cat&container=talker&stdin=true&stdout=true', 'through the pod\n');
    assert.equal(cat.stdout, 'through the pod\n');
    assert.equal(cat.status.status, 'Success');
  });

  test('port-forward over api.sock (portforward.k8s.io channels): the pod\'s localhost:8080 answers', async () => {
    const ws = new WebSocket(`ws+unix://${sock}:/api/v1/namespaces/default/pods/web/portforward?ports=8080`, ['portforward.k8s.io']);
    let data = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer through port-forward: ${data}`)), 10_000);
      ws.on('open', () => ws.send(encodeChannel(0, 'GET / HTTP/1.0\r\n\r\n')));
      ws.on('message', (b: Buffer) => {
        if (b[0] === 0) data = Buffer.concat([data, b.subarray(1)]);
        if (/pod: web/.test(data.toString())) {
          clearTimeout(timer);
          resolve();
        }
      });
      ws.on('error', reject);
    });
    ws.terminate();
    assert.deepEqual([...data.subarray(0, 2)], [0x90, 0x1f], 'the first message starts with the port');
    assert.match(data.toString(), new RegExp(`pod IP: ${podIP.replace(/\./g, '\\.')}`));
  });

  test('kubectl 1.32: exec (exit code 3, -i), port-forward, logs, attach', async (t) => {
    if (!kubeconfig) return t.skip(`no HTTPS listener yet: \`kubewire kubeconfig --cluster ${CLUSTER}\` printed no https://127.0.0.1 server`);
    const kubectl = (args: string[], input?: string, env: Record<string, string> = {}) => spawnSync(KUBECTL, ['--kubeconfig', kubeconfig!, '--cache-dir', join(work, 'cache'), ...args], { encoding: 'utf8', timeout: 60_000, input, env: { ...process.env, ...env } });
    const exec = kubectl(['exec', 'web', '--', 'sh', '-c', 'echo hi; exit 3']);
    assert.equal(exec.status, 3, exec.stderr);
    assert.equal(exec.stdout, 'hi\n');
    const stdin = kubectl(['exec', '-i', 'web', '-c', 'talker', '--', 'sh', '-c', 'cat; echo done'], 'typed\n');
    assert.equal(stdin.status, 0, stdin.stderr);
    assert.equal(stdin.stdout, 'typed\ndone\n');
    // SPDY, kubectl's fallback when the WebSocket upgrade fails, forced as kubectl allows.
    const spdy = kubectl(['exec', '-i', 'web', '-c', 'talker', '--', 'sh', '-c', 'cat; echo e >&2; exit 6'], 'over spdy\n', { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' });
    assert.equal(spdy.status, 6, spdy.stderr);
    assert.equal(spdy.stdout, 'over spdy\n');
    assert.match(spdy.stderr, /^e$/m);
    // A terminal: kubectl on a pseudo-terminal of script(1) here, the command on one there, its
    // size kubectl's (the resize comes after the start: the command looks for it up to 10 s; the
    // size on a line of its own, whatever the terminal echoed meanwhile).
    const tty = spawnSync('script', ['-qec', `stty cols 91 rows 27; ${KUBECTL} --kubeconfig ${kubeconfig} --cache-dir ${join(work, 'cache')} exec -it web -c talker -- sh -c 'tty; i=0; while [ "$(stty size)" != "27 91" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo; stty size; exit 4'`, '/dev/null'], { encoding: 'utf8', timeout: 60_000, input: '' });
    assert.equal(tty.status, 4, tty.stdout);
    assert.match(tty.stdout, /\/dev\/pts\/\d+\r?\n/);
    assert.match(tty.stdout, /^27 91\r?$/m);

    // port-forward on 127.0.0.1 only, for at most 40 s, its process ended by its pid: SPDY in
    // WebSocket (kubectl's first choice), then plain SPDY (its fallback, forced).
    for (const websockets of ['true', 'false']) {
      const local = await new Promise<number>((resolve) => {
        const s = createNetServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as { port: number }).port;
          s.close(() => resolve(port));
        });
      });
      const pf = spawn('timeout', ['40', KUBECTL, '--kubeconfig', kubeconfig, '--cache-dir', join(work, 'cache'), 'port-forward', '--address', '127.0.0.1', 'pod/web', `${local}:8080`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECTL_PORT_FORWARD_WEBSOCKETS: websockets } });
      try {
        let said = '';
        pf.stdout!.on('data', (b) => (said += b));
        await waitUntil(() => said.includes('Forwarding from'), 'kubectl port-forward to listen', 30_000);
        const answer = await new Promise<string>((resolve, reject) => {
          const c = connect(local, '127.0.0.1', () => c.end('GET / HTTP/1.0\r\n\r\n'));
          let text = '';
          c.on('data', (b) => (text += b));
          c.on('end', () => resolve(text));
          c.on('error', reject);
          c.setTimeout(20_000, () => c.destroy(new Error('no answer')));
        });
        assert.match(answer, /pod: web/, `port-forward (websockets ${websockets})`);
      } finally {
        pf.kill();
      }
    }

    const tail = kubectl(['logs', 'web', '-c', 'talker', '--tail=2']);
    assert.equal(tail.status, 0, tail.stderr);
    assert.match(tail.stdout, /^line \d+\nline \d+\n$/);
    const limited = kubectl(['logs', 'web', '-c', 'talker', '--limit-bytes=4']);
    assert.equal(limited.stdout, 'line');
    const previous = kubectl(['logs', 'web', '-c', 'talker', '-p']);
    assert.equal(previous.status, 1);
    assert.match(previous.stderr, /previous terminated container "talker" in pod "web" not found/);
    // attach: ended once a line of the talker came through (at most 15 s).
    const attach = spawn(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(work, 'cache'), 'attach', 'web', '-c', 'talker'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const attached = { stdout: '', stderr: '' };
    attach.stdout!.on('data', (b) => (attached.stdout += b));
    attach.stderr!.on('data', (b) => (attached.stderr += b));
    const ended = new Promise((r) => attach.on('close', r));
    await waitUntil(() => /^line \d+$/m.test(attached.stdout), 'a line through attach', 15_000).catch(() => undefined);
    attach.kill();
    await ended;
    assert.match(attached.stdout, /^line \d+$/m, `attach: ${attached.stderr}`);
  });
});
