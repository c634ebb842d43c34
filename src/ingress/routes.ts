// The routing table of the ingress controller: a pure function of the Ingresses it serves
// and the Services, EndpointSlices and Secrets they name. Every problem (a missing Service,
// an unknown port name, a path ingress-nginx would refuse, a conflict with an older Ingress)
// is reported against its Ingress and costs only that rule: the valid rest is served.

import { portEndpoints, slicesByService } from '../api/endpointslices.ts';
import { namespacedName, type EndpointSlice, type Ingress, type IngressBackend, type Secret, type Service } from '../api/types.ts';
import { tryParseIP, tryParsePrefix, width, type Prefix } from '../netaddr/ip.ts';
import { endpointString } from '../proxy/model.ts';
import { affinityOf, type Affinity } from './affinity.ts';
import { basicAuthOf, type BasicAuth } from './auth.ts';
import { attachCanary, isCanary, type Canary } from './canary.ts';
import { corsOf, type Cors } from './cors.ts';
import { rateLimitOf, type RateLimit } from './limits.ts';
import { byPrecedence, compilePath, hostMatches, pathMatches, type PathMatcher, type Rewrite } from './paths.ts';

export const ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/';

/** Where a path's requests go: a Service port and its ready endpoints (ip:port). */
export interface Upstream {
  /** namespace/service:port, as ingress-nginx names upstreams (its metrics' `service` label is the Service). */
  name: string;
  namespace: string;
  service: string;
  /** Ready endpoints (ip:port); none means 503. */
  endpoints: string[];
}

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

export interface Route extends PathMatcher {
  /** The rule's host ('' for a host-less rule or the default backend). */
  host: string;
  ingress: { namespace: string; name: string };
  upstream: Upstream;
  options: RouteOptions;
  /** Plain HTTP to this route is redirected to HTTPS (308): its host has TLS (unless ssl-redirect is off), or force-ssl-redirect. */
  tls: boolean;
  rewrite?: Rewrite;
  /** A canary Ingress taking part of this route's requests (canary.ts). */
  canary?: Canary;
}

export interface HostRoutes {
  host: string;
  routes: Route[];
}

export interface RouteTable {
  /** Precise hosts. */
  hosts: Map<string, HostRoutes>;
  /** Wildcard hosts, by the suffix after `*.`. */
  wildcards: Map<string, HostRoutes>;
  /** Rules without a host: every Host that no precise or wildcard rule names. */
  anyHost: HostRoutes;
  defaultBackend?: Route;
  /** TLS hosts (precise or wildcard) -> namespace/secret name. */
  tls: Map<string, string>;
}

export interface Problem {
  ingress: { namespace: string; name: string; uid?: string };
  reason: string;
  message: string;
}

export interface RouteInput {
  ingresses: Ingress[];
  services: Service[];
  slices: EndpointSlice[];
  /** namespace/name of the TLS Secrets that are present and valid (tls.ts decides). */
  usableSecrets: Set<string>;
  /** Secrets by namespace/name, for those annotations that name one (auth-secret). */
  secrets?: ReadonlyMap<string, Secret>;
}

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

/** allowlist-source-range (whitelist-source-range before ingress-nginx 1.9): CIDRs or addresses, comma-separated. */
function allowlistOf(value: string | undefined, name: string): { allowlist?: Prefix[]; denied?: string } {
  if (value === undefined) return {};
  const allowlist: Prefix[] = [];
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const ip = item.includes('/') ? undefined : tryParseIP(item);
    const prefix = ip ? { ip, bits: width(ip.family) } : tryParsePrefix(item);
    // As ingress-nginx: an allowlist that cannot be read denies everyone rather than no one.
    if (!prefix) return { denied: `annotation ${ANNOTATION_PREFIX}${name}: ${JSON.stringify(item)} is not a CIDR or IP address: every request is answered 503` };
    allowlist.push(prefix);
  }
  return { allowlist };
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
    ...(a('rewrite-target') ? { rewriteTarget: a('rewrite-target') } : {}),
    ...(redirect ? { redirect } : {}),
    ...(appRoot ? { appRoot: appRoot.startsWith('/') ? appRoot : `/${appRoot}` } : {}),
    ...access,
    ...(affinity ? { affinity } : {}),
    ...(cors ? { cors } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  };
}

/** A path that is rewritten: a target is set and differs from the path (ingress-nginx's needsRewrite). */
const rewrites = (options: RouteOptions, path: string) => options.rewriteTarget !== undefined && options.rewriteTarget !== path;

/**
 * Hosts whose paths are all regular expressions, as ingress-nginx decides per server: one
 * of its paths, in any Ingress, has use-regex or is rewritten. ('' stands for host-less rules.)
 */
