// The forwarding headers both paths set, and the fallback path's forwarding of one request
// (a connection Node's HTTP server took over: upgrades aside, chunked uploads, Expect,
// HTTP/1.0; or an HTTP/2 stream) on undici's dispatch API: the response's status and
// headers go straight to the client's response and its body is written through with
// backpressure.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Dispatcher } from 'undici';
import { connectionTokens, FORWARDED, HOP_BY_HOP } from './http1.ts';

/** A client's request as one of Node's servers gives it: HTTP/1.x, or HTTP/2 through its compatibility API. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/** The host a request names: its Host header, or HTTP/2's :authority. */
export function hostOf(req: ClientRequest): string {
  return req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '';
}

/** The header names a Connection header lists (they are hop-by-hop too). */
function listedIn(connection: string | undefined): ReadonlySet<string> | undefined {
  return connection ? connectionTokens(connection) : undefined;
}

/**
 * The headers an endpoint receives, as a flat [name, value, ...] list: the client's minus
 * hop-by-hop ones (and those its Connection header names), with the forwarding headers set
 * as ingress-nginx sets them. Unless `trust`, what the client sent in X-Forwarded-* and
 * X-Real-IP is dropped (its X-Forwarded-For survives as X-Original-Forwarded-For). HTTP/2's
 * pseudo-headers do not go on; its :authority becomes the Host, as does the `authority` of
 * an absolute-form request line.
 */
export function upstreamHeaders(req: ClientRequest, scheme: 'http' | 'https', port: number, trust: boolean, requestId: string, authority?: string): string[] {
  const raw = req.rawHeaders;
  const h = req.headers;
  const listed = listedIn(h.connection as string | undefined);
  const host = authority ?? hostOf(req);
  const out: string[] = (authority !== undefined || h.host === undefined) && host ? ['host', host] : [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    // Expect was answered here (Node's server sent 100 Continue; the body is read before forwarding).
    if (name.startsWith(':') || HOP_BY_HOP.has(name) || FORWARDED.has(name) || listed?.has(name) || name === 'expect') continue;
    if (authority !== undefined && name === 'host') continue; // an absolute-form target's authority replaces it (RFC 9112 §3.2.2)
    out.push(name, raw[i + 1]!);
  }
  out.push(...forwardingHeaders({ remote: req.socket.remoteAddress ?? '', scheme, port, trust, host, clientFor: h['x-forwarded-for'] as string | undefined, requestId, claimed: (name) => h[name] as string | undefined }));
  return out;
}

export interface ForwardingInput {
  remote: string;
  scheme: 'http' | 'https';
  port: number;
  /** Trust what the client claims in X-Forwarded-* and X-Real-IP (ingress-nginx's use-forwarded-headers). */
  trust: boolean;
  host: string;
  clientFor?: string;
  requestId: string;
  claimed: (name: string) => string | undefined;
}

/** The client's address as access rules see it: the peer's, or with trusted forwarding headers the first X-Forwarded-For hop (nginx's real_ip, recursive). */
export function clientAddress(remote: string, trust: boolean, forwardedFor: string | undefined): string {
  return (trust && forwardedFor?.split(',')[0]!.trim()) || remote;
}

/** The forwarding header lines (each ending in CRLF), as ingress-nginx sets them. */
export function forwardingLines(f: ForwardingInput): string {
  let realIp = f.remote;
  let host = f.host;
  let port = String(f.port);
  let proto: string = f.scheme;
  if (f.trust) {
    realIp = f.claimed('x-real-ip') || realIp;
    host = f.claimed('x-forwarded-host') || host;
    port = f.claimed('x-forwarded-port') || port;
    proto = f.claimed('x-forwarded-proto') || proto;
  }
  const forwardedFor = f.trust && f.clientFor ? `${f.clientFor}, ${f.remote}` : f.remote;
  const original = f.clientFor ? `x-original-forwarded-for: ${f.clientFor}\r\n` : '';
  return `${original}x-request-id: ${f.requestId}\r\nx-real-ip: ${realIp}\r\nx-forwarded-for: ${forwardedFor}\r\nx-forwarded-host: ${host}\r\nx-forwarded-port: ${port}\r\nx-forwarded-proto: ${proto}\r\nx-forwarded-scheme: ${proto}\r\nx-scheme: ${proto}\r\n`;
}

/** The same headers as a flat [name, value, ...] list. */
export function forwardingHeaders(f: ForwardingInput): string[] {
  return forwardingLines(f)
    .split('\r\n')
    .filter(Boolean)
    .flatMap((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]);
}

/** Receives one endpoint's response into the client's; `done` settles once, with the error if any. */
export class Forward implements Dispatcher.DispatchHandler {
  /** The status once the response has begun (after that a failure cannot be retried). */
  status = 0;
  /** The response's Content-Length, for the access log. */
  length: string | undefined;

  /** `extra`: headers the proxy adds to the response, as a flat [name, value, ...] list. */
  constructor(private readonly res: ServerResponse, private readonly done: (err?: Error) => void, private readonly extra: string[] = []) {}

  onConnect(): void {}

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.status = statusCode;
    // One pass; a Connection header naming more than the usual hop-by-hop ones filters again.
    let headers: string[] = [];
    let listed: ReadonlySet<string> | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      const lower = name.toLowerCase();
      const value = rawHeaders[i + 1]!.toString('latin1');
      if (lower === 'connection') listed = listedIn(value);
      else if (lower === 'content-length') this.length = value;
      if (!HOP_BY_HOP.has(lower)) headers.push(name, value);
    }
    if (listed && [...listed].some((n) => !HOP_BY_HOP.has(n))) {
      const kept: string[] = [];
      for (let i = 0; i < headers.length; i += 2) if (!listed.has(headers[i]!.toLowerCase())) kept.push(headers[i]!, headers[i + 1]!);
      headers = kept;
    }
    if (this.extra.length) headers.push(...this.extra);
    this.res.writeHead(statusCode, headers);
    this.res.on('drain', resume);
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onComplete(): void {
    this.res.end();
    this.done();
  }

  onError(err: Error): void {
    this.done(err);
  }
}
