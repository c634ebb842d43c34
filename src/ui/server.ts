// `kubewire ui`: the page's server, on 127.0.0.1 only. It keeps the cluster's objects with
// informers (list, then watch), turns them into the graph (topology.ts) and streams every
// new graph to the open pages (Server-Sent Events), at most one per 100 ms; it answers a
// click with what the kernel holds for that element (details.ts) and runs `kubewire trace`
// for the page's trace form. The page itself (web/) is bundled by the build. It answers only
// requests that hold its token and name it by its own host and origin (guard.ts), and checks
// every request body before it acts on it (a bad one: 400, never 500).

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { RESOURCES } from '../api/resources.ts';
import type { EndpointSlice, Ingress, KubeObject, NetworkPolicy, Node, Pod, Service } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import type { ClusterPlan } from '../cluster/plan.ts';
import type { Dataplane } from '../dataplane/port.ts';
import { packageRoot } from '../state/paths.ts';
import { podRecordDirs, podRecordsDir, readPodRecord, type PodRecordBase } from '../node/records.ts';
import { parseTraceRequest, traceOne, TraceError, type TraceRequest } from '../trace/trace.ts';
import type { Protocol } from '../trace/observe.ts';
import { details } from './details.ts';
import { admit, cookieName, type Guard } from './guard.ts';
import { topology, type GraphElement } from './topology.ts';

export interface UiOptions {
  client: ObjectClient;
  plan: ClusterPlan;
  dp: Dataplane;
  port: number;
  /** The address to listen on: 127.0.0.1 unless told otherwise. */
  address?: string;
  /** The token a request must hold (a random one unless given: tests). */
  token?: string;
  log?: (line: string) => void;
}

/** A request the server refuses, with the status it answers. */
class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const rt = (kind: string) => RESOURCES.find((r) => r.kind === kind)!;


export class UiServer {
  private readonly informers;
  private readonly server: Server;
  private readonly streams = new Set<ServerResponse>();
  private graph: GraphElement[] = [];
  /** Pod records with their veth pair, read once: every rebuild lists the folders only. */
  private readonly records = new Map<string, PodRecordBase>();
  private pending?: NodeJS.Timeout;
  private lastSent = 0;
  private readonly guard: Guard;

  constructor(private readonly o: UiOptions) {
    this.guard = { token: o.token ?? randomBytes(24).toString('base64url'), port: o.port, address: o.address ?? '127.0.0.1' };
    const log = o.log ?? (() => {});
    const changed = () => this.schedule();
    this.informers = {
      nodes: new Informer<Node>(o.client, rt('Node'), changed, log),
      pods: new Informer<Pod>(o.client, rt('Pod'), changed, log),
      services: new Informer<Service>(o.client, rt('Service'), changed, log),
      slices: new Informer<EndpointSlice>(o.client, rt('EndpointSlice'), changed, log),
      ingresses: new Informer<Ingress>(o.client, rt('Ingress'), changed, log),
      policies: new Informer<NetworkPolicy>(o.client, rt('NetworkPolicy'), changed, log),
    };
    this.server = createServer((req, res) =>
      void this.handle(req, res).catch((e: Error) => {
        if (e instanceof Refused) return send(res, e.status, { error: e.message });
        log(`ui: ${req.method} ${req.url?.replace(/token=[^&]*/, 'token=…')}: ${e.stack ?? e.message}`);
        send(res, 500, { error: e.message });
      }),
    );
  }

