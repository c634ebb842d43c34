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

/** A request as the routes see it (nginx's $host, $uri and $request_uri). */
export interface RequestUri {
  /** The request line's authority (absolute form), else the Host header: lowercased, no port, no trailing dot. */
  host: string;
  /** Percent-decoded, dot segments resolved, repeated slashes merged: what routes match (nginx's $uri). */
  path: string;
  /** The target in origin form as received: what the endpoint's request line carries (nginx's $request_uri). */
  uri: string;
  /** An absolute-form target's authority, as sent: the Host the endpoint gets instead of the client's header. */
  authority?: string;
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)(.*)$/is;

/**
 * Reads a request's target and Host header as nginx does before it chooses a location:
 * the request line's authority wins over the Host header (RFC 9112 §3.2.2), the path is
 * normalised (normalizePath). Undefined when nginx answers 400: a path that climbs above
 * the root, a bad percent-escape, a NUL, an invalid host, a target in neither origin nor
 * absolute form.
 */
export function parseRequestUri(target: string, hostHeader: string | undefined): RequestUri | undefined {
  let uri = target;
  let authority: string | undefined;
  if (target.charCodeAt(0) !== 47 /* '/' */) {
    const m = ABSOLUTE_FORM.exec(target);
    if (!m) return undefined;
    authority = m[1]!;
    uri = m[2] || '/';
    if (uri.charCodeAt(0) !== 47) uri = `/${uri}`; // "http://a?x" asks for "/?x"
  }
  const host = authority !== undefined ? validHost(authority) : hostHeader === undefined ? '' : validHost(hostHeader);
  if (host === undefined) return undefined;
  const end = uri.search(/[?#]/);
  const path = normalizePath(end < 0 ? uri : uri.slice(0, end));
  if (path === undefined) return undefined;
  return authority !== undefined ? { host, path, uri, authority } : { host, path, uri };
}

/** Anything that makes a path differ from its normal form: an escape, a dot segment, a repeated slash, a byte past ASCII. */
const NOT_NORMAL = /%|\/\.|\/\/|[^\x00-\x7f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A request path as nginx's ngx_http_parse_complex_uri makes it: %XX decoded (a decoded
 * `/` or `.` counts as one), `.` segments dropped, `..` taking the segment before it away,
 * repeated slashes merged (merge_slashes). Undefined for a path that climbs above the root,
 * a bad escape or a NUL. Bytes are read as UTF-8 where they are valid UTF-8.
 */
export function normalizePath(raw: string): string | undefined {
  if (!NOT_NORMAL.test(raw)) return raw;
  const bytes = Buffer.from(raw, 'latin1'); // the request line's bytes, a character each
  const decoded: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]!;
    if (b === 37 /* '%' */) {
      const hex = bytes.toString('latin1', i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      b = parseInt(hex, 16);
      i += 2;
    }
    if (b === 0) return undefined;
    decoded.push(b);
  }
  const buf = Buffer.from(decoded);
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    text = buf.toString('latin1');
  }
  const out: string[] = [];
  let trailing = false; // ends in a slash
  const segments = text.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '' || seg === '.') trailing = true;
    else if (seg === '..') {
      if (!out.length) return undefined; // above the root: nginx answers 400
      out.pop();
      trailing = true;
    } else {
      out.push(seg);
      trailing = false;
    }
  }
  return out.length ? `/${out.join('/')}${trailing ? '/' : ''}` : '/';
}

/**
 * A Host as nginx's ngx_http_validate_host reads it: lowercased, the port and a trailing
 * dot dropped. Undefined (400) when empty, with `..`, a slash, a control character or a space.
 */
export function validHost(raw: string): string | undefined {
  const v = raw.trim();
  let end = v.length;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0) return undefined;
    end = close + 1;
  } else {
    const colon = v.indexOf(':');
    if (colon >= 0) end = colon;
  }
  let host = v.slice(0, end);
  if (/[\x00-\x20\x7f/\\]|\.\./.test(host)) return undefined;
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host ? host.toLowerCase() : undefined;
}

/** Bytes nginx escapes in a URI it has rewritten (NGX_ESCAPE_URI): space, #, %, ?, controls, non-ASCII. */
export function escapeUri(s: string): string {
  if (!/[\x00-\x20#%?\x7f-\uffff]/.test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += b <= 0x20 || b === 0x23 || b === 0x25 || b === 0x3f || b >= 0x7f ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}

/** ingress-nginx's rewrite-target: the path, as a case-insensitive regular expression, and what a matching URL becomes. */
export interface Rewrite {
  pattern: RegExp;
  target: string;
}

/**
 * The URL an endpoint receives for a rewritten route, as nginx's `rewrite "(?i)path" target
 * break`: the whole path is replaced by the target, its $1..$9 taken from the match on the
 * normalised path (and escaped again); the query string of `uri` follows (after the
 * target's own, if it has one). A path the pattern does not match leaves `uri` alone.
 */
export function rewriteUrl(r: Rewrite, path: string, uri: string): string {
  const m = r.pattern.exec(path);
  if (!m) return uri;
  let target = r.target.replace(/\$(\d)/g, (_, n: string) => escapeUri(m[Number(n)] ?? ''));
  if (!target.startsWith('/')) target = `/${target}`;
  const q = uri.indexOf('?');
  if (q < 0 || q === uri.length - 1) return target;
  return `${target}${target.includes('?') ? '&' : '?'}${uri.slice(q + 1)}`;
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
