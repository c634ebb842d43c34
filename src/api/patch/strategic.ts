// Strategic merge patch, as apimachinery's strategicpatch applies it on the server (the
// default of `kubectl patch`, and what client-side `kubectl apply` sends): lists declared
// `patchStrategy: merge` merge item by item on their merge key (PATCH_META), the others are
// replaced; null deletes; directives: `$patch: replace|delete|merge` (on a map or a list
// item), `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`. Pure.

import { definitionOfKind, fieldDefinition, fieldMeta } from '../patch-meta.ts';
import { badRequest, isObject, unprocessable, type Json, type JsonObject } from './errors.ts';

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVES = '$deleteFromPrimitiveList/';

/** `original` patched by `patch` for an object of `kind`; throws PatchError (400/422) naming what is wrong. */
export function strategicMergePatch(original: unknown, patch: unknown, kind: string): JsonObject {
  if (!isObject(patch)) throw badRequest(`a strategic merge patch must be a JSON object, not ${Array.isArray(patch) ? 'an array' : JSON.stringify(patch)}`);
  return mergeMap(isObject(original) ? structuredClone(original) : {}, structuredClone(patch), definitionOfKind(kind), '');
}

function mergeMap(original: JsonObject, patch: JsonObject, def: string | undefined, at: string): JsonObject {
  if (DIRECTIVE in patch) {
    const directive = patch[DIRECTIVE];
    if (directive === 'replace') {
      const { [DIRECTIVE]: _, ...rest } = patch;
      return mergeMap({}, rest, def, at);
    }
    if (directive === 'delete') return {};
    if (directive !== 'merge') throw badRequest(`unknown patch type: ${JSON.stringify(directive)} in map at ${at || '.'}: $patch is one of replace, delete, merge`);
    delete patch[DIRECTIVE];
  }
  if (RETAIN_KEYS in patch) {
    const keys = patch[RETAIN_KEYS];
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw badRequest(`invalid patch format of retainKeys at ${at || '.'}: $retainKeys must be a list of field names`);
    for (const [k, v] of Object.entries(patch)) {
      if (!k.startsWith('$') && v !== null && !keys.includes(k)) throw unprocessable(`patch content doesn't match retainKeys list at ${at || '.'}: ${JSON.stringify(k)} is not in $retainKeys ${JSON.stringify(keys)}`);
    }
    for (const k of Object.keys(original)) if (!keys.includes(k)) delete original[k];
    delete patch[RETAIN_KEYS];
  }
  const orders = new Map<string, Json[]>();
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(DELETE_FROM_PRIMITIVES)) {
      const field = k.slice(DELETE_FROM_PRIMITIVES.length);
      if (!Array.isArray(v) || v.some((x) => typeof x === 'object' && x !== null)) throw badRequest(`invalid patch format of primitive list at ${at}.${field}: ${k} must be a list of values`);
      const cur = original[field];
      if (Array.isArray(cur)) original[field] = cur.filter((x) => !v.some((d) => same(d, x)));
      delete patch[k];
    } else if (k.startsWith(ORDER)) {
      if (!Array.isArray(v)) throw badRequest(`invalid patch format of setElementOrder list at ${at}.${k.slice(ORDER.length)}: ${k} must be a list`);
      orders.set(k.slice(ORDER.length), v);
      delete patch[k];
    } else if (k.startsWith('$')) {
      throw badRequest(`unknown directive ${JSON.stringify(k)} at ${at || '.'}`);
    }
  }
  for (const [k, v] of Object.entries(patch)) {
    const path = `${at}.${k}`;
    if (v === null) {
      delete original[k];
      continue;
    }
    const meta = fieldMeta(def, k);
    const sub = fieldDefinition(def, k);
    const cur = original[k];
    if (Array.isArray(v) && meta.strategy?.startsWith('merge')) {
      original[k] = mergeList(Array.isArray(cur) ? cur : [], v, meta.mergeKey, sub, path, orders.get(k));
    } else if (isObject(v) && (isObject(cur) || cur === undefined)) {
      original[k] = mergeMap(isObject(cur) ? cur : {}, v, sub, path);
    } else {
      original[k] = v; // a scalar, a list replaced whole, or a value of another type
    }
  }
  // An order for a list the patch left alone still applies to it.
  for (const [k, order] of orders) {
    const cur = original[k];
    if (!(k in patch) && Array.isArray(cur)) original[k] = normalizeOrder(cur, order, cur, fieldMeta(def, k).mergeKey);
  }
  return original;
}

