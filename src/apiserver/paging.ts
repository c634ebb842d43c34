// List pagination (limit/continue), as kubectl uses it (`get` sends limit=500 and follows
// `metadata.continue`). The continue token has upstream's shape (base64url of
// {"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}): the next page starts after the last
// key served. kubewire keeps no snapshots, so later pages read the current objects (a key
// added or removed meanwhile is seen or missed, as with an expired token upstream re-listing);
// every page carries the first page's resourceVersion. Pure.

import type { KubeObject } from '../api/types.ts';
import { StatusError } from './status.ts';

const badRequest = (message: string) => new StatusError(400, 'BadRequest', message);

/** ?limit=N: a non-negative integer; 0 or none is no limit. */
export function parseLimit(value: string | null): number | undefined {
  if (value === null || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw badRequest(`limit: Invalid value: ${JSON.stringify(value)}: must be a non-negative integer`);
  return Number(value) || undefined;
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** The store's list order (namespace, then name), so that "after the last key" means the same on every page. */
function compareKeys(a: KubeObject, b: KubeObject): number {
  const ns = (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '');
  return ns || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
}

export function encodeContinue(rv: number, last: KubeObject): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${keyOf(last)}\u0000` })).toString('base64url');
}

export function decodeContinue(token: string): { rv: number; after: { namespace: string; name: string } } {
  let parsed: { v?: unknown; rv?: unknown; start?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badRequest(`continue key is not valid: ${JSON.stringify(token)} is not a token this server gave`);
  }
  if (parsed?.v !== 'meta.k8s.io/v1' || typeof parsed.rv !== 'number' || typeof parsed.start !== 'string' || !parsed.start.endsWith('\u0000')) {
    throw badRequest(`continue key is not valid: ${JSON.stringify(token)} is not a token this server gave`);
  }
  const key = parsed.start.slice(0, -1);
  const i = key.indexOf('/');
  return { rv: parsed.rv, after: { namespace: key.slice(0, i), name: key.slice(i + 1) } };
}

export interface Page {
  items: KubeObject[];
  resourceVersion: number;
  continue?: string;
  remainingItemCount?: number;
}

/** One page of `items` (in the store's order): at most `limit`, after the token's key. */
export function page(items: KubeObject[], resourceVersion: number, limit: number | undefined, token: string | null): Page {
  let rest = items;
  let rv = resourceVersion;
  if (token) {
    const { rv: first, after } = decodeContinue(token);
    const marker = { metadata: after } as unknown as KubeObject;
    rest = items.filter((o) => compareKeys(o, marker) > 0);
    rv = first;
  }
  if (!limit || rest.length <= limit) return { items: rest, resourceVersion: rv };
  const served = rest.slice(0, limit);
  return { items: served, resourceVersion: rv, continue: encodeContinue(rv, served[served.length - 1]!), remainingItemCount: rest.length - limit };
}