  /** Starts serving; the URL to open, with its token. */
  async start(): Promise<string> {
    await Promise.all(Object.values(this.informers).map((i) => i.start()));
    this.graph = this.build();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      // 127.0.0.1 by default: the one address of the machine's own namespace the lab may use.
      this.server.listen(this.o.port, this.guard.address, () => resolve());
    });
    this.guard.port = (this.server.address() as AddressInfo).port;
    const a = this.guard.address;
    const host = a === '0.0.0.0' || a === '::' ? '127.0.0.1' : a.includes(':') ? `[${a}]` : a;
    return `http://${host}:${this.guard.port}/?token=${this.guard.token}`;
  }

  async stop(): Promise<void> {
    clearTimeout(this.pending);
    for (const i of Object.values(this.informers)) i.stop();
    for (const s of this.streams) s.end();
    await new Promise((r) => this.server.close(r));
  }

  private build(): GraphElement[] {
    const { plan } = this.o;
    const items = <T extends KubeObject>(i: Informer<T>) => [...i.items.values()];
    const nodes = items(this.informers.nodes);
    return topology({
      plan,
      nodes,
      pods: items(this.informers.pods),
      services: items(this.informers.services),
      slices: items(this.informers.slices),
      ingresses: items(this.informers.ingresses),
      policies: items(this.informers.policies),
      attachments: new Map(nodes.map((n) => [n.metadata.name, this.attachments(n.metadata.name)])),
    });
  }

  /** A node's pods' records; one is kept once it names its veth pair (written when the sandbox is made, it does not change after). */
  private attachments(node: string): PodRecordBase[] {
    const dir = podRecordsDir(this.o.plan.spec.name, node);
    const listed = new Set(podRecordDirs(dir).map((d) => `${node}/${d}`));
    for (const key of this.records.keys()) if (key.startsWith(`${node}/`) && !listed.has(key)) this.records.delete(key); // pods gone
    return [...listed].flatMap((key) => {
      const known = this.records.get(key);
      if (known) return [known];
      const rec = readPodRecord(dir, key.slice(node.length + 1));
      if (rec?.hostVeth) this.records.set(key, rec);
      return rec ? [rec] : [];
    });
  }

  /** A change: the new graph goes out at once, or 100 ms after the last one (a burst of changes is one update). */
  private schedule(): void {
    if (this.pending) return;
    const wait = Math.max(0, this.lastSent + 100 - Date.now());
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.lastSent = Date.now();
      this.graph = this.build();
      const message = `data: ${JSON.stringify({ elements: this.graph })}\n\n`;
      for (const s of this.streams) s.write(message);
    }, wait);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      throw new Refused(400, `bad request target ${JSON.stringify(req.url)}`);
    }
    const refused = admit({ method: req.method ?? 'GET', path: url.pathname, queryToken: url.searchParams.get('token'), headers: req.headers }, this.guard);
    if (refused) {
      if (req.method === 'GET' && url.pathname === '/') return page(res, refused.status, refused.message);
      return send(res, refused.status, { error: refused.message });
    }
    // The URL's token goes into a cookie and out of the address bar (and of any Referer).
    if (req.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
      url.searchParams.delete('token');
      res.writeHead(303, { location: `/${url.search}`, 'set-cookie': `${cookieName(this.guard.port)}=${this.guard.token}; HttpOnly; SameSite=Strict; Path=/`, 'cache-control': 'no-store' });
      return void res.end();
    }
    if (req.method === 'GET' && url.pathname === '/') return file(res, 'index.html', 'text/html; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/app.js') return file(res, 'app.js', 'text/javascript; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/api/topology') return send(res, 200, { cluster: this.o.plan.spec.name, elements: this.graph });
    if (req.method === 'GET' && url.pathname === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`data: ${JSON.stringify({ elements: this.graph })}\n\n`);
      this.streams.add(res);
      req.once('close', () => this.streams.delete(res));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/api/details') {
      const id = url.searchParams.get('id') ?? '';
      const element = this.graph.find((e) => e.data.id === id);
      if (!element) return send(res, 404, { error: `no element ${JSON.stringify(id)} in the graph` });
      return send(res, 200, { id, lines: await details(this.o, element, { pods: [...this.informers.pods.items.values()], services: [...this.informers.services.items.values()], slices: [...this.informers.slices.items.values()], ingresses: [...this.informers.ingresses.items.values()] }) });
    }
    if (req.method === 'POST' && url.pathname === '/api/trace') {
      if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) throw new Refused(415, 'a trace request is JSON: send content-type: application/json');
      const body = traceRequest(await readBody(req));
      try {
        // The trace's own checks, the CLI's: a bad address, port or name is one line naming it (400).
        const request = parseTraceRequest(body);
        const view = { plan: this.o.plan, pods: [...this.informers.pods.items.values()], services: [...this.informers.services.items.values()], ingresses: [...this.informers.ingresses.items.values()] };
        const trace = await traceOne(this.o.dp, view, request);
        return send(res, 200, trace);
      } catch (e) {
        // A page served by an ordinary user may not trace (it writes under /run, marks packets): 403, as the CLI's one line.
        const denied = ['EACCES', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '');
        return send(res, e instanceof TraceError ? 400 : denied ? 403 : 500, { error: denied ? `permission denied: ${(e as Error).message}: tracing needs root` : (e as Error).message });
      }
    }
    send(res, 404, { error: `no ${req.method} ${url.pathname}` });
  }
}

