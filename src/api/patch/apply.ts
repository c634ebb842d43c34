// Server-side apply (`application/apply-patch+yaml`, `kubectl apply --server-side`), as
// structured-merge-diff does it: the applied configuration merges over the live object
// (maps key by key, lists by their listMapKeys, sets as unions, atomic values replaced); a
// field another manager owns that the configuration would change is a conflict (409 naming
// the managers and fields) unless forced, and then that manager loses it; the applier owns
// exactly what it applied; what it applied last time and no longer does, and no one else
// owns, is removed from the object. Pure.

import { definitionOfKind, fieldDefinition, fieldMeta, type FieldMeta } from '../patch-meta.ts';
import { covers, decodeFieldsV1, encodeFieldsV1, entriesOf, formatPath, keyElement, members, printManager, sortEntries, type ManagedFieldsEntry } from '../managed-fields.ts';
import { isObject, PatchError, type Json, type JsonObject } from './errors.ts';

export const BEFORE_FIRST_APPLY = 'before-first-apply';

export interface ApplyRequest {
  /** The object as stored, or undefined: the apply creates it. */
  live: JsonObject | undefined;
  /** The applied configuration (YAML or JSON, parsed). */
  config: JsonObject;
  kind: string;
  manager: string;
  apiVersion: string;
  force: boolean;
  time: string;
}

export interface Conflict {
  manager: string;
  path: string;
}

/** The object to store after the apply, its managedFields set; throws a 409 PatchError on conflicts. */
export function serverSideApply(req: ApplyRequest): JsonObject {
  const { live, kind } = req;
  const config = withoutNulls(req.config) as JsonObject;
  let entries = entriesOf(live as never);
  // An object no one manages yet (made before any apply): its fields are the "before-first-apply" manager's.
  if (live && !entries.length) entries = [{ manager: BEFORE_FIRST_APPLY, operation: 'Update', apiVersion: req.apiVersion, time: req.time, fieldsType: 'FieldsV1', fieldsV1: encodeFieldsV1(members(live, kind, { maps: true }).keys()) }];
  const def = definitionOfKind(kind);
  const merged = mergeValue(live ?? {}, config, def, {}) as JsonObject;
  const before = live ? members(live, kind) : new Map<string, string>();
  const after = members(merged, kind);
  const changed = new Set([...after.keys()].filter((k) => before.get(k) !== after.get(k)));
  const me = { manager: req.manager, operation: 'Apply' as const, apiVersion: req.apiVersion };
  const isMe = (e: ManagedFieldsEntry) => e.manager === me.manager && e.operation === 'Apply' && !e.subresource;

  const others = entries.filter((e) => !isMe(e)).map((e) => ({ entry: e, set: decodeFieldsV1(e.fieldsV1) }));
  const conflicts: Conflict[] = [];
  for (const o of others) {
    for (const p of o.set) if (changed.has(p)) conflicts.push({ manager: printManager(o.entry), path: formatPath(p) });
  }
  if (conflicts.length && !req.force) throw conflictError(conflicts);
  if (conflicts.length) for (const o of others) for (const p of [...o.set]) if (changed.has(p)) o.set.delete(p);

  const applied = new Set(members(config, kind).keys());
  const previous = decodeFieldsV1(entries.find(isMe)?.fieldsV1);
  const ownedByOthers = new Set(others.flatMap((o) => [...o.set]));
  const stillOwned = [...applied, ...ownedByOthers];
  const gone = [...previous]
    .filter((p) => !applied.has(p) && !ownedByOthers.has(p) && !stillOwned.some((q) => q !== p && covers(p, q)))
    .sort((a, b) => a.length - b.length);
  for (const p of gone) removePath(merged, p.split('\n'), def);

  const next: ManagedFieldsEntry[] = others.filter((o) => o.set.size).map((o) => ({ ...o.entry, fieldsV1: encodeFieldsV1(o.set) }));
  const fieldsV1 = encodeFieldsV1(applied);
  const mine = entries.find(isMe);
  // The same set applied again keeps its time: an apply that changes nothing is a no-op.
  const time = mine && mine.apiVersion === req.apiVersion && JSON.stringify(mine.fieldsV1) === JSON.stringify(fieldsV1) ? (mine.time ?? req.time) : req.time;
  if (applied.size) next.push({ ...me, time, fieldsType: 'FieldsV1', fieldsV1 });
  const metadata = (isObject(merged.metadata) ? merged.metadata : {}) as JsonObject;
  merged.metadata = { ...metadata, managedFields: sortEntries(next) as unknown as Json };
  return merged;
}

