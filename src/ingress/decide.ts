// What the proxy does with a request, decided once for all three transports (the fast path,
// Node's HTTP/1 and HTTP/2 servers, upgrades): answer it itself, or forward it to an upstream.
// The checks come in the order nginx meets them in its phases: the request line and Host
// while reading the head (400; CONNECT and TRACE 405), the location (find-config phase, where
// client_max_body_size answers 413 for a declared length, for the default server too), no
// location (the default backend's 404), the location's own answers (rewrite, preaccess and
// access phases: answers.ts), then the content phase (canary, no endpoints 503, affinity,
// CORS, rewrite-target). And after a failed attempt, whether another endpoint is tried
// (proxy_next_upstream error timeout, 3 tries). Pure but for the rate limiter's counts.

import { sessionCookie, stickyEndpoint } from './affinity.ts';
import { DEFAULT_OPTIONS } from './annotations.ts';
import { ownAnswer, ownAnswerWhy, ownResponse } from './answers.ts';
import { chosenUpstream } from './canary.ts';
import { corsHeaders } from './cors.ts';
import { errorPage } from './http1.ts';
import type { RateLimiter } from './limits.ts';
import { rewriteUrl, type RequestUri } from './paths.ts';
import { matchRoute } from './routes.ts';
import type { Route, RouteTable, Upstream } from './table.ts';

/** What the decision reads of a request; each transport supplies it from its own parse. */
export interface RequestFacts {
  scheme: 'http' | 'https';
  method: string;
  /** The request line and Host as nginx reads them; undefined for what it answers 400 (two Hosts among them). */
  uri: RequestUri | undefined;
  /** The body's declared length (Content-Length); undefined when unknown (chunked, HTTP/2 without one). */
  contentLength: number | undefined;
  /** A request header by lowercase name (the first, when repeated). */
  header(name: string): string | undefined;
  /** The client's address, as the forwarding headers give it when trusted (asked only when a rule needs it). */
  client(): string;
}

export type Decision =
  | {
      kind: 'answer';
      status: number;
      headers: Array<[string, string]>;
      body: string;
      /** The connection ends after it (400, 405, 413: what the client sent next cannot be trusted to be a request). */
      close: boolean;
      /** The matched route, for metrics and the access log. */
      route?: Route;
      /** Why the proxy answers itself, in a few words (for `kubewire trace`). */
      why?: string;
    }
  | {
      kind: 'forward';
      route: Route;
      upstream: Upstream;
      /** The canary's upstream when it took the request. */
      alternative?: Upstream;
      /** The endpoint a session cookie names, tried first. */
      sticky?: string;
      /** The URL the endpoint receives when rewrite-target changes it (else the client's). */
      target?: string;
      /** Headers added to the endpoint's response (CORS). */
      responseHeaders: Array<[string, string]>;
    };

/** Methods nginx answers 405 itself ("client sent CONNECT method", "client sent TRACE method"). */
export const NOT_ALLOWED: ReadonlySet<string> = new Set(['CONNECT', 'TRACE']);

const DEFAULT_ROUTE = { options: DEFAULT_OPTIONS };

function answer(status: number, route?: Route, close = false, why?: string): Decision {
  return { kind: 'answer', status, headers: [['content-type', 'text/html']], body: errorPage(status), close, route, ...(why ? { why } : {}) };
}

export function decide(table: RouteTable, req: RequestFacts, limiter?: RateLimiter): Decision {
  const { uri } = req;
  if (!uri) return answer(400, undefined, true);
  // Its body is never read: the connection cannot go on.
  if (NOT_ALLOWED.has(req.method)) return answer(405, undefined, true);
  const route = matchRoute(table, uri.host, uri.path);
  if (req.contentLength !== undefined && req.contentLength > (route ?? DEFAULT_ROUTE).options.bodyLimit) return answer(413, route, true);
  if (!route) return answer(404, undefined, false, `no Ingress rule matches host ${uri.host || '(none)'} path ${uri.path}`);
  const o = route.options;
  const asked = {
    scheme: req.scheme,
    host: o.appRoot ? (uri.authority ?? req.header('host') ?? '') : '', // (only app-root's redirect names it)
    uri,
    client: o.rateLimit || o.allowlist ? req.client() : '',
    method: req.method,
    origin: o.cors ? req.header('origin') : undefined,
    authorization: o.basicAuth ? req.header('authorization') : undefined,
    limiter,
  };
  const own = ownAnswer(route, asked);
  if (own) return { kind: 'answer', status: own.status, ...ownResponse(own), close: false, route, why: ownAnswerWhy(route, own, asked) };
  const upstream = route.canary ? chosenUpstream(route, req.header) : route.upstream;
  if (!upstream.endpoints.length) return answer(503, route, false, upstream.missing ?? `service ${upstream.namespace}/${upstream.service} has no ready endpoints`);
  return {
    kind: 'forward',
    route,
    upstream,
    alternative: upstream === route.upstream ? undefined : upstream,
    sticky: o.affinity ? stickyEndpoint(o.affinity, upstream, req.header('cookie')) : undefined,
    target: route.rewrite ? rewriteUrl(route.rewrite, uri.path, uri.uri) : undefined,
    responseHeaders: o.cors ? corsHeaders(o.cors, req.header('origin')) : [],
  };
}

