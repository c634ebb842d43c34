// The access log, in ingress-nginx's default format ("upstreaminfo": nginx's combined
// format, then request length and time, the upstream name, address, status, request id).
// Lines are batched and written at most every 100 ms: a write per request would cost a
// syscall per request at load.

import { appendFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Route } from './routes.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx's $time_local (in UTC): 26/Nov/2026:16:40:01 +0000. */
export function timeLocal(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** ingress-nginx's $proxy_upstream_name: namespace-service-port. */
export function upstreamName(route: Route | undefined): string {
  if (!route) return 'upstream-default-backend';
  const port = route.upstream.name.slice(route.upstream.name.lastIndexOf(':') + 1);
  return `${route.upstream.namespace}-${route.upstream.service}-${port}`;
}

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
}

export function loggedRequest(req: IncomingMessage, requestId: string): LoggedRequest {
  const h = req.headers;
  return { remote: req.socket.remoteAddress ?? '-', method: req.method ?? '-', url: req.url ?? '-', httpVersion: req.httpVersion, referer: h.referer, userAgent: h['user-agent'], length: Number(h['content-length'] ?? 0), requestId };
}

export class AccessLog {
  private pending: string[] = [];
  private timer?: NodeJS.Timeout;
  private second = 0;
  private stamp = '';

  /** `write` receives batches of lines; by default appended to `file`. */
  constructor(private readonly file: string | undefined, private readonly write: (text: string) => Promise<void> = (t) => appendFile(file!, t)) {}

  request(r: LoggedRequest, status: number, seconds: number, route: Route | undefined, upstreamAddr: string, upstreamStatus: string, bytes: string | undefined): void {
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    if (sec !== this.second) {
      this.second = sec;
      this.stamp = timeLocal(new Date(now));
    }
    const q = (v: string | undefined) => (v === undefined ? '-' : v.replaceAll('"', '\\x22'));
    this.pending.push(
      `${r.remote} - - [${this.stamp}] "${q(`${r.method} ${r.url} HTTP/${r.httpVersion}`)}" ${status} ${bytes ?? '-'} "${q(r.referer)}" "${q(r.userAgent)}" ${r.length} ${seconds.toFixed(3)} [${upstreamName(route)}] [] ${upstreamAddr} - ${upstreamAddr === '-' ? '-' : seconds.toFixed(3)} ${upstreamStatus} ${r.requestId}\n`,
    );
    if (!this.timer) this.timer = setTimeout(() => void this.flush(), 100);
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.length) return;
    const text = this.pending.join('');
    this.pending = [];
    await this.write(text).catch(() => undefined); // a full disk must not stop the proxy
  }
}