/** upstream's 409: "Apply failed with 1 conflict: conflict with \"m\" using apps/v1: .spec.replicas", a cause per field. */
export function conflictError(conflicts: Conflict[]): PatchError {
  const one = (c: Conflict) => `conflict with ${c.manager}: ${c.path}`;
  let message: string;
  if (conflicts.length === 1) message = `Apply failed with 1 conflict: ${one(conflicts[0]!)}`;
  else {
    const byManager = new Map<string, string[]>();
    for (const c of conflicts) byManager.set(c.manager, [...(byManager.get(c.manager) ?? []), c.path]);
    const lines = [...byManager.keys()].sort().flatMap((m) => [`conflicts with ${m}:`, ...byManager.get(m)!.map((p) => `- ${p}`)]);
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new PatchError(409, 'Conflict', message, conflicts.map((c) => ({ type: 'FieldManagerConflict', message: `conflict with ${c.manager}`, field: c.path })));
}

/** An applied null means "not specified". */
function withoutNulls(v: Json): Json {
  if (Array.isArray(v)) return v.filter((x) => x !== null).map(withoutNulls);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, withoutNulls(x)]));
  return v;
}

/** `cfg` over `live`; `def` is the type of the value (of a list's items, for a list). */
function mergeValue(live: Json | undefined, cfg: Json, def: string | undefined, meta: FieldMeta, at = ''): Json {
  if (isObject(cfg)) {
    if (!isObject(live) || meta.mapType === 'atomic') return cfg;
    const out: JsonObject = { ...live };
    for (const [k, v] of Object.entries(cfg)) out[k] = mergeValue(live[k], v, fieldDefinition(def, k), fieldMeta(def, k), `${at}.${k}`);
    return out;
  }
  if (Array.isArray(cfg) && Array.isArray(live) && meta.listType === 'map') {
    const keys = meta.listMapKeys ?? [];
    const out = [...live];
    const index = new Map(out.map((o, i) => [keyElement(o, keys, at), i]));
    for (const item of cfg) {
      const k = keyElement(item, keys, at);
      const i = index.get(k);
      if (i === undefined) {
        index.set(k, out.length);
        out.push(item);
      } else out[i] = mergeValue(out[i], item, def, {}, `${at}[${k}]`);
    }
    return out;
  }
  if (Array.isArray(cfg) && Array.isArray(live) && meta.listType === 'set') {
    const seen = new Set(live.map((x) => JSON.stringify(x)));
    return [...live, ...cfg.filter((x) => !seen.has(JSON.stringify(x)))];
  }
  return cfg;
}

/** Removes the member at `path` (f:, k:, v: elements) from `obj`. */
function removePath(obj: JsonObject, path: string[], def: string | undefined): void {
  let node: Json = obj;
  let d = def;
  let meta: FieldMeta = {};
  for (let i = 0; i < path.length; i++) {
    const pe = path[i]!;
    const last = i === path.length - 1;
    if (pe.startsWith('f:') && isObject(node)) {
      const k = pe.slice(2);
      if (last) {
        delete node[k];
        return;
      }
      meta = fieldMeta(d, k);
      d = fieldDefinition(d, k);
      node = node[k] as Json;
    } else if (pe.startsWith('k:') && Array.isArray(node)) {
      const list: Json[] = node;
      const keys = meta.listMapKeys ?? [];
      const idx = list.findIndex((item) => isObject(item) && keyElement(item, keys, '') === pe);
      if (idx < 0) return;
      if (last) {
        list.splice(idx, 1);
        return;
      }
      node = list[idx]!;
      meta = {};
    } else if (pe.startsWith('v:') && Array.isArray(node)) {
      const list: Json[] = node;
      const idx = list.findIndex((item) => JSON.stringify(item) === pe.slice(2));
      if (idx >= 0 && last) list.splice(idx, 1);
      return;
    } else return;
  }
}
