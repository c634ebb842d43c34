// `kubewire ui`: the page's server, on 127.0.0.1 only. It keeps the cluster's objects with
// informers (list, then watch), turns them into the graph (topology.ts) and streams every
// new graph to the open pages (Server-Sent Events), at most one per 100 ms; it answers a
// click with what the kernel holds for that element (details.ts) and runs `kubewire trace`
// for the page's trace form. The page itself (web/) is bundled by the build.

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { RESOURCES } from '../api/resources.ts';
import type { EndpointSlice, Ingress, KubeObject, Node, Pod, Service } from '../api/types.ts';
import { Informer } from '../apiserver/informer.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import type { ClusterPlan } from '../cluster/plan.ts';
import type { Dataplane } from '../dataplane/port.ts';
import { packageRoot } from '../state/paths.ts';
import { podRecordDirs, podRecordsDir, readPodRecord, type PodRecordBase } from '../node/records.ts';
import { traceOne, TraceError } from '../trace/trace.ts';
import type { Protocol } from '../trace/observe.ts';
import { details } from './details.ts';
import { topology, type GraphElement } from './topology.ts';

export interface UiOptions {
  client: ObjectClient;
  plan: ClusterPlan;
  dp: Dataplane;
  port: number;
  log?: (line: string) => void;
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

  constructor(private readonly o: UiOptions) {
    const log = o.log ?? (() => {});
    const changed = () => this.schedule();
    this.informers = {
      nodes: new Informer<Node>(o.client, rt('Node'), changed, log),
      pods: new Informer<Pod>(o.client, rt('Pod'), changed, log),
      services: new Informer<Service>(o.client, rt('Service'), changed, log),
      slices: new Informer<EndpointSlice>(o.client, rt('EndpointSlice'), changed, log),
      ingresses: new Informer<Ingress>(o.client, rt('Ingress'), changed, log),
    };
    this.server = createServer((req, res) => void this.handle(req, res).catch((e: Error) => send(res, 500, { error: e.message })));
  }

  async start(): Promise<string> {
    await Promise.all(Object.values(this.informers).map((i) => i.start()));
    this.graph = this.build();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      // 127.0.0.1 only: the one address of the machine's own namespace the lab may use.
      this.server.listen(this.o.port, '127.0.0.1', () => resolve());
    });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
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
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/') return file(res, 'index.html', 'text/html; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/app.js') return file(res, 'app.js', 'text/javascript; charset=utf-8');
    if (req.method === 'GET' && url.pathname === '/elk-worker.js') return file(res, 'elk-worker.js', 'text/javascript; charset=utf-8');
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
      const body = JSON.parse((await readBody(req)) || '{}') as { from?: string; to?: string; port?: number; protocol?: Protocol; namespace?: string };
      if (!body.from || !body.to) return send(res, 400, { error: 'a trace needs from and to' });
      try {
        const view = { plan: this.o.plan, pods: [...this.informers.pods.items.values()], services: [...this.informers.services.items.values()], ingresses: [...this.informers.ingresses.items.values()] };
        const trace = await traceOne(this.o.dp, view, { from: body.from, to: body.to, namespace: body.namespace ?? 'default', ...(body.port ? { port: Number(body.port) } : {}), ...(body.protocol ? { protocol: body.protocol } : {}) });
        return send(res, 200, trace);
      } catch (e) {
        return send(res, e instanceof TraceError ? 400 : 500, { error: (e as Error).message });
      }
    }
    send(res, 404, { error: `no ${req.method} ${url.pathname}` });
  }
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
      if (size > 65_536) return reject(new Error('request body over 64 KiB'));
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
