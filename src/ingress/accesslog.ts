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

export class AccessLog {
  private pending: string[] = [];
  private timer?: NodeJS.Timeout;
  private second = 0;
  private stamp = '';

  /** `write` receives batches of lines; by default appended to `file`. */
  constructor(private readonly file: string | undefined, private readonly write: (text: string) => Promise<void> = (t) => appendFile(file!, t)) {}

  request(req: IncomingMessage, status: number, seconds: number, route: Route | undefined, upstreamAddr: string, upstreamStatus: string, requestId: string, bytes: string | undefined): void {
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    if (sec !== this.second) {
      this.second = sec;
      this.stamp = timeLocal(new Date(now));
    }
    const h = req.headers;
    const q = (v: unknown) => (v === undefined ? '-' : String(v).replaceAll('"', '\\x22'));
    const requestLine = `${req.method} ${req.url} HTTP/${req.httpVersion}`;
    this.pending.push(
      `${req.socket.remoteAddress ?? '-'} - - [${this.stamp}] "${q(requestLine)}" ${status} ${bytes ?? '-'} "${q(h.referer)}" "${q(h['user-agent'])}" ${h['content-length'] ?? 0} ${seconds.toFixed(3)} [${upstreamName(route)}] [] ${upstreamAddr} - ${upstreamAddr === '-' ? '-' : seconds.toFixed(3)} ${upstreamStatus} ${requestId}\n`,
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
