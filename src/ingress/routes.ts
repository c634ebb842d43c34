// The routing table of the ingress controller: a pure function of the Ingresses it serves
// and the Services, EndpointSlices and Secrets they name. Every problem (a missing Service,
// an unknown port name, a path ingress-nginx would refuse, a conflict with an older Ingress)
// is reported against its Ingress and costs only that rule: the valid rest is served.

import { endpointString, portEndpoints, slicesByService } from '../api/endpointslices.ts';
import { namespacedName, type EndpointSlice, type Ingress, type IngressBackend, type Secret, type Service } from '../api/types.ts';
import { routeOptions, type RouteOptions } from './annotations.ts';
import { basicAuthOf } from './auth.ts';
import { attachCanary, isCanary } from './canary.ts';
import { byPrecedence, compilePath, hostMatches, pathMatches, type PathMatcher, type Rewrite } from './paths.ts';
import type { HostRoutes, Problem, Route, RouteTable, Upstream } from './table.ts';

export interface RouteInput {
  ingresses: Ingress[];
  services: Service[];
  slices: EndpointSlice[];
  /** namespace/name of the TLS Secrets that are present and valid (tls.ts decides). */
  usableSecrets: Set<string>;
  /** Secrets by namespace/name, for those annotations that name one (auth-secret). */
  secrets?: ReadonlyMap<string, Secret>;
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
    upstream.missing = `service ${ns}/${name} not found`;
    return upstream;
  }
  const sp = (svc.spec.ports ?? []).find((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number));
  if (!sp) {
    const known = (svc.spec.ports ?? []).map((p) => (port.name !== undefined ? p.name ?? '<unnamed>' : String(p.port))).join(', ') || 'none';
    problem('PortNotFound', `service ${ns}/${name} has no port ${port.name !== undefined ? `named ${JSON.stringify(port.name)}` : port.number} (it has ${known}): requests for it are answered 503`);
    upstream.missing = `service ${ns}/${name} has no port ${port.name !== undefined ? `named ${JSON.stringify(port.name)}` : port.number}`;
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
