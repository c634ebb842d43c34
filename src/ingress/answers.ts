// What the proxy answers itself, before any endpoint, for a request that matched a route:
// ingress-nginx's app-root, a location denied by an invalid annotation, the redirect
// annotations, a CORS preflight, the redirect of plain HTTP to HTTPS, the source-range
// allowlist. Checked in the order nginx meets them: the server's app-root first, then the
// location's rewrite phase (its `return`s, then the Lua SSL redirect), then its access
// phase (allow/deny). Pure: both data paths (connection.ts, proxy.ts) ask it.

import { contains, tryParseIP } from '../netaddr/ip.ts';
import { corsHeaders } from './cors.ts';
import { requestHost, requestPath } from './paths.ts';
import type { Route } from './routes.ts';

export interface OwnAnswer {
  status: number;
  /** For redirects. */
  location?: string;
  /** More response headers (a CORS preflight's). */
  headers?: Array<[string, string]>;
}

export interface AskedFor {
  scheme: 'http' | 'https';
  /** The Host header as sent. */
  host: string;
  /** The request target (path and query). */
  target: string;
  /** The client's address (as the forwarding headers give it when those are trusted). */
  client: string;
  method: string;
  /** The Origin header, if any. */
  origin?: string;
}

export function ownAnswer(route: Route, req: AskedFor): OwnAnswer | undefined {
  const o = route.options;
  if (o.appRoot && requestPath(req.target) === '/') return { status: 302, location: `${req.scheme}://${req.host}${o.appRoot}` };
  if (o.denied) return { status: 503 };
  if (o.redirect) return { status: o.redirect.code, location: o.redirect.url };
  if (o.cors && req.method === 'OPTIONS') {
    const headers = corsHeaders(o.cors, req.origin);
    if (headers.length) return { status: 204, headers: [...headers, ['content-type', 'text/plain charset=UTF-8']] };
  }
  if (req.scheme === 'http' && route.tls) return { status: 308, location: `https://${requestHost(req.host)}${req.target}` };
  if (o.allowlist && !allowed(o.allowlist, req.client)) return { status: 403 };
  return undefined;
}

function allowed(allowlist: NonNullable<Route['options']['allowlist']>, client: string): boolean {
  const ip = tryParseIP(client.startsWith('::ffff:') && client.includes('.') ? client.slice(7) : client);
  return ip !== undefined && allowlist.some((p) => contains(p, ip));
}
