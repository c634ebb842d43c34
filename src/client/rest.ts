// The one client of the Kubernetes REST API (client-go's RESTClient under the ObjectClient
// seam), for everything apart from the API server: programs with a kubeconfig over HTTPS
// (kubewire proxy, dns, ingress, the node agents), and the CLI, the tests and the benchmarks
// over the daemon's unix socket (ApiClient). The same ObjectClient as the daemon's components
// use in process, so that an Informer works over either. Its watches follow client-go's
// reflector: a stream that ends (timeoutSeconds, a dropped connection, a restarting server)
// is opened again from the last resourceVersion seen (bookmarks included), with backoff while
// the server is away; only when the server says that version is gone (410) does the caller
// hear `ended`, and list again.

import { Agent, request } from 'node:https';
import { request as plainRequest, Agent as PlainAgent, type IncomingMessage } from 'node:http';
import { resourcePath, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import type { DeleteOptions, ListQuery, ObjectClient, WatchQuery } from '../apiserver/objects.ts';
import { StatusError } from '../apiserver/status.ts';
import type { RestConfig } from './kubeconfig.ts';
import { backoffMs, WatchLines, watchTimeoutSeconds } from './watch.ts';

export type { ListQuery };

/** A failed API call, carrying the server's Status. */
export class ApiError extends StatusError {
  override name = 'ApiError';
  constructor(code: number, reason: string, message: string, readonly details?: Record<string, unknown>) {
    super(code, reason, message);
  }
}

/** The texts of Warning headers (`299 - "text"`), as kubectl reads them. */
export function parseWarnings(values: string[] | undefined): string[] {
  const out: string[] = [];
  for (const v of values ?? []) {
    for (const m of v.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) out.push(m[1]!.replace(/\\(.)/g, '$1'));
  }
  return out;
}

/** The request never got an HTTP answer: the server is away, or its certificate is not the one the kubeconfig trusts. */
export class TransportError extends Error {
  override name = 'TransportError';
  /** Retrying cannot help (TLS verification failed): the kubeconfig is wrong. */
  readonly permanent: boolean;
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.permanent = code !== undefined && TLS_CODES.test(code);
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL|EPROTO/;

export interface Reachability {
  /** undefined while the server answers; else since when (Date.now()) and why it does not. */
  since?: number;
  why?: string;
}

export interface RestClientOptions {
  /** Timeout of a request that is not a watch (client-go's default is none; kube-proxy's lists are small). */
  requestTimeoutMs?: number;
  userAgent?: string;
}

export class RestClient implements ObjectClient {
  readonly reachability: Reachability = {};
  /** Hears each change of reachability (the server went away, or answers again). */
  onReachability?: (r: Reachability) => void;
  /** Hears the API server's warnings (kubectl prints them on stderr as "Warning: ..."). */
  onWarning?: (text: string) => void;
  private readonly agent?: Agent | PlainAgent;
  private readonly url: URL;
  /** The daemon's unix socket, when that is the way in (server is then http://localhost). */
  readonly socketPath?: string;

  /** Where the server is and how to authenticate (over the socket: http://localhost, the socket's permissions). */
  readonly config: RestConfig;

  constructor(target: RestConfig | { socketPath: string }, private readonly o: RestClientOptions = {}) {
    if ('socketPath' in target) {
      this.socketPath = target.socketPath;
      this.config = { server: 'http://localhost', source: `the API socket ${target.socketPath}` };
      this.url = new URL(this.config.server);
      return;
    }
    const config = (this.config = target);
    this.url = new URL(config.server);
    const tls = { ca: config.ca, cert: config.cert, key: config.key, rejectUnauthorized: !config.insecureSkipTLSVerify, servername: config.tlsServerName };
    this.agent = this.url.protocol === 'https:' ? new Agent({ keepAlive: true, ...tls }) : new PlainAgent({ keepAlive: true });
  }

  /** Where the server is, for messages. */
  get server(): string {
    return this.socketPath ? `unix:${this.socketPath}` : this.config.server;
  }

  close(): void {
    this.agent?.destroy();
  }

  private reached(ok: boolean, why?: string): void {
    const r = this.reachability;
    if (ok === (r.since === undefined)) return;
    if (ok) {
      r.since = undefined;
      r.why = undefined;
    } else {
      r.since = Date.now();
      r.why = why;
    }
    this.onReachability?.({ ...r });
  }

  private open(method: string, path: string, body?: unknown, watch = false): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = { accept: 'application/json', 'user-agent': this.o.userAgent ?? 'kubewire' };
      // kubewire's own patches are JSON merge patches (RFC 7386), said as such: the API dispatches PATCH on the content type.
      if (data) Object.assign(headers, { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json', 'content-length': Buffer.byteLength(data) });
      if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
      const where = this.socketPath
        ? { socketPath: this.socketPath, path }
        : { protocol: this.url.protocol, hostname: this.url.hostname.replace(/^\[|\]$/g, ''), port: this.url.port, path: `${this.url.pathname.replace(/\/$/, '')}${path}`, agent: this.agent };
      const opts = { ...where, method, headers };
      const req = (this.url.protocol === 'https:' ? request : plainRequest)(opts as never, (res: IncomingMessage) => {
        this.reached(true);
        if (this.onWarning) for (const w of parseWarnings(res.headersDistinct.warning)) this.onWarning(w);
        resolve(res);
      });
      // A watch waits as long as the server keeps it; anything else gets an answer in time or fails.
      if (!watch && (!this.socketPath || this.o.requestTimeoutMs)) {
        req.setTimeout(this.o.requestTimeoutMs ?? 60_000, () => req.destroy(Object.assign(new Error(`no answer within ${(this.o.requestTimeoutMs ?? 60_000) / 1000} s`), { code: 'ETIMEDOUT' })));
      }
      req.on('error', (e: NodeJS.ErrnoException) => {
        const err = this.transportError(e);
        if (err instanceof TransportError) this.reached(false, err.message);
        reject(err);
      });
      req.end(data);
    });
  }

  /** Why a request got no answer: over the socket in the CLI's words (the daemon is not running, root only), else a TransportError. */
  private transportError(e: NodeJS.ErrnoException): Error {
    if (this.socketPath) {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') return new ApiError(503, 'Unavailable', `the cluster's API server is not running (no answer on ${this.socketPath}); kubewire up restarts it`);
      if (e.code === 'EACCES') return new ApiError(403, 'Forbidden', `permission denied on ${this.socketPath}: the API is root-only (use sudo)`);
      return e;
    }
    const why = `${e.code && !e.message.includes(e.code) ? `${e.code} ` : ''}${e.message}`;
    return e.code && TLS_CODES.test(e.code)
      ? new TransportError(`the API server at ${this.server} is not the one the kubeconfig trusts (its certificate does not verify against certificate-authority): ${why}`, e.code)
      : new TransportError(`cannot reach the API server at ${this.server}: ${why}`, e.code);
  }

  private static async body(res: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The Status of a failed answer, as an ApiError (kube-apiserver's reason and message; the HTTP status otherwise). */
  private static failure(res: IncomingMessage, text: string): ApiError {
    let s: { reason?: string; message?: string; details?: Record<string, unknown> } = {};
    try {
      s = JSON.parse(text) as typeof s;
    } catch {
      // not a Status (a proxy in between): the status line says it
    }
    const code = res.statusCode ?? 500;
    return new ApiError(code, s.reason ?? (code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : 'Error'), s.message ?? (text.trim() || `HTTP ${code} ${res.statusMessage ?? ''}`.trim()), s.details);
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    const text = await RestClient.body(res);
    if ((res.statusCode ?? 500) >= 400) throw RestClient.failure(res, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(500, 'InternalError', `${method} ${path}: the answer is not JSON`);
    }
  }

  /** GET of a plain-text answer (/healthz, /version as text). */
  async text(path: string): Promise<string> {
    const res = await this.open('GET', path);
    const text = await RestClient.body(res);
    if ((res.statusCode ?? 500) >= 400) throw RestClient.failure(res, text);
    return text;
  }

  /** Streams a plain-text answer (logs -f) to `write`. */
  async stream(path: string, write: (chunk: Buffer) => void): Promise<void> {
    const res = await this.open('GET', path, undefined, true);
    if ((res.statusCode ?? 500) >= 400) throw RestClient.failure(res, await RestClient.body(res));
    for await (const c of res as AsyncIterable<Buffer>) write(c);
  }

  get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.call<T>('GET', resourcePath(rt, namespace, name));
  }

  list<T extends KubeObject>(rt: ResourceType, namespace?: string, q: ListQuery = {}): Promise<{ items: T[]; metadata: { resourceVersion: string } }> {
    return this.call('GET', `${resourcePath(rt, namespace)}${query({ ...q })}`);
  }

  create<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    return this.call<T>('POST', resourcePath(rt, obj.metadata.namespace), obj);
  }

  update<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    return this.call<T>('PUT', resourcePath(rt, obj.metadata.namespace, obj.metadata.name), obj);
  }

  updateStatus<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    return this.call<T>('PUT', `${resourcePath(rt, obj.metadata.namespace, obj.metadata.name)}/status`, obj);
  }

  delete(rt: ResourceType, namespace: string | undefined, name: string, opts?: number | DeleteOptions): Promise<KubeObject> {
    if (typeof opts === 'number' || opts?.gracePeriodSeconds !== undefined && !opts.propagationPolicy && !opts.preconditions) {
      const grace = typeof opts === 'number' ? opts : opts!.gracePeriodSeconds;
      return this.call('DELETE', `${resourcePath(rt, namespace, name)}${grace === undefined ? '' : `?gracePeriodSeconds=${grace}`}`);
    }
    return this.call('DELETE', resourcePath(rt, namespace, name), opts ? { apiVersion: 'v1', kind: 'DeleteOptions', ...opts } : undefined);
  }

  finalizeNamespace(name: string, uid?: string): Promise<KubeObject> {
    return this.call('PUT', resourcePath(NAMESPACES, undefined, name, 'finalize'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(uid ? { uid } : {}) } });
  }

  /**
   * Events after `q.resourceVersion` until the returned function is called. The first
   * connection must succeed (else this throws, and the caller retries); later ones are the
   * client's business. `ended`: the server can no longer resume (410 Gone, or another error
   * Status): list again.
   */
  async watch(rt: ResourceType, namespace: string | undefined, q: WatchQuery, fn: (e: { type: string; object: KubeObject }) => void, ended?: () => void): Promise<() => void> {
    let rv = q.resourceVersion;
    let stopped = false;
    let attempt = 0;
    let current: IncomingMessage | undefined;
    let timer: NodeJS.Timeout | undefined;
    const open = async (): Promise<IncomingMessage> => {
      const path = `${resourcePath(rt, namespace)}${query({ ...q, resourceVersion: rv, watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(watchTimeoutSeconds()) })}`;
      const res = await this.open('GET', path, undefined, true);
      if ((res.statusCode ?? 500) >= 400) throw RestClient.failure(res, await RestClient.body(res));
      return res;
    };
    const finish = () => {
      stopped = true;
      ended?.();
    };
    const follow = (res: IncomingMessage) => {
      current = res;
      attempt = 0;
      let clean = false;
      let gone = false;
      const lines = new WatchLines();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (gone) return;
        for (const e of lines.push(chunk)) {
          if (e.type === 'ERROR') {
            gone = true; // 410 Expired/Gone or another failure: the server cannot go on from here
            res.destroy();
            return;
          }
          rv = e.object.metadata?.resourceVersion ?? rv;
          if (e.type !== 'BOOKMARK') fn(e);
        }
      });
      res.on('end', () => (clean = !lines.broken));
      res.on('error', () => undefined);
      res.on('close', () => {
        current = undefined;
        if (stopped) return;
        if (gone || lines.broken) return finish();
        // The server ended it (timeoutSeconds): again at once; a broken stream (the server went): after a backoff.
        if (!clean) this.reached(false, `the watch of ${rt.plural} broke off`);
        again(clean ? 0 : backoffMs(attempt++));
      });
    };
    const again = (delay: number) => {
      if (stopped) return;
      timer = setTimeout(async () => {
        timer = undefined;
        if (stopped) return;
        try {
          const res = await open();
          if (stopped) res.destroy();
          else follow(res);
        } catch (e) {
          if (e instanceof ApiError) return finish(); // 410: list again; 401/403/5xx: the caller's list says why
          again(backoffMs(attempt++));
        }
      }, delay);
    };
    follow(await open());
    return () => {
      stopped = true;
      clearTimeout(timer);
      current?.destroy();
    };
  }
}

const NAMESPACES = { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', shortNames: ['ns'], namespaced: false } satisfies ResourceType;

/** A client of a kubewire daemon's API over its unix socket (the CLI's, the tests', the benchmarks'). */
export class ApiClient extends RestClient {
  constructor(socketPath: string, o: RestClientOptions = {}) {
    super({ socketPath }, o);
  }
}

function query(q: ListQuery & Record<string, string | undefined>): string {
  const s = new URLSearchParams(Object.entries(q as Record<string, string | undefined>).filter((e): e is [string, string] => !!e[1])).toString();
  return s ? `?${s}` : '';
}
