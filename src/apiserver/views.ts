// The answers of GET in the view the client negotiated (negotiate.ts): a list, an object or
// a watch event as the object itself, as a meta.k8s.io Table (tables.ts), or as
// PartialObjectMetadata. Pure: objects in, JSON text and its Content-Type out.

import { apiVersionOf, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { contentTypeOf, type View } from './negotiate.ts';
import type { Page } from './paging.ts';
import { partialObjectMetadata, toTable, type IncludeObject } from './tables.ts';

export interface Answer {
  contentType: string;
  body: string;
}

function listMeta(p: Page): string {
  return JSON.stringify({ resourceVersion: String(p.resourceVersion), ...(p.continue ? { continue: p.continue, remainingItemCount: p.remainingItemCount } : {}) });
}

/** A list: {Kind}List, a Table, or a PartialObjectMetadataList. */
export function listAnswer(view: View, rt: ResourceType, p: Page, includeObject: IncludeObject, nowMs = Date.now()): Answer {
  const contentType = contentTypeOf(view, true);
  if (view.as === 'Table') {
    const meta = { resourceVersion: String(p.resourceVersion), continue: p.continue, remainingItemCount: p.continue ? p.remainingItemCount : undefined };
    return { contentType, body: JSON.stringify(toTable(rt.kind, p.items, meta, { version: view.version, includeObject }, nowMs)) };
  }
  if (view.as === 'PartialObjectMetadata') {
    const items = p.items.map((o) => JSON.stringify(partialObjectMetadata(o, view.version))).join(',');
    return { contentType, body: `{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/${view.version}","metadata":${listMeta(p)},"items":[${items}]}` };
  }
  return { contentType, body: `{"kind":"${rt.kind}List","apiVersion":"${apiVersionOf(rt)}","metadata":${listMeta(p)},"items":[${p.items.map((o) => JSON.stringify(o)).join(',')}]}` };
}

/** One object: itself, a Table of one row, or its PartialObjectMetadata. */
export function objectAnswer(view: View, obj: KubeObject, includeObject: IncludeObject, nowMs = Date.now()): Answer {
  const contentType = contentTypeOf(view, false);
  if (view.as === 'Table') return { contentType, body: JSON.stringify(toTable(obj.kind, [obj], { resourceVersion: obj.metadata.resourceVersion }, { version: view.version, includeObject }, nowMs)) };
  if (view.as === 'PartialObjectMetadata') return { contentType, body: JSON.stringify(partialObjectMetadata(obj, view.version)) };
  return { contentType, body: JSON.stringify(obj) };
}

/**
 * The object of each watch event in the view: with a Table, a Table of one row whose
 * columnDefinitions come with the first event only (upstream's watchEmbeddedEncoder);
 * ERROR and BOOKMARK objects go as they are. Returns the JSON text of `object`.
 */
export function watchEncoder(view: View, kind: string, includeObject: IncludeObject): (type: string, obj: KubeObject, text?: string) => string {
  let headersSent = false;
  return (type, obj, text) => {
    if (type === 'ERROR' || type === 'BOOKMARK' || view.as === 'Object') return text ?? JSON.stringify(obj);
    if (view.as === 'PartialObjectMetadata') return JSON.stringify(partialObjectMetadata(obj, view.version));
    if (headersSent) return sharedTable(kind, obj, view.version, includeObject, Date.now());
    headersSent = true;
    return JSON.stringify(toTable(kind, [obj], { resourceVersion: obj.metadata.resourceVersion }, { version: view.version, includeObject }));
  };
}

/**
 * One event's Table without column definitions is the same text for every watcher of that
 * view (kubectl get -w): encoded once and shared, where 100 watchers each built and
 * stringified it (bench:api). Kept with the object, for a second at most (the AGE cell).
 */
const sharedTables = new WeakMap<KubeObject, { key: string; at: number; text: string }>();
function sharedTable(kind: string, obj: KubeObject, version: 'v1' | 'v1beta1', includeObject: IncludeObject, nowMs: number): string {
  const key = `${version}|${includeObject}`;
  const hit = sharedTables.get(obj);
  if (hit && hit.key === key && nowMs - hit.at < 1000) return hit.text;
  const text = JSON.stringify(toTable(kind, [obj], { resourceVersion: obj.metadata.resourceVersion }, { version, includeObject, noHeaders: true }, nowMs));
  sharedTables.set(obj, { key, at: nowMs, text });
  return text;
}
