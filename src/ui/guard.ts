// Who the page's server answers (pure). `kubewire ui` runs traces as root and reads the
// kernel, so it answers only a browser that holds its token and names it by a name of its
// own, as Jupyter does:
// - the token: printed in the URL (`?token=...`), then kept in an HttpOnly, SameSite=Strict
//   cookie; an API client may send `Authorization: Bearer TOKEN`. None: 401; a wrong one: 403.
// - Host: only 127.0.0.1, localhost, [::1] (or the --address given) with the server's port;
//   a page on another name that resolves to 127.0.0.1 (DNS rebinding) gets 403.
// - Origin: a request a browser sends from another page (cross-site POST, EventSource) names
//   that page; only the server's own origins pass.

import { timingSafeEqual } from 'node:crypto';

/** The default port: one of kubewire's own, not 8080 (where kubectl looks for an API server without a kubeconfig), 8001 (kubectl proxy) or 8888 (Jupyter). */
export const DEFAULT_UI_PORT = 7468;

export interface Guard {
  token: string;
  port: number;
  /** The address the server listens on (127.0.0.1 unless --address said otherwise). */
  address: string;
}

export interface Asked {
  method: string;
  path: string;
  /** The query's token, if any. */
  queryToken?: string | null;
  headers: Record<string, string | string[] | undefined>;
}

export type Refusal = { status: 400 | 401 | 403; message: string };

/** The cookie's name: one per port, since browsers share a host's cookies between its ports. */
export const cookieName = (port: number) => `kubewire-ui-${port}`;

/** The names the server answers to, with its port (Host header values). */
export function allowedHosts(g: Pick<Guard, 'port' | 'address'>): string[] {
  const names = ['127.0.0.1', 'localhost', '[::1]'];
  const own = g.address.includes(':') ? `[${g.address}]` : g.address;
  if (!names.includes(own) && g.address !== '0.0.0.0' && g.address !== '::') names.push(own);
  return names.map((n) => `${n}:${g.port}`);
}

/** The server's own origins. */
export const allowedOrigins = (g: Pick<Guard, 'port' | 'address'>) => allowedHosts(g).map((h) => `http://${h}`);

function header(h: Asked['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The token a request carries: its cookie, an Authorization: Bearer header, or ?token=. */
export function tokenOf(a: Asked, port: number): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(header(a.headers, 'authorization') ?? '')?.[1];
  if (bearer) return bearer;
  if (a.queryToken) return a.queryToken;
  const name = cookieName(port);
  for (const part of (header(a.headers, 'cookie') ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Whether to answer a request, and if not, why (the status and a message for the person who sent it). */
export function admit(a: Asked, g: Guard): Refusal | undefined {
  const host = header(a.headers, 'host');
  if (!host || !allowedHosts(g).includes(host.toLowerCase())) {
    return { status: 403, message: `Host ${JSON.stringify(host ?? '')} is not this server's name: kubewire ui answers only to ${allowedHosts(g).join(', ')} (a page on another name that resolves here is refused: DNS rebinding)` };
  }
  const origin = header(a.headers, 'origin');
  // Browsers send Origin on cross-origin requests and on POSTs; a request from another page names it.
  if (origin !== undefined && !allowedOrigins(g).includes(origin.toLowerCase())) {
    return { status: 403, message: `Origin ${JSON.stringify(origin)} is not this page: kubewire ui takes requests only from ${allowedOrigins(g).join(', ')}` };
  }
  const stateChanging = a.method !== 'GET' && a.method !== 'HEAD';
  if ((stateChanging || a.path === '/api/events') && header(a.headers, 'sec-fetch-site') === 'cross-site') {
    return { status: 403, message: 'a request from another site: kubewire ui takes requests only from its own page' };
  }
  const token = tokenOf(a, g.port);
  if (token === undefined) return { status: 401, message: 'no token: open the URL that `kubewire ui` printed (http://127.0.0.1:PORT/?token=...)' };
  if (!same(token, g.token)) return { status: 403, message: 'wrong token: open the URL that `kubewire ui` printed (it changes each time kubewire ui starts)' };
  return undefined;
}
