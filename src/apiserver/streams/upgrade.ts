// The streaming subresources of pods (exec, attach, portforward), reached by an HTTP upgrade:
// `Upgrade: websocket` (kubectl 1.32's first try, client libraries) or `Upgrade: SPDY/3.1`
// (kubectl's fallback). Attachable to any server (the unix socket's, the HTTPS listener's):
// `new StreamServer(hooks).attach(server)`. A request that cannot be served gets a Status
// before any upgrade, so kubectl prints it as it prints any API error.

import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import { parseResourcePath } from '../../api/resources.ts';
import { StatusError } from '../status.ts';
import { badRequest, parseExecQuery, serveOverSpdy, serveOverWebSocket, type ContainerSession, type StartSession } from './exec.ts';
import { queryPorts, servePortForwardChannels, servePortForwardSpdy, type OpenPortForward } from './portforward.ts';
import { SpdySession } from './spdy.ts';
import { chooseProtocol, EXEC_PROTOCOLS, PORTFORWARD_CHANNELS, TUNNELED_SPDY_PORTFORWARD, type ExecProtocol } from './websocket-channels.ts';

export interface StreamHooks {
  exec?: StartSession;
  attach?: StartSession;
  portForward?: OpenPortForward;
}

export const STREAM_SUBRESOURCES = ['exec', 'attach', 'portforward'];

/** SPDY exec protocols: v5 adds nothing over v4 without WebSocket's close channel. */
const SPDY_EXEC_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
const SPDY_PORTFORWARD = 'portforward.k8s.io';

/** A request's offered protocols, from one header given once, comma-separated, or several times (pure). */
export function offeredProtocols(value: string | string[] | undefined): string[] {
  return (Array.isArray(value) ? value : value ? [value] : []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

function negotiate(offered: string[], supported: readonly string[]): string {
  const chosen = chooseProtocol(offered, supported);
  if (!chosen) throw badRequest(`unable to upgrade connection: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${supported.join(' ')}]`);
  return chosen;
}

/** An HTTP answer written on a socket that was not upgraded, then closed. */
function refuse(socket: Duplex, e: unknown): void {
  const err = e instanceof StatusError ? e : new StatusError(500, 'InternalError', e instanceof Error ? e.message : String(e));
  const body = JSON.stringify(err.toStatus());
  socket.end(`HTTP/1.1 ${err.code} ${STATUS_CODES[err.code] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export class StreamServer {
  private readonly chosen = new WeakMap<IncomingMessage, string>();
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 << 20, handleProtocols: (_offered, req) => this.chosen.get(req) ?? false });
  private readonly live = new Set<Duplex>();

  constructor(private readonly hooks: StreamHooks) {}

  /** Serves the streaming subresources on `server`'s upgrades (plain HTTP or TLS). */
  attach(server: Server | HttpsServer): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.upgrade(req, socket, head));
  }

  /** Ends every session (the server is stopping). */
  close(): void {
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    this.live.add(socket);
    socket.once('close', () => this.live.delete(socket));
    try {
      // A TLS listener that asks for client certificates: an upgrade is a request like any other.
      const tls = socket as Partial<TLSSocket>;
      if (tls.encrypted && !tls.authorized) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
      const url = new URL(req.url ?? '/', 'http://kubewire');
      const p = parseResourcePath(url.pathname);
      const sub = p?.subresource;
      if (!p || p.rt.kind !== 'Pod' || !p.name || !p.namespace || !sub || !STREAM_SUBRESOURCES.includes(sub)) {
        throw new StatusError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname}): only pods' exec, attach and portforward are served by upgrade`);
      }
      const kind = (req.headers.upgrade ?? '').toLowerCase();
      if (kind !== 'websocket' && kind !== 'spdy/3.1') throw badRequest(`unable to upgrade connection: Upgrade ${JSON.stringify(req.headers.upgrade ?? '')} is not supported (websocket or SPDY/3.1)`);
      const ws = kind === 'websocket';
      const offered = offeredProtocols(ws ? req.headers['sec-websocket-protocol'] : req.headers['x-stream-protocol-version']);
      if (sub === 'portforward') return await this.portForward(req, socket, head, ws, offered, p.namespace, p.name, url.searchParams);
      const hook = sub === 'exec' ? this.hooks.exec : this.hooks.attach;
      if (!hook) throw new StatusError(501, 'NotImplemented', `pods/${sub} is not served by this server`);
      const r = parseExecQuery(sub as 'exec' | 'attach', p.namespace, p.name, url.searchParams);
      const protocol = negotiate(offered, ws ? EXEC_PROTOCOLS : SPDY_EXEC_PROTOCOLS) as ExecProtocol;
      const session = await hook(r);
      if (ws) {
        this.websocket(req, socket, head, protocol, (w) => serveOverWebSocket(w, protocol, r, session), session);
      } else {
        const spdy = this.spdy(socket, head, protocol, () => session.kill());
        spdy.onStream = serveOverSpdy(spdy, protocol, r, () => Promise.resolve(session));
      }
    } catch (e) {
      refuse(socket, e);
    }
  }

  private async portForward(req: IncomingMessage, socket: Duplex, head: Buffer, ws: boolean, offered: string[], namespace: string, pod: string, q: URLSearchParams): Promise<void> {
    if (!this.hooks.portForward) throw new StatusError(501, 'NotImplemented', 'pods/portforward is not served by this server');
    if (!ws) {
      negotiate(offered, [SPDY_PORTFORWARD]);
      const target = await this.hooks.portForward({ namespace, pod });
      const spdy = this.spdy(socket, head, SPDY_PORTFORWARD);
      spdy.onStream = servePortForwardSpdy(spdy, target);
      return;
    }
    const protocol = negotiate(offered, [TUNNELED_SPDY_PORTFORWARD, ...PORTFORWARD_CHANNELS]);
    const ports = protocol === TUNNELED_SPDY_PORTFORWARD ? [] : queryPorts(q);
    const target = await this.hooks.portForward({ namespace, pod });
    this.websocket(req, socket, head, protocol, (w) => {
      if (protocol !== TUNNELED_SPDY_PORTFORWARD) return servePortForwardChannels(w, target, ports);
      // kubectl's SPDY, its bytes in binary messages: the same server as over a plain upgrade.
      const stream = createWebSocketStream(w);
      stream.on('error', () => undefined);
      const spdy = new SpdySession(stream, () => w.close(1000));
      spdy.onStream = servePortForwardSpdy(spdy, target);
    });
  }

  private websocket(req: IncomingMessage, socket: Duplex, head: Buffer, protocol: string, serve: (w: WebSocket) => void, session?: ContainerSession): void {
    this.chosen.set(req, protocol);
    // `ws` accepts only RFC 6455 tokens in the offer, and kubectl's `SPDY/3.1+portforward.k8s.io`
    // has a '/': the offer was negotiated above, so ws sees a token and answers the choice as is.
    req.headers['sec-websocket-protocol'] = 'negotiated';
    socket.once('close', () => session?.kill());
    this.wss.handleUpgrade(req, socket, head, (w) => serve(w));
  }

  /** Answers 101 for SPDY/3.1 and starts the session (the caller sets its onStream). */
  private spdy(socket: Duplex, head: Buffer, protocol: string, onClose?: () => void): SpdySession {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    if (head.length) socket.unshift(head);
    return new SpdySession(socket, onClose);
  }
}
