// Ingress v1 path matching, as the Kubernetes documentation specifies it (its table of
// examples is test/ingress-routes.test.ts). Matchers are compiled once per configuration
// so that a request costs a few string comparisons and no allocation.

import type { PathType } from '../api/types.ts';

export interface PathMatcher {
  path: string;
  pathType: PathType;
  /** Prefix: the path's elements joined ('' for '/'); a request matches it element-wise. */
  readonly prefix: string;
  /** On a host whose paths are regular expressions (ingress-nginx's use-regex): `^path`, case-insensitive. */
  readonly regex?: RegExp;
}

/** Throws a SyntaxError when `regex` is asked for and the path is not a valid regular expression. */
export function compilePath(path: string | undefined, pathType: PathType, regex = false): PathMatcher {
  const raw = path || '/';
  const prefix = pathType === 'Prefix' ? raw.split('/').filter(Boolean).map((s) => `/${s}`).join('') : raw;
  return regex ? { path: raw, pathType, prefix, regex: new RegExp(`^${raw}`, 'i') } : { path: raw, pathType, prefix };
}

/**
 * Whether a request path (no query) matches. Exact: the same string. Prefix: the rule's
 * elements lead the request's (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`;
 * a trailing slash on either side is ignored). ImplementationSpecific: kubewire's choice is
 * ingress-nginx's, a plain string prefix (nginx's `location /path`).
 */
export function pathMatches(m: PathMatcher, path: string): boolean {
  if (m.regex) return m.regex.test(path);
  switch (m.pathType) {
    case 'Exact':
      return path === m.path;
    case 'Prefix': {
      const p = m.prefix;
      if (!p) return true;
      if (!path.startsWith(p)) return false;
      return path.length === p.length || path.charCodeAt(p.length) === 47; /* '/' */
    }
    default:
      return path.startsWith(m.path);
  }
}

/** The request path as matched: no query, duplicate slashes merged (nginx's merge_slashes). */
export function requestPath(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path;
}

/** ingress-nginx's rewrite-target: the path, as a case-insensitive regular expression, and what a matching URL becomes. */
export interface Rewrite {
  pattern: RegExp;
  target: string;
}

/**
 * The URL an endpoint receives for a rewritten route, as nginx's `rewrite "(?i)path" target
 * break`: the whole path is replaced by the target, its $1..$9 taken from the match; the
 * query string follows (after the target's own, if it has one). A path the pattern does
 * not match is left alone.
 */
export function rewriteUrl(r: Rewrite, url: string): string {
  const m = r.pattern.exec(requestPath(url));
  if (!m) return url;
  let target = r.target.replace(/\$(\d)/g, (_, n: string) => m[Number(n)] ?? '');
  if (!target.startsWith('/')) target = `/${target}`;
  const q = url.indexOf('?');
  if (q < 0 || q === url.length - 1) return target;
  return `${target}${target.includes('?') ? '&' : '?'}${url.slice(q + 1)}`;
}

const TYPE_RANK: Record<PathType, number> = { Exact: 0, Prefix: 1, ImplementationSpecific: 2 };

/** Precedence: the longest path first; at equal length Exact, then Prefix, then ImplementationSpecific. */
export function byPrecedence(a: PathMatcher, b: PathMatcher): number {
  return b.path.length - a.path.length || TYPE_RANK[a.pathType] - TYPE_RANK[b.pathType];
}

/**
 * Whether a request Host (lowercased, no port) is covered by a rule host: equal, or for
 * `*.foo.com` exactly one more label in front of `foo.com`.
 */
export function hostMatches(ruleHost: string, host: string): boolean {
  if (!ruleHost.startsWith('*.')) return ruleHost === host;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === ruleHost.slice(2);
}

/** The Host header as matched: lowercased, without a port (and without an IPv6 literal's brackets' port). */
export function requestHost(header: string | undefined): string {
  if (!header) return '';
  let h = header;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return h.slice(0, end + 1).toLowerCase();
  }
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.toLowerCase();
}
