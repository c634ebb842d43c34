// The routing table's shapes: what buildRoutes (routes.ts) makes of the Ingresses and what
// the proxy reads per request. Types only, so that the feature modules (canary, affinity)
// and the table builder can share them without importing each other.

import type { RouteOptions } from './annotations.ts';
import type { PathMatcher, Rewrite } from './paths.ts';

/** Where a path's requests go: a Service port and its ready endpoints (ip:port). */
export interface Upstream {
  /** namespace/service:port, as ingress-nginx names upstreams (its metrics' `service` label is the Service). */
  name: string;
  namespace: string;
  service: string;
  /** Ready endpoints (ip:port); none means 503. */
  endpoints: string[];
  /** Why there can be none, when it is not for want of ready pods: the Service, or its port, is missing. */
  missing?: string;
}

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

export interface Canary {
  ingress: { namespace: string; name: string };
  upstream: Upstream;
  /** Out of weightTotal requests, this many go to the canary (when no header or cookie decided). */
  weight: number;
  weightTotal: number;
  /** A request header (lowercased) that decides: "always" / "never", or matching value / pattern. */
  header?: string;
  headerValue?: string;
  headerPattern?: RegExp;
  /** A cookie that decides: "always" / "never". */
  cookie?: string;
}
