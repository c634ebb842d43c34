// What the proxy answers itself, before any endpoint, for a request that matched a route:
// ingress-nginx's app-root, a location denied by an invalid annotation, the redirect
// annotations, a CORS preflight, the redirect of plain HTTP to HTTPS, a rate limit, the
// source-range allowlist, basic authentication. Checked in the order nginx meets them: the
// server's app-root first, then the location's rewrite phase (its `return`s, then the Lua
// SSL redirect), its preaccess phase (limit_req), then its access phase (allow/deny, then
// auth_basic). Pure but for the rate limiter's counts; asked by the one request decision
// (decide.ts) that every transport goes through.

import { inRanges } from './annotation-values.ts';
import { authorized } from './auth.ts';
import { corsHeaders } from './cors.ts';
import { errorPage } from './http1.ts';
import type { RateLimiter } from './limits.ts';
import type { RequestUri } from './paths.ts';
import type { Route } from './table.ts';

export interface OwnAnswer {
  status: number;
  /** For redirects. */
  location?: string;
  /** More response headers (a CORS preflight's). */
  headers?: Array<[string, string]>;
}

export interface AskedFor {
  scheme: 'http' | 'https';
  /** The Host header as sent (an absolute-form target's authority instead, when it has one). */
  host: string;
  /** The request line, read (host, normalised path, target as received). */
  uri: RequestUri;
  /** The client's address (as the forwarding headers give it when those are trusted). */
  client: string;
  method: string;
  /** The Origin header, if any. */
  origin?: string;
  /** The Authorization header, if any. */
  authorization?: string;
  /** Counts requests against rate limits (state kept by the proxy). */
  limiter?: RateLimiter;
}

export function ownAnswer(route: Route, req: AskedFor): OwnAnswer | undefined {
  const o = route.options;
  if (o.appRoot && req.uri.path === '/') return { status: 302, location: `${req.scheme}://${req.host}${o.appRoot}` };
  if (o.denied) return { status: 503 };
  if (o.redirect) return { status: o.redirect.code, location: o.redirect.url };
  if (o.cors && req.method === 'OPTIONS') {
    const headers = corsHeaders(o.cors, req.origin);
    if (headers.length) return { status: 204, headers: [...headers, ['content-type', 'text/plain charset=UTF-8']] };
  }
  if (req.scheme === 'http' && route.tls) return { status: 308, location: `https://${req.uri.host}${req.uri.uri}` };
  if (o.rateLimit && req.limiter?.over(o.rateLimit, req.client)) return { status: 503 };
  if (o.allowlist && !inRanges(o.allowlist, req.client)) return { status: 403 };
  if (o.basicAuth && !authorized(o.basicAuth, req.authorization)) return { status: 401, headers: [['www-authenticate', `Basic realm="${o.basicAuth.realm}"`]] };
  return undefined;
}

/** Why ownAnswer answered so, in a few words (for `kubewire trace`): read back from the answer and the route's options, in ownAnswer's order. */
export function ownAnswerWhy(route: Route, own: OwnAnswer, req: Pick<AskedFor, 'scheme' | 'uri' | 'client' | 'authorization'>): string {
  const o = route.options;
  if (o.appRoot && own.status === 302 && req.uri.path === '/') return `app-root redirects / to ${o.appRoot}`;
  if (o.denied && own.status === 503) return o.denied;
  if (o.redirect && own.status === o.redirect.code && own.location === o.redirect.url) return `a redirect annotation sends it to ${o.redirect.url}`;
  if (own.status === 204) return 'a CORS preflight, answered by the ingress (enable-cors)';
  if (own.status === 308 && req.scheme === 'http' && route.tls) return `the host has TLS: plain HTTP is redirected to ${own.location} (ssl-redirect)`;
  if (own.status === 503) return 'the client is over the rate limit (limit-rps/limit-rpm)';
  if (own.status === 403) return `the client ${req.client} is not in whitelist-source-range`;
  if (own.status === 401) return `basic authentication (realm ${JSON.stringify(o.basicAuth?.realm ?? '')}): ${req.authorization ? 'wrong credentials' : 'no credentials sent'}`;
  return `answered ${own.status} by the ingress`;
}

/** The response for an answer: a redirect's Location, an error page, or the answer's headers alone. */
export function ownResponse(own: OwnAnswer): { headers: Array<[string, string]>; body: string } {
  if (own.location !== undefined) return { headers: [['location', own.location]], body: '' };
  if (own.status >= 400) return { headers: [['content-type', 'text/html'], ...(own.headers ?? [])], body: errorPage(own.status) };
  return { headers: own.headers ?? [], body: '' };
}