/** The endpoint for the next attempt: the sticky one first, then the balancer's pick among those not tried. */
export function nextEndpoint(d: Extract<Decision, { kind: 'forward' }>, tried: readonly string[], pick: (u: Upstream, tried: readonly string[]) => string | undefined): string | undefined {
  return d.sticky !== undefined && !tried.includes(d.sticky) ? d.sticky : pick(d.upstream, tried);
}

/** Headers added to the response `endpoint` gives: the decision's, and a session cookie when affinity sets one. */
export function addedHeaders(d: Extract<Decision, { kind: 'forward' }>, endpoint: string, https: boolean): Array<[string, string]> {
  const { affinity } = d.route.options;
  const cookie = affinity && sessionCookie(affinity, d.upstream, endpoint, d.sticky, d.route, https);
  return cookie ? [...d.responseHeaders, ['set-cookie', cookie]] : d.responseHeaders;
}

/**
 * `kubewire trace` through the ingress: a request carrying `X-Kubewire-Trace: PORT` has its
 * upstream connections opened from that local port and the next ones (a retry from PORT + 1...;
 * inside the trace session's range, above Linux's ephemeral ports), so that the second leg is
 * traced like the first; the response says which rule and endpoints were chosen (the ones tried
 * before, then the last). Anything else in the header is ignored.
 */
export const TRACE_HEADER = 'x-kubewire-trace';
export const TRACE_ROUTE_HEADER = 'x-kubewire-trace-route';

export function tracePort(value: string | undefined): number | undefined {
  if (!value || !/^\d{5}$/.test(value.trim())) return undefined;
  const port = Number(value);
  return port >= 61_000 && port <= 64_999 ? port : undefined;
}

/** The rule and endpoint a traced request took, for its response. */
export function traceRoute(d: Extract<Decision, { kind: 'forward' }>, endpoint: string, before: readonly string[] = []): [string, string] {
  const r = d.route;
  const upstream = d.alternative ?? d.upstream;
  return [TRACE_ROUTE_HEADER, `${ruleName(r)} -> service ${upstream.name}${d.alternative ? ' (canary)' : ''}${before.length ? ` -> tried ${before.join(', ')}` : ''} -> endpoint ${endpoint}`];
}

function ruleName(r: Route): string {
  return `ingress ${r.ingress.namespace}/${r.ingress.name} rule ${r.host || '*'}${r.path} (${r.pathType})`;
}

/** Why a traced request was answered by the proxy itself (a redirect, 401, 404, 503...), for its response. */
export function traceAnswer(d: Extract<Decision, { kind: 'answer' }>): [string, string] {
  return [TRACE_ROUTE_HEADER, `${d.route ? `${ruleName(d.route)} -> service ${d.route.upstream.name} -> ` : ''}answered ${d.status}: ${(d.why ?? 'answered by the ingress').replace(/[\r\n]+/g, ' ')}`];
}

export const TRIES = 3;
/** Errors where the endpoint never got the request: any request may go to another one. */
export const CONNECT_FAILED: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT_CONNECT', 'UND_ERR_CONNECT_TIMEOUT']);
/** Errors where the connection died, or timed out, before a response: idempotent requests may go to another endpoint. */
export const CONNECTION_LOST: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT']);
/** nginx's idempotent methods: the others are not sent twice (proxy_next_upstream without non_idempotent). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const TIMEOUTS: ReadonlySet<string> = new Set(['ETIMEDOUT', 'ETIMEDOUT_CONNECT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export interface AttemptFailure {
  /** The error's code (Node's or undici's). */
  code: string;
  /** Failed while connecting: the endpoint never saw the request. */
  connecting: boolean;
  /** The endpoint's response had begun reaching the client. */
  responseBegun: boolean;
}

/**
 * After a failed attempt: try another endpoint, cut the client's connection (a response
 * had begun: nothing can be sent instead, as from nginx), or answer 504 (a timeout) or 502.
 */
export function afterFailure(f: AttemptFailure, method: string, tries: number): 'retry' | 'cut' | 502 | 504 {
  if (f.responseBegun) return 'cut';
  const retryable = f.connecting || CONNECT_FAILED.has(f.code) || (CONNECTION_LOST.has(f.code) && IDEMPOTENT.has(method));
  if (retryable && tries < TRIES) return 'retry';
  return TIMEOUTS.has(f.code) ? 504 : 502;
}
