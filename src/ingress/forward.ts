// One request forwarded to one endpoint, on undici's low-level dispatch API: the response's
// status and headers go straight to the client's ServerResponse and its body chunks are
// written through with backpressure, with no intermediate stream objects (the fastest
// path undici offers; a proxy's cost per request is mostly such plumbing).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';

/** Hop-by-hop headers (RFC 9110 7.6.1), never forwarded; nor `proxy` (httpoxy). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'proxy']);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto', 'x-forwarded-scheme', 'x-scheme', 'x-real-ip', 'x-original-forwarded-for', 'x-request-id']);

/** The header names a Connection header lists (they are hop-by-hop too). */
function listedIn(connection: string | undefined): Set<string> | undefined {
  return connection ? new Set(connection.toLowerCase().split(',').map((s) => s.trim())) : undefined;
}

/**
 * The headers an endpoint receives, as a flat [name, value, ...] list: the client's minus
 * hop-by-hop ones (and those its Connection header names), with the forwarding headers set
 * as ingress-nginx sets them. Unless `trust`, what the client sent in X-Forwarded-* and
 * X-Real-IP is dropped (its X-Forwarded-For survives as X-Original-Forwarded-For).
 */
export function upstreamHeaders(req: IncomingMessage, scheme: 'http' | 'https', port: number, trust: boolean, requestId: string): string[] {
  const raw = req.rawHeaders;
  const h = req.headers;
  const listed = listedIn(h.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || FORWARDED.has(name) || listed?.has(name)) continue;
    out.push(name, raw[i + 1]!);
  }
  const remote = req.socket.remoteAddress ?? '';
  const clientFor = h['x-forwarded-for'] as string | undefined;
  const claimed = (name: string, ours: string) => (trust && h[name] ? String(h[name]) : ours);
  const proto = claimed('x-forwarded-proto', scheme);
  if (clientFor) out.push('x-original-forwarded-for', clientFor);
  out.push(
    'x-request-id', requestId,
    'x-real-ip', claimed('x-real-ip', remote),
    'x-forwarded-for', trust && clientFor ? `${clientFor}, ${remote}` : remote,
    'x-forwarded-host', claimed('x-forwarded-host', h.host ?? ''),
    'x-forwarded-port', claimed('x-forwarded-port', String(port)),
    'x-forwarded-proto', proto,
    'x-forwarded-scheme', proto,
    'x-scheme', proto,
  );
  return out;
}

/** Receives one endpoint's response into the client's; `done` settles once, with the error if any. */
export class Forward implements Dispatcher.DispatchHandler {
  /** The status once the response has begun (after that a failure cannot be retried). */
  status = 0;
  /** The response's Content-Length, for the access log. */
  length: string | undefined;

  constructor(private readonly res: ServerResponse, private readonly done: (err?: Error) => void) {}

  onConnect(): void {}

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.status = statusCode;
    // One pass; a Connection header naming more than the usual hop-by-hop ones filters again.
    let headers: string[] = [];
    let listed: Set<string> | undefined;
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
    this.res.writeHead(statusCode, headers);
    this.res.on('drain', resume);
    return true;
  }

  /** The first body chunk is held: a response of one chunk then leaves in one write with its head. */
  private held: Buffer | undefined;

  onData(chunk: Buffer): boolean {
    if (!this.held) {
      this.held = chunk;
      return true;
    }
    const first = this.held;
    if (first.length) {
      this.res.write(first);
      this.held = Buffer.alloc(0);
    }
    return this.res.write(chunk);
  }

  onComplete(): void {
    this.res.end(this.held);
    this.done();
  }

  onError(err: Error): void {
    this.done(err);
  }
}
