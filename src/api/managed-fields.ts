// metadata.managedFields, as server-side apply keeps them: which manager (fieldManager) owns
// which fields, in upstream's FieldsV1 notation (`f:spec`, `k:{"name":"web"}` for an item of
// a list keyed by its listMapKeys, `v:"x"` for a member of a set, `.` for a node that is
// owned itself and has owned children). A set of fields is held flat here: the paths of its
// members, each path its path elements joined by '\n'. Pure.

import { definitionOfKind, fieldDefinition, fieldMeta, type FieldMeta } from './patch-meta.ts';
import { isObject, unprocessable, type Json, type JsonObject } from './patch/errors.ts';

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: JsonObject;
  subresource?: string;
}

/** A member path -> a fingerprint of its value (to tell what a write changed). */
export type Members = Map<string, string>;

const SEP = '\n';
/** Fields no manager owns (upstream's stripmeta), and status, which the main resource does not write. */
const STRIPPED_TOP = new Set(['apiVersion', 'kind', 'status']);
const STRIPPED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink', 'managedFields']);
/** Key fields with a default: an item of `ports` without `protocol` is keyed as TCP. */
const KEY_DEFAULTS: Record<string, Json> = { protocol: 'TCP' };
/** Fields that are maps (not structs): an Update that makes one owns the map itself too (`.`). */
const MAP_FIELDS = new Set(['labels', 'annotations', 'matchLabels', 'nodeSelector', 'data', 'stringData', 'binaryData', 'limits', 'requests', 'capacity', 'allocatable']);
const isMapField = (def: string | undefined, k: string) => MAP_FIELDS.has(k) || (k === 'selector' && def === 'io.k8s.api.core.v1.ServiceSpec');
/**
 * Likewise a keyed list or a set (upstream: the fields absent from the type's zero value;
 * PodSpec.containers is always there, so an Update never makes it).
 */
const isOwnedList = (def: string | undefined, k: string) => !(k === 'containers' && def === 'io.k8s.api.core.v1.PodSpec');

/** The path element of an item of a list keyed by `keys`: k:{"containerPort":80,"protocol":"TCP"}. */
export function keyElement(item: Json, keys: readonly string[], at: string): string {
  if (!isObject(item)) throw unprocessable(`${at}: an item of a keyed list must be an object, not ${JSON.stringify(item)}`);
  const key: JsonObject = {};
  for (const k of [...keys].sort()) {
    const v = item[k] ?? KEY_DEFAULTS[k];
    if (v === undefined || v === null) throw unprocessable(`${at}: associative list with keys has an element that omits key field ${JSON.stringify(k)} (and doesn't have default value)`);
    key[k] = v;
  }
  return `k:${JSON.stringify(key)}`;
}

/**
 * The members of an object's field set. `maps`: maps and lists count as members themselves
 * (what an Update that creates them owns); without, only leaves, list items and set values (what an
 * applied configuration owns).
 */
export function members(obj: unknown, kind: string, opts: { maps?: boolean } = {}): Members {
  const out: Members = new Map();
  if (isObject(obj)) walkObject(obj, definitionOfKind(kind), [], out, Boolean(opts.maps));
  return out;
}

function walkObject(obj: JsonObject, def: string | undefined, path: string[], out: Members, maps: boolean): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined) continue;
    if (path.length === 0 && STRIPPED_TOP.has(k)) continue;
    if (path.length === 1 && path[0] === 'f:metadata' && STRIPPED_META.has(k)) continue;
    const p = [...path, `f:${k}`];
    const meta = fieldMeta(def, k);
    const sub = fieldDefinition(def, k);
    if (isObject(v)) {
      if (meta.mapType === 'atomic' || Object.keys(v).length === 0) out.set(p.join(SEP), JSON.stringify(v));
      else {
        if (maps && isMapField(def, k)) out.set(p.join(SEP), '{}');
        walkObject(v, sub, p, out, maps);
      }
    } else if (Array.isArray(v) && v.length && meta.listType === 'map') {
      if (maps && isOwnedList(def, k)) out.set(p.join(SEP), '{}');
      for (const item of v) {
        const ip = [...p, keyElement(item, meta.listMapKeys ?? [], formatPath(p))];
        out.set(ip.join(SEP), '{}');
        walkObject(item as JsonObject, sub, ip, out, maps);
      }
    } else if (Array.isArray(v) && v.length && meta.listType === 'set') {
      if (maps) out.set(p.join(SEP), '{}');
      for (const item of v) out.set([...p, `v:${JSON.stringify(item)}`].join(SEP), '{}');
    } else {
      out.set(p.join(SEP), JSON.stringify(v));
    }
  }
}

