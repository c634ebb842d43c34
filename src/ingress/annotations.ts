// ingress-nginx's annotations (nginx.ingress.kubernetes.io/...) read into the settings of an
// Ingress's routes, so that existing manifests keep working. Each feature's own module reads
// its annotations (affinity.ts, auth.ts, cors.ts, limits.ts, canary.ts); a value that cannot
// be read is reported as a problem of the Ingress.

import type { Ingress } from '../api/types.ts';
import type { Prefix } from '../netaddr/ip.ts';
import { ANNOTATION_PREFIX, sourceRanges } from './annotation-values.ts';
import { affinityOf, type Affinity } from './affinity.ts';
import type { BasicAuth } from './auth.ts';
import { corsOf, type Cors } from './cors.ts';
import { rateLimitOf, type RateLimit } from './limits.ts';


/** Per-Ingress settings (ingress-nginx's annotation names, so existing manifests keep working). */
export interface RouteOptions {
  connectTimeoutMs: number;
  readTimeoutMs: number;
  bodyLimit: number;
  sslRedirect: boolean;
  /** Plain HTTP is redirected to HTTPS even without a TLS section. */
  forceSslRedirect: boolean;
  /** The endpoints speak HTTPS (backend-protocol: HTTPS); their certificates are not verified, as ingress-nginx's proxy_ssl_verify off. */
  backendTls: boolean;
  /** The Ingress's paths are regular expressions (and so are all paths of their hosts). */
  useRegex: boolean;
  /** What the URL of a matching request becomes ($1..$9 from the path's groups). */
  rewriteTarget?: string;
  /** Every request is answered with this redirect (permanent-redirect, temporal-redirect). */
  redirect?: { url: string; code: number };
  /** A request for / is redirected here (app-root). */
  appRoot?: string;
  /** Only clients from these networks are served; others get 403 (allowlist-source-range). */
  allowlist?: Prefix[];
  /** Why every request is answered 503: an annotation that must not be ignored is invalid (ingress-nginx's denied location). */
  denied?: string;
  /** Sticky sessions by cookie (affinity.ts). */
  affinity?: Affinity;
  /** CORS headers and preflight answers (cors.ts). */
  cors?: Cors;
  /** Basic authentication (auth.ts). */
  basicAuth?: BasicAuth;
  /** Requests per client address (limits.ts). */
  rateLimit?: RateLimit;
}

export const DEFAULT_OPTIONS: RouteOptions = { connectTimeoutMs: 5_000, readTimeoutMs: 60_000, bodyLimit: 1024 * 1024, sslRedirect: true, forceSslRedirect: false, backendTls: false, useRegex: false };

function duration(v: string | undefined, fallbackMs: number): number {
  const n = Number(v);
  return v !== undefined && Number.isFinite(n) && n > 0 ? n * 1000 : fallbackMs;
}

/** nginx sizes: 8m, 512k, 1g, or bytes; 0 = unlimited. */
export function parseSize(v: string | undefined, fallback: number): number {
  const m = v === undefined ? null : /^\s*(\d+)\s*([kmg]?)\s*$/i.exec(v);
  if (!m) return fallback;
  const n = Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return n === 0 ? Infinity : n;
}

/** Something safe to send in a Location header: visible ASCII only (no CR/LF to inject headers with). */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/** A redirect annotation's URL and code: an absolute http(s) URL; the code 300-308 (else the default). */
function redirectOf(url: string | undefined, code: string | undefined, fallbackCode: number, name: string, problem: (reason: string, message: string) => void): RouteOptions['redirect'] {
  if (url === undefined) return undefined;
  if (!HEADER_SAFE.test(url) || !/^https?:\/\/[^/]/i.test(url)) {
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}${name}: ${JSON.stringify(url)} is not an absolute http or https URL: ignored`);
    return undefined;
  }
  const n = Number(code);
  return { url, code: Number.isInteger(n) && n >= 300 && n <= 308 ? n : fallbackCode };
}

/** allowlist-source-range (whitelist-source-range before ingress-nginx 1.9). */
function allowlistOf(value: string | undefined, name: string): { allowlist?: Prefix[]; denied?: string } {
  if (value === undefined) return {};
  const { ranges, invalid } = sourceRanges(value);
  // As ingress-nginx: an allowlist that cannot be read denies everyone rather than no one.
  if (invalid.length) return { denied: `annotation ${ANNOTATION_PREFIX}${name}: ${JSON.stringify(invalid[0])} is not a CIDR or IP address: every request is answered 503` };
  return { allowlist: ranges };
}

/** An Ingress's annotations read as ingress-nginx reads them; `problem` hears of the values it ignores or refuses. */
export function routeOptions(ing: Ingress, problem: (reason: string, message: string) => void = () => undefined): RouteOptions {
  const a = (k: string) => ing.metadata.annotations?.[ANNOTATION_PREFIX + k];
  const redirect = redirectOf(a('temporal-redirect'), a('temporal-redirect-code'), 302, 'temporal-redirect', problem) ?? redirectOf(a('permanent-redirect'), a('permanent-redirect-code'), 301, 'permanent-redirect', problem);
  let appRoot = a('app-root');
  if (appRoot !== undefined && !HEADER_SAFE.test(appRoot)) {
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}app-root: ${JSON.stringify(appRoot)} is not a path: ignored`);
    appRoot = undefined;
  }
  let rewriteTarget = a('rewrite-target') || undefined;
  if (rewriteTarget !== undefined && !HEADER_SAFE.test(rewriteTarget)) {
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}rewrite-target: ${JSON.stringify(rewriteTarget)} is not a URL path (spaces or control characters): ignored`);
    rewriteTarget = undefined;
  }
  const allowName = a('allowlist-source-range') !== undefined ? 'allowlist-source-range' : 'whitelist-source-range';
  const access = allowlistOf(a(allowName), allowName);
  if (access.denied) problem('InvalidAnnotation', access.denied);
  const affinity = affinityOf(a, problem);
  const cors = corsOf(a, problem);
  const rateLimit = rateLimitOf(a, problem);
  const protocol = (a('backend-protocol') ?? 'HTTP').toUpperCase();
  if (protocol !== 'HTTP' && protocol !== 'HTTPS') problem('UnsupportedAnnotation', `annotation ${ANNOTATION_PREFIX}backend-protocol: ${JSON.stringify(a('backend-protocol'))} is not supported (HTTP and HTTPS are): the endpoints are spoken to in HTTP`);
  return {
    connectTimeoutMs: duration(a('proxy-connect-timeout'), DEFAULT_OPTIONS.connectTimeoutMs),
    readTimeoutMs: duration(a('proxy-read-timeout'), DEFAULT_OPTIONS.readTimeoutMs),
    bodyLimit: parseSize(a('proxy-body-size'), DEFAULT_OPTIONS.bodyLimit),
    sslRedirect: a('ssl-redirect') !== 'false',
    forceSslRedirect: a('force-ssl-redirect') === 'true',
    backendTls: protocol === 'HTTPS',
    useRegex: a('use-regex') === 'true',
    ...(rewriteTarget ? { rewriteTarget } : {}),
    ...(redirect ? { redirect } : {}),
    ...(appRoot ? { appRoot: appRoot.startsWith('/') ? appRoot : `/${appRoot}` } : {}),
    ...access,
    ...(affinity ? { affinity } : {}),
    ...(cors ? { cors } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  };
}

