// port-forward, as the kubelet serves it: bytes between the client and localhost:PORT inside
// the pod's network namespace (the daemon's Dial opens that connection). Two transports:
//  - SPDY (kubectl; plain or tunnelled in WebSocket): per forwarded connection the client opens
//    an `error` and a `data` stream with headers `port` and `requestid`; failures are text on
//    the error stream.
//  - WebSocket channels (`portforward.k8s.io`, @kubernetes/client-node): the ports in the
//    query, port i's data on channel 2i and errors on 2i+1, each channel's first message
//    starting with the port (uint16 LE).

import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { badRequest, writeHeld } from './exec.ts';
import type { SpdySession, SpdyStream } from './spdy.ts';
import { decodeChannel, encodeChannel, portPrefix } from './websocket-channels.ts';

/** A connection to `port` on the pod's localhost; rejects with the reason it could not be made. */
export type Dial = (port: number) => Promise<Duplex>;

export interface PortForwardTarget {
  /** For messages, as the kubelet words them. */
  pod: string;
  uid: string;
  dial: Dial;
}

/** Finds a running pod and how to reach its ports; throws StatusError (NotFound, BadRequest). */
export type OpenPortForward = (r: { namespace: string; pod: string }) => Promise<PortForwardTarget>;

/** A port as the client wrote it: 1-65535, or why not (pure). */
export function parsePort(text: string | undefined): number | string {
  const port = Number(text);
  if (!text || !/^\d+$/.test(text) || port < 1 || port > 65535) return `invalid port ${JSON.stringify(text ?? '')}: a port is a number from 1 to 65535`;
  return port;
}

/** The ports of a WebSocket port-forward's query (`ports=80&ports=8080` or `ports=80,8080`); StatusError when none or one is bad (pure). */
export function queryPorts(q: URLSearchParams): number[] {
  const texts = q.getAll('ports').flatMap((p) => p.split(','));
  if (!texts.length) throw badRequest('query parameter "ports" is required');
  return texts.map((t) => {
    const p = parsePort(t.trim());
    if (typeof p === 'string') throw badRequest(p);
    return p;
  });
}

/** Copies both ways; each side's end half-closes the other; an error ends both. */
function splice(a: Duplex, b: Duplex, onDone: () => void): void {
  let ended = 0;
  const finish = () => {
    if (++ended === 2) onDone();
  };
  a.pipe(b);
  b.pipe(a);
  a.once('end', finish);
  b.once('end', finish);
  const fail = () => {
    a.destroy();
    b.destroy();
    onDone();
  };
  a.once('error', fail);
  b.once('error', fail);
}

function forwardError(t: PortForwardTarget, port: number, e: unknown): string {
  return `error forwarding port ${port} to pod ${t.pod}, uid ${t.uid}: ${e instanceof Error ? e.message : String(e)}`;
}

/** The SPDY side: pairs each request's error and data streams and connects them to the pod. */
export function servePortForwardSpdy(session: SpdySession, t: PortForwardTarget): (stream: SpdyStream) => void {
  // Streams by request id; without one (old clients), an error stream pairs with the next data stream.
  const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream }>();
  let anonymous = 0;
  return (stream) => {
    stream.on('error', () => undefined);
    const type = stream.headers.streamtype;
    if (type !== 'error' && type !== 'data') return void stream.destroy();
    const id = stream.headers.requestid ?? `anonymous-${type === 'error' ? ++anonymous : anonymous}`;
    const pair = pairs.get(id) ?? {};
    pairs.set(id, pair);
    if (pair[type]) return void stream.destroy();
    pair[type] = stream;
    if (type === 'error') stream.resume(); // the client writes nothing there
    if (!pair.error || !pair.data) return;
    pairs.delete(id);
    const { error, data } = pair;
    const port = parsePort(stream.headers.port);
    const fail = (text: string) => {
      error.end(text);
      data.end();
    };
    if (typeof port === 'string') return fail(port);
    t.dial(port).then(
      (conn) => splice(data, conn, () => error.end()),
      (e: unknown) => fail(forwardError(t, port, e)),
    );
  };
}

/** The WebSocket channels side: one connection per port in the query, for as long as the socket lives. */
export function servePortForwardChannels(ws: WebSocket, t: PortForwardTarget, ports: number[]): void {
  const conns: Array<Duplex | undefined> = [];
  // What the client sends before its connection is made waits for it.
  const early: Buffer[][] = ports.map(() => []);
  const send = (b: Buffer) => ws.readyState === ws.OPEN && ws.send(b, { binary: true });
  let open = ports.length;
  ports.forEach((port, i) => {
    send(portPrefix(2 * i, port));
    send(portPrefix(2 * i + 1, port));
    t.dial(port).then(
      (conn) => {
        if (ws.readyState !== ws.OPEN) return void conn.destroy();
        conns[i] = conn;
        for (const b of early[i]!.splice(0)) conn.write(b);
        conn.on('data', (b: Buffer) => send(encodeChannel(2 * i, b)));
        conn.on('error', (e) => send(encodeChannel(2 * i + 1, forwardError(t, port, e))));
        conn.on('close', () => {
          if (--open === 0) ws.close(1000);
        });
      },
      (e: unknown) => {
        send(encodeChannel(2 * i + 1, forwardError(t, port, e)));
        if (--open === 0) ws.close(1000);
      },
    );
  });
  ws.on('message', (raw: Buffer, isBinary: boolean) => {
    const m = isBinary ? decodeChannel(raw) : undefined;
    if (!m || m.channel % 2 !== 0) return;
    const i = m.channel / 2;
    if (i >= ports.length) return;
    if (conns[i]) writeHeld(ws, conns[i], m.data);
    else early[i]!.push(Buffer.from(m.data));
  });
  ws.on('close', () => conns.forEach((c) => c?.destroy()));
  ws.on('error', () => undefined);
}