function regexHosts(ingresses: Ingress[]): Set<string> {
  const hosts = new Set<string>();
  for (const ing of ingresses) {
    const options = routeOptions(ing);
    for (const rule of ing.spec.rules ?? []) {
      if ((rule.http?.paths ?? []).some((p) => options.useRegex || rewrites(options, p.path || '/'))) hosts.add(rule.host ?? '');
    }
  }
  return hosts;
}

/** ingress-nginx's strict path validation: Exact and Prefix paths are plain path characters. */
const SAFE_PATH = /^\/[A-Za-z0-9\-._~/]*$/;

/** Oldest first, then by namespace/name: the order in which Ingresses claim a host and path. */
export function byAge(a: Ingress, b: Ingress): number {
  return (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || namespacedName(a).localeCompare(namespacedName(b));
}

/** A Service port's ready endpoints, from the Service's EndpointSlices. */
function resolveUpstream(ing: Ingress, backend: IngressBackend, services: Map<string, Service>, slicesOf: Map<string, EndpointSlice[]>, problem: (reason: string, message: string) => void): Upstream | undefined {
  const ns = ing.metadata.namespace!;
  if (!backend.service) {
    problem('UnsupportedBackend', `backend ${JSON.stringify(backend.resource?.kind ?? 'resource')}: only Service backends are supported`);
    return undefined;
  }
  const { name, port } = backend.service;
  const portText = port.name ?? String(port.number);
  const upstream: Upstream = { name: `${ns}/${name}:${portText}`, namespace: ns, service: name, endpoints: [] };
  const svc = services.get(`${ns}/${name}`);
  if (!svc) {
    problem('ServiceNotFound', `service ${ns}/${name} not found: requests for it are answered 503`);
    return upstream;
  }
  const sp = (svc.spec.ports ?? []).find((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number));
  if (!sp) {
    const known = (svc.spec.ports ?? []).map((p) => (port.name !== undefined ? p.name ?? '<unnamed>' : String(p.port))).join(', ') || 'none';
    problem('PortNotFound', `service ${ns}/${name} has no port ${port.name !== undefined ? `named ${JSON.stringify(port.name)}` : port.number} (it has ${known}): requests for it are answered 503`);
    return upstream;
  }
  const ready = portEndpoints(slicesOf.get(`${ns}/${name}`) ?? [], sp.name ?? '', sp.protocol ?? 'TCP').filter((e) => e.endpoint.conditions.ready !== false);
  upstream.endpoints = ready.map(endpointString).sort();
  return upstream;
}

export function emptyTable(): RouteTable {
  return { hosts: new Map(), wildcards: new Map(), anyHost: { host: '', routes: [] }, tls: new Map() };
}

/** One backend of an Ingress resolved on its own (for `describe ingress`): its endpoints, or why none. */
export function upstreamOf(ing: Ingress, backend: IngressBackend, services: Service[], slices: EndpointSlice[]): Upstream | string {
  let why = '';
  const up = resolveUpstream(ing, backend, new Map(services.map((s) => [namespacedName(s), s])), slicesByService(slices), (_r, m) => (why ||= m));
  return why || up!;
}

/** Builds the table from the Ingresses this controller serves (the caller filters by class). */
export function buildRoutes(input: RouteInput): { table: RouteTable; problems: Problem[] } {
  const services = new Map(input.services.map((s) => [namespacedName(s), s]));
  const slicesOf = slicesByService(input.slices);
  const problems: Problem[] = [];
  const table = emptyTable();
  const claimed = new Map<string, Ingress>(); // host + path + pathType -> the Ingress serving it
  // Canary Ingresses claim no path: their paths join the others' routes once those are built.
  const mains = input.ingresses.filter((ing) => !isCanary(ing));
  const regex = regexHosts(mains);

  for (const ing of mains.sort(byAge)) {
    const ref = { namespace: ing.metadata.namespace!, name: ing.metadata.name, uid: ing.metadata.uid };
    const problem = (reason: string, message: string) => problems.push({ ingress: ref, reason, message });
    const options = routeOptions(ing, problem);
    const auth = basicAuthOf(ing, input.secrets ?? new Map(), problem);
    if (auth.auth) options.basicAuth = auth.auth;
    if (auth.denied) options.denied ??= auth.denied;
    const tlsHosts = new Set<string>();
    for (const t of ing.spec.tls ?? []) {
      const secret = t.secretName ? `${ref.namespace}/${t.secretName}` : undefined;
      for (const h of t.hosts ?? []) {
        tlsHosts.add(h);
        if (!secret || !input.usableSecrets.has(secret)) continue; // the default certificate (tls.ts reports why)
        const owner = table.tls.get(h);
        if (owner && owner !== secret) problem('TLSConflict', `TLS host ${h}: already served with secret ${owner} by an older Ingress; ${secret} is not used for it`);
        else table.tls.set(h, secret);
      }
    }
    const upstreamFor = (backend: IngressBackend) => resolveUpstream(ing, backend, services, slicesOf, problem);

    if (ing.spec.defaultBackend) {
      const upstream = upstreamFor(ing.spec.defaultBackend);
      if (upstream) {
        if (table.defaultBackend) problem('DefaultBackendConflict', `defaultBackend: the default backend is already ${table.defaultBackend.upstream.name} from the older Ingress ${table.defaultBackend.ingress.namespace}/${table.defaultBackend.ingress.name}`);
        else table.defaultBackend = { ...compilePath('/', 'Prefix'), host: '', ingress: ref, upstream, options, tls: false };
      }
    }
    (ing.spec.rules ?? []).forEach((rule, i) => {
      const host = rule.host ?? '';
      const tls = host !== '' && [...tlsHosts].some((h) => h === host || hostMatches(h, host));
      (rule.http?.paths ?? []).forEach((p, j) => {
        const where = `spec.rules[${i}].http.paths[${j}]`;
        if (p.pathType !== 'ImplementationSpecific' && !SAFE_PATH.test(p.path ?? '')) {
          problem('InvalidPath', `${where}: path ${JSON.stringify(p.path)} of pathType ${p.pathType} may only contain letters, digits and - . _ ~ / (use ImplementationSpecific for anything else): this path is not served`);
          return;
        }
        let matcher: PathMatcher;
        let rewrite: Rewrite | undefined;
        try {
          matcher = compilePath(p.path, p.pathType, regex.has(host));
          if (rewrites(options, matcher.path)) rewrite = { pattern: new RegExp(matcher.path, 'i'), target: options.rewriteTarget! };
        } catch (e) {
          const why = options.useRegex || rewrites(options, p.path || '/') ? 'this Ingress asks for use-regex or rewrite-target' : 'another Ingress of this host asks for use-regex or rewrite-target, which makes every path of the host one';
          problem('InvalidPath', `${where}: path ${JSON.stringify(p.path)} is not a valid regular expression (${(e as Error).message}); ${why}: this path is not served`);
          return;
        }
        const upstream = upstreamFor(p.backend);
        if (!upstream) return;
        const claim = `${host} ${p.pathType} ${p.path ?? '/'}`;
        const owner = claimed.get(claim);
        if (owner && owner !== ing) {
          problem('PathConflict', `${where}: host ${JSON.stringify(host || '*')} path ${p.path ?? '/'} (${p.pathType}) is already served by the older Ingress ${namespacedName(owner)}: this path is not served`);
          return;
        }
        claimed.set(claim, ing);
        const group = host === '' ? table.anyHost : hostGroup(host.startsWith('*.') ? table.wildcards : table.hosts, host.startsWith('*.') ? host.slice(2) : host);
        group.routes.push({ ...matcher, host, ingress: ref, upstream, options, tls: (tls && options.sslRedirect) || options.forceSslRedirect, ...(rewrite ? { rewrite } : {}) });
      });
    });
  }
  for (const ing of input.ingresses.filter(isCanary).sort(byAge)) {
    const problem = (reason: string, message: string) => problems.push({ ingress: { namespace: ing.metadata.namespace!, name: ing.metadata.name, uid: ing.metadata.uid }, reason, message });
    attachCanary(table, ing, (backend) => resolveUpstream(ing, backend, services, slicesOf, problem), problems);
  }
  for (const g of [table.anyHost, ...table.hosts.values(), ...table.wildcards.values()]) g.routes.sort(byPrecedence);
  return { table, problems };
}

function hostGroup(map: Map<string, HostRoutes>, host: string): HostRoutes {
  let g = map.get(host);
  if (!g) map.set(host, (g = { host, routes: [] }));
  return g;
}

/**
 * The route for a request: the precise host's rules, else the wildcard's (one label), else
 * the host-less rules; within them the first path that matches in precedence order; else
 * the default backend. Undefined means 404.
 */
export function matchRoute(table: RouteTable, host: string, path: string): Route | undefined {
  let group = table.hosts.get(host);
  if (!group) {
    const dot = host.indexOf('.');
    group = dot > 0 ? table.wildcards.get(host.slice(dot + 1)) : undefined;
  }
  for (const r of (group ?? table.anyHost).routes) if (pathMatches(r, path)) return r;
  return table.defaultBackend;
}

/** The TLS Secret for an SNI name: the precise host's, else its one-label wildcard's. */
export function secretForServerName(table: RouteTable, name: string): string | undefined {
  const precise = table.tls.get(name);
  if (precise) return precise;
  const dot = name.indexOf('.');
  return dot > 0 ? table.tls.get(`*.${name.slice(dot + 1)}`) : undefined;
}
