// OpenAPI v3, as kube-apiserver serves it: GET /openapi/v3 lists a document per group
// version (serverRelativeURL with ?hash=, which kubectl caches by), and each document has the
// paths of that group version's kinds and components.schemas for every type they reach.
// kubectl reads it for `explain` (components.schemas with x-kubernetes-group-version-kind),
// for strategic merge in client-side apply (x-kubernetes-patch-*), and to learn that the
// server validates fields itself: a `patch` operation per kind, tagged with the kind, that
// takes a `fieldValidation` query parameter (cli-runtime query_param_verifier_v3.go). The
// schemas are generated (scripts/gen-openapi.ts -> src/api/openapi/schemas.ts).

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SCHEMAS_JSON } from '../api/openapi/schemas.ts';
import { RESOURCES, type ResourceType } from '../api/resources.ts';
import { VERSION } from '../api/version.ts';
import { groupVersions, subresourcesOf } from './discovery.ts';

export type Schema = { [key: string]: unknown };

let parsed: Record<string, Schema> | undefined;

/** Every generated definition by name (io.k8s.api.core.v1.Pod...), parsed on first use. */
export function schemas(): Record<string, Schema> {
  return (parsed ??= JSON.parse(SCHEMAS_JSON) as Record<string, Schema>);
}

/** The Go package of a group (upstream's definition prefix): apps -> io.k8s.api.apps.v1. */
export function definitionOf(rt: Pick<ResourceType, 'group' | 'version' | 'kind'>): string {
  return `io.k8s.api.${rt.group ? rt.group.split('.')[0] : 'core'}.${rt.version}.${rt.kind}`;
}

const REF = '#/components/schemas/';

/** The names of `roots` and every definition they reach through $ref. */
export function closure(roots: string[], all: Record<string, Schema> = schemas()): string[] {
  const seen = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string' && x.startsWith(REF)) add(x.slice(REF.length));
      else visit(x);
    }
  };
  const add = (name: string) => {
    if (seen.has(name) || !all[name]) return;
    seen.add(name);
    visit(all[name]);
  };
  roots.forEach(add);
  return [...seen].sort();
}

const ref = (name: string) => ({ $ref: `${REF}${name}` });
const body = (name: string) => ({ content: { '*/*': { schema: ref(name) } }, required: true });
const ok = (name: string, code = '200') => ({ [code]: { description: 'OK', content: { 'application/json': { schema: ref(name) }, 'application/yaml': { schema: ref(name) } } }, '401': { description: 'Unauthorized' } });
const query = (name: string, description: string, type = 'string') => ({ name, in: 'query', description, schema: { type, uniqueItems: true } });

const PRETTY = query('pretty', "If 'true', then the output is pretty printed.");
const DRY_RUN = query('dryRun', 'When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed');
const FIELD_MANAGER = query('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.');
const FIELD_VALIDATION = query(
  'fieldValidation',
  'fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.',
);
const FORCE = query('force', 'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other people.', 'boolean');
const WRITE = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const LIST = ['allowWatchBookmarks', 'continue', 'fieldSelector', 'labelSelector', 'limit', 'resourceVersion', 'resourceVersionMatch', 'sendInitialEvents', 'timeoutSeconds', 'watch'].map((n) =>
  query(n, `${n} (see the Kubernetes API reference)`, n === 'limit' || n === 'timeoutSeconds' ? 'integer' : n === 'watch' || n === 'allowWatchBookmarks' || n === 'sendInitialEvents' ? 'boolean' : 'string'),
);
const PATCH_BODY = {
  content: Object.fromEntries(['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'].map((t) => [t, { schema: ref('io.k8s.apimachinery.pkg.apis.meta.v1.Patch') }])),
  required: true,
};
const STATUS = 'io.k8s.apimachinery.pkg.apis.meta.v1.Status';

