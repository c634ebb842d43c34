// The access log, in ingress-nginx's default format ("upstreaminfo": nginx's combined
// format, then request length and time, the upstream name, address, status, request id).
// Lines are gathered in a 64 KiB buffer, as nginx's `access_log ... buffer=64k`, and
// written when it fills or 100 ms after its first line: a write per request would cost a
// syscall per request at load. The writes are synchronous, as nginx's: appending a buffer
// to the page cache costs less than handing it to the thread pool.

import { openSync, writeSync } from 'node:fs';
import type { ClientRequest } from './forward.ts';
import type { Route, Upstream } from './table.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx's $time_local (in UTC): 26/Nov/2026:16:40:01 +0000. */
export function timeLocal(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** ingress-nginx's $proxy_upstream_name: namespace-service-port (kept per upstream: it is logged for every request). */
const upstreamNames = new WeakMap<Upstream, string>();
export function upstreamName(upstream: Upstream | undefined): string {
  if (!upstream) return 'upstream-default-backend';
  let name = upstreamNames.get(upstream);
  if (name === undefined) {
    const port = upstream.name.slice(upstream.name.lastIndexOf(':') + 1);
    upstreamNames.set(upstream, (name = `${upstream.namespace}-${upstream.service}-${port}`));
  }
  return name;
}

/** nginx's escaping of a logged string (a double quote as \x22), '-' for none. */
const quoted = (v: string | undefined) => (v === undefined ? '-' : v.includes('"') ? v.replaceAll('"', '\\x22') : v);

/** What a log line says of the request. */
export interface LoggedRequest {
  remote: string;
  method: string;
  url: string;
  httpVersion: string;
  referer?: string;
  userAgent?: string;
  /** $request_length: the request's bytes (head and body). */
  length: number;
  requestId: string;
  /** A canary's upstream that took the request ($proxy_alternative_upstream_name). */
  alternative?: Upstream;
}

export function loggedRequest(req: ClientRequest, requestId: string, alternative?: Upstream): LoggedRequest {
  const h = req.headers;
  return { remote: req.socket.remoteAddress ?? '-', method: req.method ?? '-', url: req.url ?? '-', httpVersion: req.httpVersion, referer: h.referer, userAgent: h['user-agent'], length: Number(h['content-length'] ?? 0), requestId, alternative };
}

const BUFFER_BYTES = 64 * 1024;
const FLUSH_MS = 100;

export class AccessLog {
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private fd: number | undefined;
  private timer?: NodeJS.Timeout;
  private second = 0;
  private stamp = '';

  /** Lines are appended to `file`, or given to `sink` (its buffer is reused after the call). */
  constructor(private readonly file: string, private readonly sink?: (bytes: Buffer) => void) {}

  request(r: LoggedRequest, status: number, seconds: number, route: Route | undefined, upstreamAddr: string, upstreamStatus: string, bytes: string | undefined): void {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.second) {
      this.second = second;
      this.stamp = timeLocal(new Date(now));
    }
    const took = seconds.toFixed(3);
    // Headers and URL were read as latin1, so written as latin1 they are the bytes received.
    const line = `${r.remote} - - [${this.stamp}] "${quoted(`${r.method} ${r.url} HTTP/${r.httpVersion}`)}" ${status} ${bytes ?? '-'} "${quoted(r.referer)}" "${quoted(r.userAgent)}" ${r.length} ${took} [${upstreamName(route?.upstream)}] [${r.alternative ? upstreamName(r.alternative) : ''}] ${upstreamAddr} - ${upstreamAddr === '-' ? '-' : took} ${upstreamStatus} ${r.requestId}\n`;
    if (this.used + line.length > BUFFER_BYTES) this.flush();
    if (line.length > BUFFER_BYTES) return this.out(Buffer.from(line, 'latin1'));
    this.used += this.buffer.write(line, this.used, 'latin1');
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Writes out the buffered lines. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.used) return;
    const bytes = this.buffer.subarray(0, this.used);
    this.used = 0;
    this.out(bytes);
  }

  private out(bytes: Buffer): void {
    if (this.sink) return this.sink(bytes);
    try {
      this.fd ??= openSync(this.file, 'a', 0o640);
      for (let at = 0; at < bytes.length; ) at += writeSync(this.fd, bytes, at);
    } catch {
      // A full disk must not stop the proxy: these lines are lost, as nginx's would be.
    }
  }
}