/** FieldsV1 of a set of member paths. */
export function encodeFieldsV1(paths: Iterable<string>): JsonObject {
  const root: JsonObject = {};
  for (const path of paths) {
    let node = root;
    for (const pe of path.split(SEP)) node = (node[pe] ??= {}) as JsonObject;
    node['.'] = node['.'] ?? {};
  }
  // A member without children is `{}`; with children it keeps `.: {}`.
  const tidy = (node: JsonObject): JsonObject => {
    const keys = Object.keys(node).filter((k) => k !== '.').sort();
    if (!keys.length) return {};
    const out: JsonObject = '.' in node ? { '.': {} } : {};
    for (const k of keys) out[k] = tidy(node[k] as JsonObject);
    return out;
  };
  return tidy(root);
}

/** The member paths of FieldsV1. */
export function decodeFieldsV1(fields: unknown): Set<string> {
  const out = new Set<string>();
  const walk = (node: unknown, path: string[]) => {
    if (!isObject(node)) return;
    const keys = Object.keys(node);
    if (path.length && (keys.length === 0 || keys.includes('.'))) out.add(path.join(SEP));
    for (const k of keys) if (k !== '.') walk(node[k], [...path, k]);
  };
  walk(fields, []);
  return out;
}

/** A path as upstream prints it in conflicts: .spec.template.spec.containers[name="web"].image */
export function formatPath(path: string | readonly string[]): string {
  const pes = typeof path === 'string' ? path.split(SEP) : path;
  return pes
    .map((pe) => {
      if (pe.startsWith('f:')) return `.${pe.slice(2)}`;
      if (pe.startsWith('k:')) {
        const key = JSON.parse(pe.slice(2)) as JsonObject;
        return `[${Object.entries(key).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
      }
      if (pe.startsWith('v:')) return `[=${pe.slice(2)}]`;
      if (pe.startsWith('i:')) return `[${pe.slice(2)}]`;
      return pe;
    })
    .join('');
}

/** True when `prefix` is `path` or one of its ancestors. */
export function covers(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(prefix + SEP);
}

/** upstream's order: Apply before Update, then by time, manager, apiVersion, subresource. */
export function sortEntries(entries: ManagedFieldsEntry[]): ManagedFieldsEntry[] {
  const cmp = (a = '', b = '') => (a < b ? -1 : a > b ? 1 : 0);
  return entries.sort((p, q) => cmp(p.operation, q.operation) || cmp(p.time, q.time) || cmp(p.manager, q.manager) || cmp(p.apiVersion, q.apiVersion) || cmp(p.subresource, q.subresource));
}

/** A manager as upstream names it in a conflict: "kubectl" (Apply), "kubectl-client-side-apply" using apps/v1 (Update). */
export function printManager(e: Pick<ManagedFieldsEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  return e.operation === 'Update' ? `${s} using ${e.apiVersion}` : s;
}

export function entriesOf(obj: unknown): ManagedFieldsEntry[] {
  const mf = isObject(obj) && isObject(obj.metadata) ? obj.metadata.managedFields : undefined;
  return Array.isArray(mf) ? (mf.filter((e) => isObject(e) && typeof e.manager === 'string') as unknown as ManagedFieldsEntry[]) : [];
}

const sameManager = (a: ManagedFieldsEntry, b: Pick<ManagedFieldsEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>) =>
  a.manager === b.manager && a.operation === b.operation && (a.operation === 'Apply' || a.apiVersion === b.apiVersion) && (a.subresource ?? '') === (b.subresource ?? '');

/**
 * The managedFields after an Update by `manager` (create, PUT, a PATCH that is not an apply):
 * it owns what it changed (taken from the others), and no one owns what it removed.
 */
export function recordUpdate(entries: ManagedFieldsEntry[], live: unknown, next: unknown, kind: string, manager: string, apiVersion: string, time: string): ManagedFieldsEntry[] {
  const before = live ? members(live, kind, { maps: true }) : new Map<string, string>();
  const after = members(next, kind, { maps: true });
  const changed = [...after.keys()].filter((k) => before.get(k) !== after.get(k));
  const removed = [...before.keys()].filter((k) => !after.has(k));
  if (!changed.length && !removed.length && live) return entries;
  const me = { manager, operation: 'Update' as const, apiVersion };
  const taken = new Set(changed);
  const drop = (set: Set<string>) => {
    for (const p of set) if (taken.has(p) || removed.some((r) => covers(r, p))) set.delete(p);
    return set;
  };
  const out: ManagedFieldsEntry[] = [];
  let mine = new Set<string>();
  for (const e of entries) {
    if (sameManager(e, me)) mine = decodeFieldsV1(e.fieldsV1);
    else {
      const set = drop(decodeFieldsV1(e.fieldsV1));
      if (set.size) out.push({ ...e, fieldsV1: encodeFieldsV1(set) });
    }
  }
  for (const p of changed) mine.add(p);
  for (const p of [...mine]) if (removed.some((r) => covers(r, p))) mine.delete(p);
  if (mine.size) out.push({ ...me, time, fieldsType: 'FieldsV1', fieldsV1: encodeFieldsV1(mine) });
  return sortEntries(out);
}

export type { FieldMeta };
