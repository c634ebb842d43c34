// A client of the Kubernetes REST API over HTTPS, for programs that run apart from the API
// server (kubewire proxy; later the node agent, the CNI shim, NetworkPolicy): the same
// ObjectClient as the daemon's components use in process, so that an Informer works over
// either. Its watches follow client-go's reflector: a stream that ends (timeoutSeconds, a
// dropped connection, a restarting server) is opened again from the last resourceVersion
// seen (bookmarks included), with backoff while the server is away; only when the server
// says that version is gone (410) does the caller hear `ended`, and list again.

import { Agent, request } from 'node:https';
import { request as plainRequest, Agent as PlainAgent, type IncomingMessage } from 'node:http';
import { resourcePath, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { ApiError } from '../apiserver/client.ts';
import type { ListQuery, ObjectClient, WatchQuery } from '../apiserver/objects.ts';
import type { RestConfig } from './kubeconfig.ts';
import { backoffMs, WatchLines, watchTimeoutSeconds } from './watch.ts';

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
  private readonly agent: Agent | PlainAgent;
  private readonly url: URL;

  constructor(readonly config: RestConfig, private readonly o: RestClientOptions = {}) {
    this.url = new URL(config.server);
    const tls = { ca: config.ca, cert: config.cert, key: config.key, rejectUnauthorized: !config.insecureSkipTLSVerify, servername: config.tlsServerName };
    this.agent = this.url.protocol === 'https:' ? new Agent({ keepAlive: true, ...tls }) : new PlainAgent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
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
      if (data) Object.assign(headers, { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json', 'content-length': Buffer.byteLength(data) });
      if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
      const opts = { protocol: this.url.protocol, hostname: this.url.hostname.replace(/^\[|\]$/g, ''), port: this.url.port, method, path: `${this.url.pathname.replace(/\/$/, '')}${path}`, headers, agent: this.agent };
      const req = (this.url.protocol === 'https:' ? request : plainRequest)(opts as never, (res: IncomingMessage) => {
        this.reached(true);
        resolve(res);
      });
      // A watch waits as long as the server keeps it; anything else gets an answer in time or fails.
      if (!watch) {
        req.setTimeout(this.o.requestTimeoutMs ?? 60_000, () => req.destroy(Object.assign(new Error(`no answer within ${(this.o.requestTimeoutMs ?? 60_000) / 1000} s`), { code: 'ETIMEDOUT' })));
      }
      req.on('error', (e: NodeJS.ErrnoException) => {
        const why = `${e.code && !e.message.includes(e.code) ? `${e.code} ` : ''}${e.message}`;
        const err = e.code && TLS_CODES.test(e.code)
          ? new TransportError(`the API server at ${this.config.server} is not the one the kubeconfig trusts (its certificate does not verify against certificate-authority): ${why}`, e.code)
          : new TransportError(`cannot reach the API server at ${this.config.server}: ${why}`, e.code);
        this.reached(false, err.message);
        reject(err);
      });
      req.end(data);
    });
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

  delete(rt: ResourceType, namespace: string | undefined, name: string, gracePeriodSeconds?: number): Promise<KubeObject> {
    return this.call('DELETE', `${resourcePath(rt, namespace, name)}${gracePeriodSeconds === undefined ? '' : `?gracePeriodSeconds=${gracePeriodSeconds}`}`);
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

function query(q: ListQuery & Record<string, string | undefined>): string {
  const s = new URLSearchParams(Object.entries(q as Record<string, string | undefined>).filter((e): e is [string, string] => !!e[1])).toString();
  return s ? `?${s}` : '';
}
