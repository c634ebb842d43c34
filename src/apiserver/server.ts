// The REST adapter: Kubernetes-shaped paths on a unix socket that only root may open, and
// the same over HTTPS with client certificates (https.ts hands its connections to accept()).
// It turns HTTP into Api calls and Api errors into Status objects; the rules live in Api.
//   GET    /api/v1/namespaces/NS/pods[?labelSelector=&fieldSelector=&watch=1&resourceVersion=]
//   POST   /api/v1/namespaces/NS/pods          PUT|PATCH|DELETE .../pods/NAME
//   PUT    .../pods/NAME/status                GET .../pods/NAME/log?container=&follow=&tailLines=
//   GET|PUT|PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale

import { chmodSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { APPLY_PATH, apiVersionOf, parseResourcePath, resourceOfKind, resourcePath, RESOURCES, type ParsedPath } from '../api/resources.ts';
import type { Deployment, KubeObject, StatefulSet } from '../api/types.ts';
import { PatchError } from '../api/patch/errors.ts';
import { decodeObject, PROTOBUF_CONTENT_TYPE } from '../api/protobuf/decode.ts';
import { warningsFor } from '../api/unimplemented.ts';
import { serveDiscovery } from './discovery.ts';
import { requester, review, reviewAt } from './reviews.ts';
import { checkFields, checkItems, fieldValidationOf } from './field-validation.ts';
import { serveOpenAPI } from './openapi.ts';
import { Api, fieldSelectorMatcher, labelSelectorMatcher } from './api.ts';
import { StoreError, type Key } from './store.ts';
import { parseLogQuery, type LogQuery } from './streams/logs.ts';
import { StreamServer, STREAM_SUBRESOURCES, type StreamHooks } from './streams/upgrade.ts';
import { mergePatch } from '../api/patch/merge.ts';
import { deleteRequest, managedOnCreate, patchRequest, patchSubresource, replaceObject } from './writes.ts';
import { StatusError } from './status.ts';
import { finalizeNamespace } from './deletion.ts';
import { includeObjectOf, negotiateView } from './negotiate.ts';
import { page, parseLimit } from './paging.ts';
import { listAnswer, objectAnswer, watchEncoder } from './views.ts';

export type LogRequest = LogQuery & { namespace: string; pod: string };

/** What the node side serves: logs here, exec, attach and port-forward through streams/upgrade.ts. */
export interface ServerHooks extends StreamHooks {
  /** Opens a pod's container log (with warnings for what it cannot do); throws a StatusError when there is none. */
  podLog?: (req: LogRequest) => Readable | { stream: Readable; warnings: string[] };
}

export { VERSION } from '../api/version.ts';
import { VERSION } from '../api/version.ts';

/** JSON merge patch (RFC 7386), what `kubectl patch --type merge` and `kubectl scale` send. */
export { mergePatch };

class HttpError extends Error {
  constructor(readonly code: number, message: string, readonly reason = 'BadRequest') {
    super(message);
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, code: number, text: string, contentType = 'application/json'): void {
  res.writeHead(code, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: unknown): void {
  if (e instanceof StatusError || e instanceof PatchError) return send(res, e.code, e.toStatus());
  const code = e instanceof HttpError ? e.code : 500;
  const reason = e instanceof HttpError ? e.reason : 'InternalError';
  send(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: e instanceof Error ? e.message : String(e), reason, code });
}

async function readBody(req: IncomingMessage, limitMiB = 8): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limitMiB << 20) throw new HttpError(413, `request body larger than ${limitMiB} MiB`, 'RequestEntityTooLarge');
    chunks.push(c);
  }
  if (!size) return undefined;
  // kubectl's `create` generators and client-go's typed clients send protobuf; answers stay JSON, which they accept.
  if (req.headers['content-type']?.startsWith(PROTOBUF_CONTENT_TYPE)) {
    try {
      return decodeObject(Buffer.concat(chunks));
    } catch (e) {
      throw new HttpError(400, `request body is not a valid Kubernetes protobuf object: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `request body is not JSON: ${(e as Error).message}`);
  }
}

/**
 * The API server's warnings (RFC 7234 Warning headers, code 299, as Kubernetes sends them
 * and kubectl prints them): here, the fields of the objects written that kubewire ignores.
 */
export function warningHeader(texts: string[]): string[] {
  // Header values are ASCII: anything else is replaced, quotes and backslashes escaped.
  return texts.map((t) => `299 - "${t.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`);
}

/** The warnings of objects as `kind.group/name: field: why`, the object named (an apply writes many). */
function objectWarnings(objs: KubeObject[]): string[] {
  return objs.flatMap((o) => {
    if (!o || typeof o !== 'object' || !RESOURCES.some((r) => r.kind === o.kind)) return [];
    const rt = resourceOfKind(o.kind);
    const name = `${rt.group ? `${rt.singular}.${rt.group}` : rt.singular}/${o.metadata?.name ?? ''}`;
    return warningsFor(o).map((w) => `${name}: ${w}`);
  });
}

function warn(res: ServerResponse, objs: KubeObject[], unknownFields: string[] = []): void {
  const texts = [...unknownFields, ...objectWarnings(objs)];
  if (texts.length) res.setHeader('warning', warningHeader(texts));
}

function keyOfPath(p: ParsedPath): Key {
  return { kind: p.rt.kind, namespace: p.rt.namespaced ? p.namespace : undefined, name: p.name! };
}

function scaleOf(d: Deployment | StatefulSet): object {
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: d.metadata.name, namespace: d.metadata.namespace, uid: d.metadata.uid, resourceVersion: d.metadata.resourceVersion },
    spec: { replicas: d.spec.replicas ?? 1 },
    status: { replicas: d.status?.replicas ?? 0, selector: Object.entries(d.spec.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') },
  };
}

export class ApiServer {
  private server?: Server;
  private readonly watches = new Set<() => void>();

  private readonly watchBuffer: number;
  private readonly bookmarkMs: number;

  constructor(private readonly api: Api, private readonly hooks: ServerHooks = {}, opts: { watchBufferBytes?: number; bookmarkMs?: number } = {}) {
    this.watchBuffer = opts.watchBufferBytes ?? 64 << 20;
    this.bookmarkMs = opts.bookmarkMs ?? 60_000;
    this.streams = new StreamServer(hooks);
  }

  /** exec, attach and port-forward: upgrades of this server's connections (the unix socket's and those accept() hands over). */
  private readonly streams: StreamServer;

  async listen(socketPath: string): Promise<void> {
    rmSync(socketPath, { force: true });
    this.server = createServer((req, res) => void this.handle(req, res));
    this.streams.attach(this.server);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o600); // root only, like the admin kubeconfig
  }

  /**
   * Serves a connection another listener accepted (an authenticated TLS socket of the HTTPS
   * listener, https.ts): its requests and upgrades take the same path as the unix socket's.
   */
  accept(socket: Duplex): void {
    if (!this.server) throw new Error('the API server is not listening yet');
    this.server.emit('connection', socket);
  }

  async close(): Promise<void> {
    for (const stop of this.watches) stop();
    this.streams.close();
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r) ?? r(undefined));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://kubewire');
      if (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        return void res.end('ok');
      }
      if (url.pathname === '/version') return send(res, 200, VERSION);
      if (serveDiscovery(req, res, url) || serveOpenAPI(req, res, url)) return;
      if (url.pathname === APPLY_PATH) return await this.apply(req, res, url);
      const reviewed = reviewAt(url.pathname);
      if (reviewed) {
        if (req.method !== 'POST') throw new HttpError(405, `${reviewed.plural}.${reviewed.group} only take create (POST)`, 'MethodNotAllowed');
        return send(res, 201, review(reviewed, await readBody(req), requester(req)));
      }
      const p = parseResourcePath(url.pathname);
      if (!p) throw new HttpError(404, `the server could not find the requested resource (${req.method} ${url.pathname})`, 'NotFound');
      if (p.rt.namespaced && !p.namespace && (req.method !== 'GET' || p.name)) throw new HttpError(404, `${p.rt.plural} are namespaced: use /namespaces/NS/${p.rt.plural}`, 'NotFound');
      await this.route(req, res, url, p);
    } catch (e) {
      if (!res.headersSent) sendError(res, e);
      else res.end();
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, p: ParsedPath): Promise<void> {
    const q = url.searchParams;
    const api = this.api;
    const method = req.method ?? 'GET';
    if (!p.name) {
      if (method === 'GET') {
        const opts = { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined };
        // Accept: a Table (kubectl get), PartialObjectMetadata, or the objects; anything else is 406.
        const watching = q.get('watch') === '1' || q.get('watch') === 'true';
        const view = negotiateView(req.headers.accept, !watching);
        const includeObject = includeObjectOf(q.get('includeObject'));
        if (watching) {
          const timeout = q.get('timeoutSeconds');
          return this.watch(req, res, p, Number(q.get('resourceVersion') || 0), { ...opts, bookmarks: q.get('allowWatchBookmarks') === 'true', encode: watchEncoder(view, p.rt.kind, includeObject), timeoutSeconds: timeout ? Number(timeout) : undefined });
        }
        const limit = parseLimit(q.get('limit'));
        const token = q.get('continue');
        if (view.as === 'Object' && !opts.labelSelector && !opts.fieldSelector && !token) {
          // The stored text as it is: a list of 10,000 objects costs no parse and no stringify.
          const list = api.store.listText(p.rt.kind, p.rt.namespaced ? p.namespace : undefined);
          if (!limit || list.items.length <= limit) return sendText(res, 200, `{"kind":"${p.rt.kind}List","apiVersion":"${apiVersionOf(p.rt)}","metadata":{"resourceVersion":"${list.resourceVersion}"},"items":[${list.items.join(',')}]}`);
        }
        const list = api.list(p.rt.kind, p.namespace, opts);
        const answer = listAnswer(view, p.rt, page(list.items, list.resourceVersion, limit, token), includeObject);
        return sendText(res, 200, answer.body, answer.contentType);
      }
      if (method === 'POST') {
        const obj = (await readBody(req)) as KubeObject;
        if (!obj || typeof obj !== 'object') throw new HttpError(400, 'request body must be an object');
        if (obj.kind !== p.rt.kind) throw new HttpError(400, `the body's kind ${JSON.stringify(obj.kind)} does not match the path (${p.rt.kind})`);
        obj.metadata ??= { name: '' };
        if (p.namespace) {
          if (obj.metadata.namespace && obj.metadata.namespace !== p.namespace) throw new HttpError(400, 'the namespace of the provided object does not match the namespace sent on the request');
          obj.metadata.namespace = p.namespace;
        }
        const unknown = checkFields(obj, fieldValidationOf(q.get('fieldValidation')));
        managedOnCreate(obj, q, req.headers['user-agent']);
        const created = q.get('dryRun') === 'All' ? api.dryRun(() => api.create(obj)) : api.create(obj);
        warn(res, [obj], unknown);
        return send(res, 201, created);
      }
      throw new HttpError(405, `${method} is not supported on a collection`, 'MethodNotAllowed');
    }
    const key = keyOfPath(p);
    if (p.subresource === 'log' && p.rt.kind === 'Pod' && method === 'GET') return this.log(res, p, url);
    if (p.subresource === 'scale' && (p.rt.kind === 'Deployment' || p.rt.kind === 'StatefulSet' || p.rt.kind === 'ReplicaSet')) {
      if (method === 'GET') return send(res, 200, scaleOf(api.get(key) as Deployment | StatefulSet));
      type ScaleBody = { spec?: { replicas?: unknown } } | undefined;
      const scale = (method === 'PATCH' ? await patchSubresource(req, scaleOf(api.get(key) as Deployment | StatefulSet), 'Scale', 'scale') : await readBody(req)) as ScaleBody;
      const replicas = scale?.spec?.replicas;
      if (!Number.isInteger(replicas) || (replicas as number) < 0) throw new StoreError('Invalid', `Scale.autoscaling ${JSON.stringify(p.name)} is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`);
      const d = api.mutate<Deployment | StatefulSet>(key, (d) => ({ ...d, spec: { ...d.spec, replicas: replicas as number } }) as Deployment | StatefulSet);
      return send(res, 200, scaleOf(d));
    }
    // GET of /status is the object itself, as upstream answers it (discovery.ts lists get on status).
    if (p.subresource === 'status' && method === 'GET') return send(res, 200, api.get(key));
    if (p.subresource === 'status' && (method === 'PUT' || method === 'PATCH')) {
      // PATCH by its Content-Type too (a strategic merge patch merges conditions by type), over the whole object.
      const current = api.get(key);
      const body = (method === 'PATCH' ? await patchSubresource(req, current, p.rt.kind, 'status') : await readBody(req)) as KubeObject;
      const rv = method === 'PATCH' && body?.metadata?.resourceVersion === current.metadata.resourceVersion ? undefined : body?.metadata?.resourceVersion;
      return send(res, 200, api.updateStatus(key, body?.status, rv));
    }
    // The namespace controller's last step, for one that runs over the REST API (deletion.ts).
    if (p.subresource === 'finalize' && p.rt.kind === 'Namespace' && method === 'PUT') return send(res, 200, finalizeNamespace(api, p.name!, ((await readBody(req)) as KubeObject | undefined)?.metadata?.uid));
    if (p.rt.kind === 'Pod' && STREAM_SUBRESOURCES.includes(p.subresource ?? '')) throw new HttpError(400, 'Upgrade request required');
    if (p.subresource) throw new HttpError(404, `${p.rt.plural}/${p.subresource} is not a subresource kubewire serves`, 'NotFound');
    switch (method) {
      case 'GET': {
        const answer = objectAnswer(negotiateView(req.headers.accept, false), api.get(key), includeObjectOf(q.get('includeObject')));
        return sendText(res, 200, answer.body, answer.contentType);
      }
      case 'PUT': {
        const obj = (await readBody(req)) as KubeObject;
        if (obj?.metadata?.name !== p.name) throw new HttpError(400, `the name of the object (${JSON.stringify(obj?.metadata?.name)}) does not match the name on the URL (${JSON.stringify(p.name)})`);
        if (p.namespace) obj.metadata.namespace = p.namespace;
        const unknown = checkFields(obj, fieldValidationOf(q.get('fieldValidation')));
        const replace = () => replaceObject(api, key, obj, q, req.headers['user-agent']);
        const updated = q.get('dryRun') === 'All' ? api.dryRun(replace) : replace();
        warn(res, [obj], unknown);
        return send(res, 200, updated);
      }
      case 'PATCH': {
        // By Content-Type: merge, strategic merge, JSON patch or server-side apply (writes.ts).
        const r = await patchRequest(api, req, q, p, key, (next) => checkFields(next, fieldValidationOf(q.get('fieldValidation'))));
        warn(res, [], r.checked);
        return send(res, r.created ? 201 : 200, r.object);
      }
      case 'DELETE':
        return send(res, 200, deleteRequest(api, key, await readBody(req), q));
    }
    throw new HttpError(405, `${method} is not supported on ${resourcePath(p.rt, p.namespace, p.name)}`, 'MethodNotAllowed');
  }

  /**
   * kubewire's whole-manifest apply (POST {kind: List, items}): one transaction, so a
   * manifest goes in entirely or not at all, in one round trip (kubectl sends three per
   * object). The answer lists each item's outcome; a failure is a Status naming the item.
   */
  private async apply(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not supported on ${APPLY_PATH}`, 'MethodNotAllowed');
    const body = (await readBody(req, 512)) as { items?: unknown } | undefined;
    if (!body || !Array.isArray(body.items)) throw new HttpError(400, 'the body must be a List: {"kind": "List", "items": [...]}');
    const items = body.items as KubeObject[];
    const unknown = checkItems(items, fieldValidationOf(url.searchParams.get('fieldValidation')));
    const results = this.api.apply(items, url.searchParams.get('dryRun') === 'All');
    warn(res, items, unknown);
    send(res, 200, { kind: 'ApplyResult', apiVersion: 'kubewire.dev/v1', items: results.map((result, i) => ({ kind: items[i]!.kind, namespace: items[i]!.metadata.namespace, name: items[i]!.metadata.name, result })) });
  }

  /**
   * Newline-delimited watch events, as the Kubernetes API streams them. Without a
   * resourceVersion, the current objects come first as ADDED. A watcher that reads slower
   * than the cluster writes gets at most WATCH_BUFFER bytes held for it, then an ERROR event
   * (410 Expired) and the end of its stream: it lists again, and writers never wait for it.
   * With allowWatchBookmarks=true, a BOOKMARK with the current resourceVersion comes every
   * bookmarkMs, so that a watcher resumes from there instead of listing again.
   */
  private watch(req: IncomingMessage, res: ServerResponse, p: ParsedPath, since: number, opts: { labelSelector?: string; fieldSelector?: string; bookmarks?: boolean; encode?: ReturnType<typeof watchEncoder>; timeoutSeconds?: number }): void {
    const api = this.api;
    // Parsed once, up front: a bad selector is a 422 before the stream starts.
    const byLabel = labelSelectorMatcher(opts.labelSelector);
    const byField = fieldSelectorMatcher(opts.fieldSelector);
    const encode = opts.encode ?? ((_type: string, obj: KubeObject, text?: string) => text ?? JSON.stringify(obj));
    let start = since;
    const initial: KubeObject[] = [];
    if (!since) {
      const list = api.list(p.rt.kind, p.namespace, opts);
      initial.push(...list.items);
      start = list.resourceVersion;
    }
    // Registered before the head goes out: a resourceVersion too old to resume from is a plain 410.
    const early: string[] = [];
    let streaming = false;
    const stop = api.watch(p.rt.kind, p.namespace, start, (e) => {
      if (!byLabel(e.object) || !byField(e.object)) return;
      const line = `{"type":"${e.type}","object":${encode(e.type, e.object, e.text)}}\n`;
      if (streaming) send(line);
      else early.push(line);
    });
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders(); // the watcher learns at once that the watch is established
    for (const o of initial) res.write(`{"type":"ADDED","object":${encode('ADDED', o)}}\n`);
    let expired = false;
    // The events of one turn of the event loop go out in one write: a write per event per
    // watcher (a chunk and a TLS record each) held the daemon up while 100 watchers followed
    // 1,000 pods starting (bench:api).
    let pending: string[] = [];
    let pendingBytes = 0;
    const flush = () => {
      if (expired || !pending.length) return;
      res.write(pending.length === 1 ? pending[0] : pending.join(''));
      pending = [];
      pendingBytes = 0;
    };
    const send = (line: string) => {
      if (expired) return;
      // What waits for the watcher counts whether written or still in this turn's batch.
      const behind = res.writableLength + pendingBytes;
      if (behind > this.watchBuffer) {
        expired = true;
        pending = [];
        const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `the watch of ${p.rt.plural} fell ${behind} bytes behind: list again` };
        res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
        return end();
      }
      pendingBytes += line.length;
      if (pending.push(line) === 1) setImmediate(flush);
    };
    streaming = true;
    for (const line of early.splice(0)) send(line);
    const bookmarks = opts.bookmarks ? setInterval(() => send(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: p.rt.kind, apiVersion: apiVersionOf(p.rt), metadata: { resourceVersion: String(api.store.currentRV()) } } })}\n`), this.bookmarkMs) : undefined;
    bookmarks?.unref();
    // timeoutSeconds: the server ends the watch then, cleanly (the client lists or watches again).
    const timer = opts.timeoutSeconds !== undefined && opts.timeoutSeconds > 0 ? setTimeout(() => (flush(), res.end()), opts.timeoutSeconds * 1000) : undefined;
    const end = () => {
      stop();
      clearInterval(bookmarks);
      clearTimeout(timer);
      this.watches.delete(end);
    };
    this.watches.add(end);
    req.on('close', end);
    res.on('close', end);
  }

  private log(res: ServerResponse, p: ParsedPath, url: URL): void {
    if (!this.hooks.podLog) throw new HttpError(404, 'logs are not served', 'NotFound');
    const log = this.hooks.podLog({ namespace: p.namespace!, pod: p.name!, ...parseLogQuery(p.name!, url.searchParams) });
    const { stream, warnings } = 'warnings' in log ? log : { stream: log, warnings: [] };
    if (warnings.length) res.setHeader('warning', warningHeader(warnings));
    res.writeHead(200, { 'content-type': 'text/plain' });
    stream.pipe(res);
    res.on('close', () => stream.destroy());
  }
}
