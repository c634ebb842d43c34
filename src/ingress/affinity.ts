// Sticky sessions, as ingress-nginx's `affinity: cookie`: a request carrying the session
// cookie of one of the upstream's endpoints goes to that endpoint (to another if it fails,
// the cookie kept unless session-cookie-change-on-failure); a request without one gets the
// usual round robin and a cookie naming the endpoint that answered. The cookie's value is a
// hash of the upstream and endpoint, so every worker, and a restarted controller, reads it
// alike.

import { createHash } from 'node:crypto';
import { ANNOTATION_PREFIX } from './annotation-values.ts';
import type { PathMatcher } from './paths.ts';

export interface Affinity {
  cookie: string;
  /** The cookie's Path (default: the rule's path, as ingress-nginx; / for a regex path). */
  path?: string;
  maxAge?: number;
  expires?: number;
  sameSite?: string;
  changeOnFailure: boolean;
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The affinity annotations (`get` reads one by its name after the prefix); undefined without `affinity: cookie`. */
export function affinityOf(get: (name: string) => string | undefined, problem: (reason: string, message: string) => void): Affinity | undefined {
  const mode = get('affinity');
  if (mode === undefined) return undefined;
  if (mode !== 'cookie') {
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}affinity: ${JSON.stringify(mode)} is not supported (cookie is): no session affinity`);
    return undefined;
  }
  let cookie = get('session-cookie-name') ?? 'INGRESSCOOKIE';
  if (!COOKIE_NAME.test(cookie)) {
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}session-cookie-name: ${JSON.stringify(cookie)} is not a cookie name: INGRESSCOOKIE is used`);
    cookie = 'INGRESSCOOKIE';
  }
  const seconds = (name: string) => {
    const v = get(name);
    const n = Number(v);
    return v !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
  };
  const path = get('session-cookie-path');
  const sameSite = get('session-cookie-samesite');
  return {
    cookie,
    ...(path && /^\/[\x21-\x3a\x3c-\x7e]*$/.test(path) ? { path } : {}), // no ';' or spaces: one attribute
    ...(seconds('session-cookie-max-age') ? { maxAge: seconds('session-cookie-max-age') } : {}),
    ...(seconds('session-cookie-expires') ? { expires: seconds('session-cookie-expires') } : {}),
    ...(sameSite && /^(strict|lax|none)$/i.test(sameSite) ? { sameSite } : {}),
    changeOnFailure: get('session-cookie-change-on-failure') === 'true',
  };
}

/** What affinity reads of an upstream (table.ts's Upstream): its name and endpoints. */
type Upstream = { readonly name: string; readonly endpoints: readonly string[] };

/** Per upstream: endpoint -> cookie value, and back. */
const ids = new WeakMap<Upstream, { byEndpoint: Map<string, string>; byId: Map<string, string> }>();

function idsOf(upstream: Upstream) {
  let m = ids.get(upstream);
  if (!m) {
    m = { byEndpoint: new Map(), byId: new Map() };
    for (const ep of upstream.endpoints) {
      const id = createHash('sha1').update(`${upstream.name}|${ep}`).digest('hex').slice(0, 32);
      m.byEndpoint.set(ep, id);
      m.byId.set(id, ep);
    }
    ids.set(upstream, m);
  }
  return m;
}

/** The endpoint a request's session cookie names, if it is still one of the upstream's. */
export function stickyEndpoint(a: Affinity, upstream: Upstream, cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === a.cookie) return idsOf(upstream).byId.get(part.slice(eq + 1).trim());
  }
  return undefined;
}

/**
 * The Set-Cookie value for a request served by `endpoint`, or undefined when the client
 * already holds the right cookie (`sticky`), or holds one for an endpoint that failed and
 * the cookie is to be kept.
 */
export function sessionCookie(a: Affinity, upstream: Upstream, endpoint: string, sticky: string | undefined, route: PathMatcher, https: boolean): string | undefined {
  if (endpoint === sticky || (sticky !== undefined && !a.changeOnFailure)) return undefined;
  const id = idsOf(upstream).byEndpoint.get(endpoint);
  if (!id) return undefined;
  let cookie = `${a.cookie}=${id}; Path=${a.path ?? (route.regex ? '/' : route.path)}; HttpOnly`;
  if (a.expires) cookie += `; Expires=${new Date(Date.now() + a.expires * 1000).toUTCString()}`;
  if (a.maxAge) cookie += `; Max-Age=${a.maxAge}`;
  if (https) cookie += '; Secure';
  if (a.sameSite) cookie += `; SameSite=${a.sameSite}`;
  return cookie;
}
