// Every way of writing an object over the REST API, between the HTTP adapter (server.ts)
// and the Api: PATCH by Content-Type (JSON merge patch, strategic merge patch, JSON patch,
// server-side apply, 415 for anything else), the fieldManager of each write recorded in
// metadata.managedFields (operation Update for create, PUT and PATCH; Apply for apply), and
// DELETE with its DeleteOptions. Each write is one store transaction: a patch that fails
// changes nothing.

import type { IncomingMessage } from 'node:http';
import YAML from 'yaml';
import { apiVersionOf, type ParsedPath } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { now } from '../api/types.ts';
import { entriesOf, recordUpdate } from '../api/managed-fields.ts';
import { withDefaults } from '../api/defaults/index.ts';
import { serverSideApply } from '../api/patch/apply.ts';
import { PatchError, isObject, type JsonObject, type StatusCause } from '../api/patch/errors.ts';
import { jsonPatch } from '../api/patch/json.ts';
import { mergePatch } from '../api/patch/merge.ts';
import { strategicMergePatch } from '../api/patch/strategic.ts';
import type { Api } from './api.ts';
import { deleteAnswer, deleteWithOptions, finishIfFinalized, parseDeleteOptions } from './deletion.ts';
import { StoreError, type Key } from './store.ts';

export const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

/** A write's failure as a Status, whatever the adapter knows of (a StoreError carrying any code). */
export class WriteError extends StoreError {
  override name = 'WriteError';
  constructor(code: number, reason: string, message: string, readonly causes?: StatusCause[]) {
    super('Invalid', message);
    Object.assign(this, { code, reason }); // StoreError's reasons are the store's; a write has more (BadRequest, 415, 413)
  }

  override toStatus(): object {
    return { ...super.toStatus(), ...(this.causes ? { details: { causes: this.causes } } : {}) };
  }

  static of(e: PatchError): WriteError {
    return new WriteError(e.code, e.reason, e.message, e.causes);
  }
}

const badRequest = (message: string) => new WriteError(400, 'BadRequest', message);

/** The media type of a Content-Type header, without parameters. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

async function readRaw(req: IncomingMessage, limitMiB = 8): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limitMiB << 20) throw new WriteError(413, 'RequestEntityTooLarge', `request body larger than ${limitMiB} MiB`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The manager of a write: ?fieldManager, else the client's name from its User-Agent, as upstream. */
export function managerOf(q: URLSearchParams, userAgent: string | undefined): string {
  const given = q.get('fieldManager');
  if (given !== null) {
    if (given.length > 128) throw new WriteError(422, 'Invalid', `fieldManager: Too long: may not be more than 128 bytes`);
    if (!/^[\x20-\x7e]*$/.test(given)) throw new WriteError(422, 'Invalid', `fieldManager: Invalid value: ${JSON.stringify(given)}: must consist of printable characters`);
    if (given) return given;
  }
  return (userAgent ?? '').split('/')[0]!.trim() || 'unknown';
}

/** managedFields for an object about to be created (POST): its manager owns every field it set. */
export function managedOnCreate(obj: KubeObject, q: URLSearchParams, userAgent: string | undefined): void {
  const apiVersion = obj.apiVersion;
  // Owned as upstream owns them: with the defaults the server fills in.
  obj.metadata.managedFields = recordUpdate([], undefined, withDefaults(obj), obj.kind, managerOf(q, userAgent), apiVersion, now());
}

/**
 * PUT: the managedFields are the live ones (unless the body sets its own) with this write's
 * changes; an object marked for deletion whose last finalizer this removes goes.
 */
export function replaceObject(api: Api, key: Key, obj: KubeObject, q: URLSearchParams, userAgent: string | undefined): KubeObject {
  const manager = managerOf(q, userAgent);
  return api.store.write(() => {
    const live = api.get(key);
    const entries = obj.metadata.managedFields === undefined ? entriesOf(live) : entriesOf(obj);
    obj.metadata.managedFields = recordUpdate(entries, live, withDefaults(obj), live.kind, manager, live.apiVersion, now());
    const updated = api.update(obj);
    return finishIfFinalized(api, updated) ?? updated;
  });
}

