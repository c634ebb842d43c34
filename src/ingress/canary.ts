// Canary Ingresses, as ingress-nginx has them: an Ingress annotated `canary: "true"` claims
// no path of its own; each of its paths joins the route another Ingress serves for the same
// host and path, and takes part of that route's requests: those whose header
// (canary-by-header, -value, -pattern) or cookie (canary-by-cookie) asks for it, in that
// order, else a share by weight (canary-weight of canary-weight-total). Its other
// annotations are the main Ingress's, as in ingress-nginx. One canary per path.

import type { Ingress, IngressBackend } from '../api/types.ts';
import { namespacedName } from '../api/types.ts';
import { ANNOTATION_PREFIX } from './annotation-values.ts';
import type { Canary, Problem, Route, RouteTable, Upstream } from './table.ts';

export function isCanary(ing: Ingress): boolean {
  return ing.metadata.annotations?.[`${ANNOTATION_PREFIX}canary`] === 'true';
}

type CanaryRules = Omit<Canary, 'ingress' | 'upstream'>;

/** The canary annotations; a value that cannot be read is reported and left out. */
function canaryRules(ing: Ingress, problem: (reason: string, message: string) => void): CanaryRules {
  const a = (k: string) => ing.metadata.annotations?.[`${ANNOTATION_PREFIX}canary-${k}`];
  const whole = (k: string, fallback: number, max: number) => {
    const v = a(k);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (Number.isInteger(n) && n >= 0 && n <= max) return n;
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}canary-${k}: ${JSON.stringify(v)} is not a whole number from 0 to ${max}: ${fallback} is used`);
    return fallback;
  };
  const weightTotal = whole('weight-total', 100, 1_000_000) || 100;
  const rules: CanaryRules = { weight: whole('weight', 0, weightTotal), weightTotal };
  const header = a('by-header');
  if (header) {
    rules.header = header.toLowerCase();
    const value = a('by-header-value');
    const pattern = a('by-header-pattern');
    if (value !== undefined) rules.headerValue = value;
    else if (pattern !== undefined) {
      try {
        rules.headerPattern = new RegExp(pattern);
      } catch (e) {
        problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}canary-by-header-pattern: ${JSON.stringify(pattern)} is not a valid regular expression (${(e as Error).message}): ignored`);
      }
    }
  }
  const cookie = a('by-cookie');
  if (cookie) rules.cookie = cookie;
  return rules;
}

/** Joins a canary Ingress's paths to the routes other Ingresses serve for the same host and path. */
export function attachCanary(table: RouteTable, ing: Ingress, resolve: (backend: IngressBackend) => Upstream | undefined, problems: Problem[]): void {
  const ref = { namespace: ing.metadata.namespace!, name: ing.metadata.name, uid: ing.metadata.uid };
  const problem = (reason: string, message: string) => problems.push({ ingress: ref, reason, message });
  const rules = canaryRules(ing, problem);
  (ing.spec.rules ?? []).forEach((rule, i) => {
    const host = rule.host ?? '';
    const group = host === '' ? table.anyHost : host.startsWith('*.') ? table.wildcards.get(host.slice(2)) : table.hosts.get(host);
    (rule.http?.paths ?? []).forEach((p, j) => {
      const where = `spec.rules[${i}].http.paths[${j}]`;
      const path = p.path || '/';
      const routes = group?.routes ?? [];
      const main: Route | undefined = routes.find((r) => r.path === path && r.pathType === p.pathType) ?? routes.find((r) => r.path === path);
      if (!main) {
        problem('CanaryWithoutMain', `${where}: no other Ingress serves host ${JSON.stringify(host || '*')} path ${path}: a canary only takes a share of a path another Ingress serves; not served`);
        return;
      }
      if (main.canary) {
        problem('CanaryConflict', `${where}: host ${JSON.stringify(host || '*')} path ${path} already has the canary ${namespacedName({ metadata: main.canary.ingress })} (one canary per path): not served`);
        return;
      }
      const upstream = resolve(p.backend);
      if (upstream) main.canary = { ingress: ref, upstream, ...rules };
    });
  });
}

/** A cookie's value in a Cookie header. */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Where a request goes: the canary's upstream when its header says so (always, or the
 * value or pattern given), else when its cookie says always, else by weight; "never" in the
 * header or cookie keeps it on the route's upstream. `header` looks a request header up by
 * lowercased name.
 */
export function chosenUpstream(route: Route, header: (name: string) => string | undefined, random: () => number = Math.random): Upstream {
  const c = route.canary;
  if (!c) return route.upstream;
  if (c.header) {
    const v = header(c.header);
    if (v !== undefined) {
      if (c.headerValue !== undefined || c.headerPattern) {
        if (v === c.headerValue || c.headerPattern?.test(v)) return c.upstream;
      } else if (v === 'always') return c.upstream;
      else if (v === 'never') return route.upstream;
    }
  }
  if (c.cookie) {
    const v = cookieValue(header('cookie'), c.cookie);
    if (v === 'always') return c.upstream;
    if (v === 'never') return route.upstream;
  }
  return c.weight > 0 && random() * c.weightTotal < c.weight ? c.upstream : route.upstream;
}