/** On every answer: no framing (clickjacking), no sniffing, no Referer, scripts and styles from the page itself only. */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'icmp'];
const FIELDS = new Set(['from', 'to', 'port', 'protocol', 'namespace', 'node']);

/** A trace request's body, checked: a JSON object with from and to, and the options the CLI takes. */
export function traceRequest(text: string): TraceRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new Refused(400, `the request body is not JSON: ${(e as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Refused(400, 'a trace request is a JSON object: {"from": "pod/client", "to": "service/web"}');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !FIELDS.has(k));
  if (unknown.length) throw new Refused(400, `unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}: a trace request has ${[...FIELDS].join(', ')}`);
  const text_ = (k: string, required: boolean): string | undefined => {
    const v = b[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || !v.trim()) throw new Refused(400, `${k}: ${required ? 'required, ' : ''}a non-empty string${v === undefined ? '' : `, not ${JSON.stringify(v)}`}`);
    if (v.length > 2048) throw new Refused(400, `${k}: at most 2048 characters`);
    return v.trim();
  };
  const from = text_('from', true)!;
  const to = text_('to', true)!;
  const namespace = text_('namespace', false) ?? 'default';
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) throw new Refused(400, `namespace ${JSON.stringify(namespace)}: a DNS label (lower case letters, digits, -)`);
  const node = text_('node', false);
  const req: TraceRequest = { from, to, namespace, ...(node ? { node } : {}) };
  if (b.port !== undefined && b.port !== null && b.port !== '') {
    const port = typeof b.port === 'string' ? Number(b.port) : b.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Refused(400, `port ${JSON.stringify(b.port)}: a port number, 1 to 65535`);
    req.port = port;
  }
  if (b.protocol !== undefined && b.protocol !== null && b.protocol !== '') {
    if (!PROTOCOLS.includes(b.protocol as Protocol)) throw new Refused(400, `protocol ${JSON.stringify(b.protocol)}: one of ${PROTOCOLS.join(', ')}`);
    req.protocol = b.protocol as Protocol;
  }
  return req;
}

/** A refusal of the page itself, as a page (a person reads it). */
function page(res: ServerResponse, status: number, message: string): void {
  const escaped = message.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><meta charset="utf-8"><title>kubewire ui: ${status}</title><p>${escaped}</p>\n`);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** The page's files, as the build wrote them (dist/ui/). */
function file(res: ServerResponse, name: string, type: string): void {
  const path = join(packageRoot(), 'dist', 'ui', name);
  if (!existsSync(path)) return send(res, 500, { error: `${path} is missing: run npm run build` });
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(readFileSync(path));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 65_536) return reject(new Refused(413, 'request body over 64 KiB')); // the rest is read and dropped
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