function mergeList(original: Json[], patch: Json[], mergeKey: string | undefined, def: string | undefined, at: string, order: Json[] | undefined): Json[] {
  const objects = [...original, ...patch].some((x) => isObject(x));
  if (!objects) {
    // A list of primitives merged as a set (finalizers, podCIDRs): union, in the patch's order.
    const merged = [...original];
    for (const v of patch) if (!merged.some((m) => same(m, v))) merged.push(v);
    return normalizeOrder(merged, order ?? patch, original, undefined);
  }
  if (!mergeKey) throw badRequest(`cannot merge lists without merge key for ${at}`);
  let base = [...original];
  const items: JsonObject[] = [];
  for (const item of patch) {
    if (!isObject(item)) throw badRequest(`${at}: every item of a merged list is an object, not ${JSON.stringify(item)}`);
    const directive = item[DIRECTIVE];
    if (directive === 'replace') return patch.filter((p) => isObject(p) && !(DIRECTIVE in p)).map((p) => mergeMap({}, p as JsonObject, def, `${at}[]`));
    if (directive === 'delete') {
      if (!(mergeKey in item)) throw badRequest(`${at}: map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
      base = base.filter((o) => !(isObject(o) && same(o[mergeKey], item[mergeKey])));
      continue;
    }
    if (directive !== undefined && directive !== 'merge') throw badRequest(`unknown patch type: ${JSON.stringify(directive)} in ${at}: $patch is one of replace, delete, merge`);
    if (!(mergeKey in item)) throw badRequest(`${at}: map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    items.push(item);
  }
  for (const item of items) {
    const key = item[mergeKey];
    const i = base.findIndex((o) => isObject(o) && same(o[mergeKey], key));
    const where = `${at}[${mergeKey}=${JSON.stringify(key)}]`;
    if (i >= 0) base[i] = mergeMap(base[i] as JsonObject, item, def, where);
    else base.push(mergeMap({}, item, def, where));
  }
  return normalizeOrder(base, order ?? items, original, mergeKey);
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Upstream's normalizeElementOrder: the items the patch (or its $setElementOrder) names come
 * in that order; the server's other items keep their places relative to them.
 */
export function normalizeOrder(merged: Json[], order: Json[], original: Json[], mergeKey: string | undefined): Json[] {
  const id = (x: Json) => JSON.stringify(mergeKey && isObject(x) ? x[mergeKey] : x);
  const orderIndex = new Map(order.map((o, i) => [id(o), i]));
  const serverIndex = new Map(original.map((o, i) => [id(o), i]));
  const at = (m: Map<string, number>, x: Json) => m.get(id(x)) ?? Number.MAX_SAFE_INTEGER;
  const patched = merged.filter((m) => orderIndex.has(id(m))).sort((a, b) => at(orderIndex, a) - at(orderIndex, b));
  const serverOnly = merged.filter((m) => !orderIndex.has(id(m))).sort((a, b) => at(serverIndex, a) - at(serverIndex, b));
  const out: Json[] = [];
  let i = 0;
  let j = 0;
  while (i < serverOnly.length || j < patched.length) {
    if (j >= patched.length) out.push(serverOnly[i++]!);
    else if (i >= serverOnly.length) out.push(patched[j++]!);
    else {
      const l = serverIndex.get(id(serverOnly[i]!));
      const r = serverIndex.get(id(patched[j]!));
      if (l !== undefined && r !== undefined && l < r) out.push(serverOnly[i++]!);
      else out.push(patched[j++]!);
    }
  }
  return out;
}