/** The paths of one kind: collection, item, and its status/scale subresources, with upstream's operation shapes. */
function pathsOf(rt: ResourceType): Record<string, object> {
  const def = definitionOf(rt);
  const gvk = { group: rt.group, kind: rt.kind, version: rt.version };
  const opPrefix = `${(rt.group ? rt.group.split('.')[0]! : 'core').replace(/^./, (c) => c.toUpperCase())}${rt.version.replace(/^./, (c) => c.toUpperCase())}`;
  const ns = rt.namespaced ? 'Namespaced' : '';
  const tag = `${rt.group ? rt.group.split('.')[0] : 'core'}_${rt.version}`;
  const op = (action: string, verb: string, description: string, extra: object, kind: object = gvk) => ({
    tags: [tag],
    description,
    operationId: `${verb}${opPrefix}${ns}${rt.kind}`,
    ...extra,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': kind,
  });
  const base = `${rt.group ? `/apis/${rt.group}` : '/api'}/${rt.version}${rt.namespaced ? '/namespaces/{namespace}' : ''}/${rt.plural}`;
  const pathParams = (withName: boolean) => [
    ...(withName ? [{ name: 'name', in: 'path', description: `name of the ${rt.kind}`, required: true, schema: { type: 'string', uniqueItems: true } }] : []),
    ...(rt.namespaced ? [{ name: 'namespace', in: 'path', description: 'object name and auth scope, such as for teams and projects', required: true, schema: { type: 'string', uniqueItems: true } }] : []),
    PRETTY,
  ];
  const out: Record<string, object> = {
    [base]: {
      get: op('list', 'list', `list or watch objects of kind ${rt.kind}`, { parameters: LIST, responses: ok(`${def}List`) }),
      post: op('post', 'create', `create a ${rt.kind}`, { parameters: WRITE, requestBody: body(def), responses: { ...ok(def), ...ok(def, '201') } }),
      parameters: pathParams(false),
    },
    [`${base}/{name}`]: {
      get: op('get', 'read', `read the specified ${rt.kind}`, { responses: ok(def) }),
      put: op('put', 'replace', `replace the specified ${rt.kind}`, { parameters: WRITE, requestBody: body(def), responses: ok(def) }),
      patch: op('patch', 'patch', `partially update the specified ${rt.kind}`, { parameters: [...WRITE, FORCE], requestBody: PATCH_BODY, responses: ok(def) }),
      delete: op('delete', 'delete', `delete a ${rt.kind}`, { parameters: [DRY_RUN, query('gracePeriodSeconds', 'The duration in seconds before the object should be deleted.', 'integer'), query('propagationPolicy', 'Whether and how garbage collection will be performed.')], requestBody: { content: { '*/*': { schema: ref('io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions') } } }, responses: { ...ok(def), ...ok(STATUS, '202') } }),
      parameters: pathParams(true),
    },
  };
  if (rt.namespaced) out[`${rt.group ? `/apis/${rt.group}` : '/api'}/${rt.version}/${rt.plural}`] = { get: op('list', 'list', `list or watch objects of kind ${rt.kind}`, { parameters: LIST, responses: ok(`${def}List`) }), parameters: [PRETTY] };
  for (const s of subresourcesOf(rt)) {
    if (s.name !== 'status' && s.name !== 'scale') continue; // the streaming ones take no object
    const sdef = s.responseKind ? definitionOf(s.responseKind) : def;
    const kind = s.responseKind ?? gvk;
    const Sub = s.name === 'status' ? 'Status' : 'Scale';
    out[`${base}/{name}/${s.name}`] = {
      get: op('get', `read`, `read ${s.name} of the specified ${rt.kind}`, { operationId: `read${opPrefix}${ns}${rt.kind}${Sub}`, responses: ok(sdef) }, kind),
      put: op('put', 'replace', `replace ${s.name} of the specified ${rt.kind}`, { operationId: `replace${opPrefix}${ns}${rt.kind}${Sub}`, parameters: WRITE, requestBody: body(sdef), responses: ok(sdef) }, kind),
      patch: op('patch', 'patch', `partially update ${s.name} of the specified ${rt.kind}`, { operationId: `patch${opPrefix}${ns}${rt.kind}${Sub}`, parameters: [...WRITE, FORCE], requestBody: PATCH_BODY, responses: ok(sdef) }, kind),
      parameters: pathParams(true),
    };
  }
  return out;
}

/** The document of one group version ('api/v1', 'apis/apps/v1'); undefined when not served. */
export function openapiDocument(gvPath: string, resources: readonly ResourceType[] = RESOURCES): object | undefined {
  const gv = groupVersions(resources).find((g) => gvPathOf(g) === gvPath);
  if (!gv) return undefined;
  const rts = resources.filter((r) => r.group === gv.group && r.version === gv.version);
  const roots = [STATUS, 'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions', 'io.k8s.apimachinery.pkg.apis.meta.v1.Patch'];
  for (const rt of rts) {
    roots.push(definitionOf(rt), `${definitionOf(rt)}List`);
    for (const s of subresourcesOf(rt)) if (s.responseKind && s.name === 'scale') roots.push(definitionOf(s.responseKind));
  }
  const all = schemas();
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: VERSION.gitVersion },
    paths: Object.fromEntries(rts.flatMap((rt) => Object.entries(pathsOf(rt))).sort(([a], [b]) => a.localeCompare(b))),
    components: {
      schemas: Object.fromEntries(closure(roots, all).map((n) => [n, all[n]])),
      securitySchemes: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } },
    },
  };
}

const gvPathOf = (gv: { group: string; version: string }) => (gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`);

const documents = new Map<string, { text: string; hash: string }>();

/** A document as served: its JSON text and upstream's hash of it (SHA-512, upper-case hex). */
function served(gvPath: string): { text: string; hash: string } | undefined {
  let d = documents.get(gvPath);
  if (!d) {
    const doc = openapiDocument(gvPath);
    if (!doc) return undefined;
    const text = JSON.stringify(doc);
    d = { text, hash: createHash('sha512').update(text).digest('hex').toUpperCase() };
    documents.set(gvPath, d);
  }
  return d;
}

/** GET /openapi/v3: where each group version's document is, with its hash. */
export function openapiRoot(): object {
  return { paths: Object.fromEntries(groupVersions().map((gv) => gvPathOf(gv)).map((p) => [p, { serverRelativeURL: `/openapi/v3/${p}?hash=${served(p)!.hash}` }])) };
}

/** Answers GET /openapi/v3[/GV]; false for any other request. A stale ?hash= is redirected to the current one, as upstream does. */
export function serveOpenAPI(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !url.pathname.startsWith('/openapi/v3')) return false;
  const rest = url.pathname.slice('/openapi/v3'.length).replace(/^\/+|\/+$/g, '');
  let text: string;
  const headers: Record<string, string | number> = { 'content-type': 'application/json' };
  if (!rest) text = JSON.stringify(openapiRoot());
  else {
    const d = served(rest);
    if (!d) return false;
    const hash = url.searchParams.get('hash');
    if (hash && hash !== d.hash) {
      res.writeHead(301, { location: `/openapi/v3/${rest}?hash=${d.hash}` });
      res.end();
      return true;
    }
    if (hash) headers['cache-control'] = 'public, immutable';
    headers.etag = `"${d.hash}"`;
    text = d.text;
  }
  headers['content-length'] = Buffer.byteLength(text);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : text);
  return true;
}
