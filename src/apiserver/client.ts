// A client of the daemon's API over its unix socket, for the CLI and the tests.

import { request, type IncomingMessage } from 'node:http';
import { resourcePath, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import type { ListQuery, ObjectClient, WatchQuery } from './objects.ts';
import { StatusError } from './status.ts';

/** A failed API call, carrying the server's Status. */
export class ApiError extends StatusError {
  override name = 'ApiError';
  constructor(code: number, reason: string, message: string, readonly details?: Record<string, unknown>) {
    super(code, reason, message);
  }
}

export type { ListQuery };

/** The texts of Warning headers (`299 - "text"`), as kubectl reads them. */
export function parseWarnings(values: string[] | undefined): string[] {
  const out: string[] = [];
  for (const v of values ?? []) {
    for (const m of v.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) out.push(m[1]!.replace(/\\(.)/g, '$1'));
  }
  return out;
}

export class ApiClient implements ObjectClient {
  /** Hears the API server's warnings (kubectl prints them on stderr as "Warning: ..."). */
  onWarning?: (text: string) => void;

  constructor(readonly socketPath: string) {}

  private open(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      // kubewire's own patches are JSON merge patches (RFC 7386), said as such: the API dispatches PATCH on the content type.
      const type = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      const req = request({ socketPath: this.socketPath, method, path, headers: data ? { 'content-type': type, 'content-length': Buffer.byteLength(data) } : {} }, resolve);
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new ApiError(503, 'Unavailable', `the cluster's API server is not running (no answer on ${this.socketPath}); kubewire up restarts it`));
        else if (e.code === 'EACCES') reject(new ApiError(403, 'Forbidden', `permission denied on ${this.socketPath}: the API is root-only (use sudo)`));
        else reject(e);
      });
      req.end(data);
    });
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    if (this.onWarning) for (const w of parseWarnings(res.headersDistinct.warning)) this.onWarning(w);
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const parsed = (() => {
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    })();
    if ((res.statusCode ?? 500) >= 400) {
      throw new ApiError(res.statusCode ?? 500, String(parsed?.reason ?? 'Error'), String(parsed?.message ?? (text || `HTTP ${res.statusCode}`)), parsed?.details as Record<string, unknown> | undefined);
    }
    return (parsed ?? text) as T;
  }

  async text(path: string): Promise<string> {
    return this.call<string>('GET', path).then((t) => (typeof t === 'string' ? t : JSON.stringify(t)));
  }

  /** Streams a plain-text response (logs -f) to `write`. */
  async stream(path: string, write: (chunk: Buffer) => void): Promise<void> {
    const res = await this.open('GET', path);
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
      const status = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { reason?: string; message?: string };
      throw new ApiError(res.statusCode ?? 500, status.reason ?? 'Error', status.message ?? `HTTP ${res.statusCode}`);
    }
    for await (const c of res as AsyncIterable<Buffer>) write(c);
  }

  get<T extends KubeObject>(rt: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.call<T>('GET', resourcePath(rt, namespace, name));
  }

  list<T extends KubeObject>(rt: ResourceType, namespace?: string, q: ListQuery = {}): Promise<{ items: T[]; metadata: { resourceVersion: string } }> {
    const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v) as Array<[string, string]>).toString();
    return this.call('GET', `${resourcePath(rt, namespace)}${qs ? `?${qs}` : ''}`);
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
    const q = gracePeriodSeconds === undefined ? '' : `?gracePeriodSeconds=${gracePeriodSeconds}`;
    return this.call('DELETE', `${resourcePath(rt, namespace, name)}${q}`);
  }

  /** Watches a collection; calls `fn` per event until the returned function is called, and `ended` if the server ends the stream. */
  async watch(rt: ResourceType, namespace: string | undefined, q: WatchQuery, fn: (e: { type: string; object: KubeObject }) => void, ended?: () => void): Promise<() => void> {
    const qs = new URLSearchParams({ watch: '1', ...(Object.fromEntries(Object.entries(q).filter(([, v]) => v)) as Record<string, string>) }).toString();
    const res = await this.open('GET', `${resourcePath(rt, namespace)}?${qs}`);
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
      const status = (() => {
        try {
          return JSON.parse(Buffer.concat(chunks).toString('utf8')) as { reason?: string; message?: string };
        } catch {
          return {};
        }
      })();
      throw new ApiError(res.statusCode ?? 500, status.reason ?? 'Error', status.message ?? `watch failed with HTTP ${res.statusCode}`);
    }
    let buffered = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) fn(JSON.parse(line) as { type: string; object: KubeObject });
      }
    });
    let stopped = false;
    res.on('error', () => undefined);
    res.on('close', () => {
      if (!stopped) ended?.();
    });
    return () => {
      stopped = true;
      res.destroy();
    };
  }
}
