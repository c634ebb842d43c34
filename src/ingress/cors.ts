// CORS, as ingress-nginx's `enable-cors`: the CORS headers on every response to an allowed
// origin, and preflight requests (OPTIONS) answered 204 by the proxy itself. Origins are
// `*` (every request, with or without an Origin) or a list, where `https://*.example.com`
// covers one or more labels; an allowed origin is echoed back.

import { ANNOTATION_PREFIX } from './annotation-values.ts';

export interface Cors {
  /** ['*'] or the allowed origins. */
  origins: string[];
  methods: string;
  headers: string;
  exposeHeaders?: string;
  credentials: boolean;
  maxAge: number;
}

// ingress-nginx's defaults.
const METHODS = 'GET, PUT, POST, DELETE, PATCH, OPTIONS';
const HEADERS = 'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization';
const MAX_AGE = 1728000;
/** Header values that stay one header: visible ASCII and spaces, no CR/LF. */
const VALUE = /^[\x20-\x7e]*$/;

/** The CORS annotations (`get` reads one by its name after the prefix); undefined without `enable-cors: "true"`. */
export function corsOf(get: (name: string) => string | undefined, problem: (reason: string, message: string) => void): Cors | undefined {
  if (get('enable-cors') !== 'true') return undefined;
  const value = (name: string, fallback: string) => {
    const v = get(name);
    if (v === undefined) return fallback;
    if (VALUE.test(v)) return v;
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}${name}: ${JSON.stringify(v)} is not a header value: ${JSON.stringify(fallback)} is used`);
    return fallback;
  };
  const expose = value('cors-expose-headers', '');
  const maxAge = Number(get('cors-max-age'));
  return {
    origins: value('cors-allow-origin', '*').split(',').map((s) => s.trim()).filter(Boolean),
    methods: value('cors-allow-methods', METHODS),
    headers: value('cors-allow-headers', HEADERS),
    ...(expose ? { exposeHeaders: expose } : {}),
    credentials: get('cors-allow-credentials') !== 'false',
    maxAge: Number.isInteger(maxAge) && maxAge >= 0 && get('cors-max-age') !== undefined ? maxAge : MAX_AGE,
  };
}

function originAllowed(allowed: string, origin: string): boolean {
  if (allowed === origin) return true;
  const star = allowed.indexOf('://*.');
  if (star < 0) return false;
  const scheme = allowed.slice(0, star + 3);
  const suffix = allowed.slice(star + 4); // ".example.com[:port]"
  if (!origin.startsWith(scheme) || !origin.endsWith(suffix)) return false;
  return /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(origin.slice(scheme.length, origin.length - suffix.length)); // labels, nothing else
}

/** The CORS headers for a request from `origin`; none when the origin is not allowed. */
export function corsHeaders(c: Cors, origin: string | undefined): Array<[string, string]> {
  let allowOrigin: string;
  if (c.origins.includes('*')) allowOrigin = '*';
  else if (origin && c.origins.some((o) => originAllowed(o, origin))) allowOrigin = origin;
  else return [];
  const out: Array<[string, string]> = [
    ['access-control-allow-origin', allowOrigin],
    ['access-control-allow-methods', c.methods],
    ['access-control-allow-headers', c.headers],
    ['access-control-max-age', String(c.maxAge)],
  ];
  if (c.credentials) out.push(['access-control-allow-credentials', 'true']);
  if (c.exposeHeaders) out.push(['access-control-expose-headers', c.exposeHeaders]);
  return out;
}