function parse(text: string, type: string): unknown {
  if (!text.trim()) throw badRequest('the patch is empty');
  try {
    return type === PATCH_TYPES.apply ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw badRequest(`the patch is not ${type === PATCH_TYPES.apply ? 'YAML or JSON' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The patched object (or the applied one), with its identity checked against the path's. */
function patched(type: string, current: KubeObject | undefined, patch: unknown, p: ParsedPath, manager: string, force: boolean): KubeObject {
  const kind = p.rt.kind;
  try {
    switch (type) {
      case PATCH_TYPES.merge:
        if (!isObject(patch)) throw badRequest(`a JSON merge patch must be a JSON object, not ${Array.isArray(patch) ? 'an array' : JSON.stringify(patch)}`);
        return mergePatch(structuredClone(current), patch) as KubeObject;
      case PATCH_TYPES.strategic:
        return strategicMergePatch(current, patch, kind) as unknown as KubeObject;
      case PATCH_TYPES.json:
        return jsonPatch(current, patch) as KubeObject;
      case PATCH_TYPES.apply: {
        if (!isObject(patch)) throw badRequest('an apply patch must be an object (a manifest in YAML or JSON)');
        const cfg = patch as JsonObject;
        const apiVersion = apiVersionOf(p.rt);
        if (cfg.apiVersion !== apiVersion || cfg.kind !== kind) throw badRequest(`the applied object is ${JSON.stringify(cfg.apiVersion)} ${JSON.stringify(cfg.kind)}, but the path is of ${apiVersion} ${kind}: apiVersion and kind must be set and match`);
        const meta = isObject(cfg.metadata) ? cfg.metadata : undefined;
        if (meta?.name !== undefined && meta.name !== p.name) throw badRequest(`the name of the object (${JSON.stringify(meta.name)}) does not match the name on the URL (${JSON.stringify(p.name)})`);
        if (meta?.managedFields !== undefined) throw badRequest('metadata.managedFields must be nil in an applied configuration');
        const config: JsonObject = { ...cfg, metadata: { ...meta, name: p.name!, ...(p.rt.namespaced ? { namespace: p.namespace! } : {}) } };
        return serverSideApply({ live: current as unknown as JsonObject, config, kind, manager, apiVersion, force, time: now() }) as unknown as KubeObject;
      }
    }
  } catch (e) {
    if (e instanceof PatchError) throw WriteError.of(e);
    throw e;
  }
  throw new WriteError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${Object.values(PATCH_TYPES).join(', ')}`);
}

/**
 * PATCH of a subresource (status, scale): the request's patch, of any type but apply, applied
 * to `target` (the object, or its Scale). Throws 400/415/422 as a PATCH of the object does.
 */
export async function patchSubresource(req: IncomingMessage, target: unknown, kind: string, subresource: string): Promise<JsonObject> {
  const type = mediaType(req.headers['content-type']);
  if (type === PATCH_TYPES.apply) throw new WriteError(415, 'UnsupportedMediaType', `server-side apply of the ${subresource} subresource is not served by kubewire: use ${PATCH_TYPES.merge}, ${PATCH_TYPES.strategic} or ${PATCH_TYPES.json}`);
  if (!(Object.values(PATCH_TYPES) as string[]).includes(type)) throw new WriteError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${[PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.json].join(', ')}${type ? ` (got ${type})` : ''}`);
  const patch = parse(await readRaw(req), type);
  try {
    if (type === PATCH_TYPES.json) return jsonPatch(target, patch) as JsonObject;
    if (!isObject(patch)) throw badRequest(`a ${type === PATCH_TYPES.merge ? 'JSON merge' : 'strategic merge'} patch must be a JSON object`);
    return (type === PATCH_TYPES.merge ? mergePatch(structuredClone(target), patch) : strategicMergePatch(target, patch, kind)) as JsonObject;
  } catch (e) {
    if (e instanceof PatchError) throw WriteError.of(e);
    throw e;
  }
}

/**
 * PATCH: the patch of the request's Content-Type applied to the live object in one
 * transaction. An apply to an object that does not exist creates it (created: true).
 */
export async function patchRequest(
  api: Api,
  req: IncomingMessage,
  q: URLSearchParams,
  p: ParsedPath,
  key: Key,
  /** Checks the patched object before it is written (fieldValidation): what it returns comes back as `checked`. */
  check: (obj: KubeObject) => string[] = () => [],
): Promise<{ object: KubeObject; created: boolean; checked: string[] }> {
  const type = mediaType(req.headers['content-type']);
  if (!(Object.values(PATCH_TYPES) as string[]).includes(type)) {
    throw new WriteError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${Object.values(PATCH_TYPES).join(', ')}${type ? ` (got ${type})` : ''}`);
  }
  const apply = type === PATCH_TYPES.apply;
  const force = q.get('force') === 'true';
  if (force && !apply) throw badRequest('force: Forbidden: may not be specified for non-apply patch');
  if (apply && !q.get('fieldManager')) throw badRequest('fieldManager: Required value: is required for apply patch');
  const manager = managerOf(q, req.headers['user-agent']);
  const patch = parse(await readRaw(req), type);
  let checked: string[] = [];
  const write = () =>
    api.store.write(() => {
      const current = api.tryGet(key);
      if (!current && !apply) throw new StoreError('NotFound', `${p.rt.group ? `${p.rt.plural}.${p.rt.group}` : p.rt.plural} ${JSON.stringify(p.name)} not found`);
      const next = patched(type, current, patch, p, manager, force);
      if (!isObject(next as unknown) || !isObject(next.metadata as unknown)) throw new WriteError(422, 'Invalid', `${p.rt.kind} ${JSON.stringify(p.name)} is invalid: the patch leaves no object with metadata`);
      next.kind = p.rt.kind;
      next.apiVersion = apiVersionOf(p.rt);
      if (next.metadata.name !== p.name) throw badRequest(`the name of the object (${JSON.stringify(next.metadata.name)}) does not match the name on the URL (${JSON.stringify(p.name)})`);
      if (p.rt.namespaced) {
        if (next.metadata.namespace !== undefined && next.metadata.namespace !== p.namespace) throw badRequest(`the namespace of the object (${JSON.stringify(next.metadata.namespace)}) does not match the namespace on the URL (${JSON.stringify(p.namespace)})`);
        next.metadata.namespace = p.namespace;
      }
      checked = check(next);
      if (!current) return { object: api.create(next, { owned: true }), created: true, checked };
      if (next.metadata.uid !== undefined && next.metadata.uid !== current.metadata.uid) {
        throw new StoreError('Conflict', `Operation cannot be fulfilled on ${p.rt.plural} ${JSON.stringify(p.name)}: Precondition failed: UID in precondition: ${next.metadata.uid}, UID in object meta: ${current.metadata.uid}`);
      }
      // A resourceVersion the patch sets is a precondition; otherwise the patch applies to whatever is current.
      const rv = next.metadata.resourceVersion !== current.metadata.resourceVersion ? next.metadata.resourceVersion : undefined;
      if (!apply) next.metadata.managedFields = recordUpdate(entriesOf(next), current, withDefaults(next), current.kind, manager, current.apiVersion, now());
      // A patch that changes nothing writes nothing (upstream's no-op update: kubectl says "patched (no change)").
      if (!rv && sameObject(current, next)) return { object: current, created: false, checked };
      const object = api.update({ ...next, metadata: { ...next.metadata, resourceVersion: rv } }, { owned: true });
      return { object: finishIfFinalized(api, object) ?? object, created: false, checked };
    });
  if (q.get('dryRun') !== 'All') return write();
  // A dry run keeps the live resourceVersion (nothing was stored): kubectl diff shows only what would change.
  const live = api.tryGet(key)?.metadata.resourceVersion;
  const r = api.dryRun(write);
  return live ? { ...r, object: { ...r.object, metadata: { ...r.object.metadata, resourceVersion: live } } } : r;
}

function sameObject(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return strip(a) === strip(b);
}

/** DELETE with DeleteOptions from the body and the query: the object while it is still there, else Status Success. */
export function deleteRequest(api: Api, key: Key, body: unknown, q: URLSearchParams): object {
  return deleteAnswer(deleteWithOptions(api, key, parseDeleteOptions(body, q)));
}
