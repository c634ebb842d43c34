// `kubewire ingress-controller`: one per node, started by the daemon inside the node's
// network namespace (ingress-nginx's hostNetwork DaemonSet). With more than one worker, a
// primary process forks them; each worker is a whole controller (its own watches and route
// table) sharing :80 and :443, which the primary hands out connection by connection. The
// primary serves the workers' metrics, summed, and health on :10254, restarts a worker
// that dies, and on SIGTERM lets the workers drain in-flight requests.

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { ApiClient } from '../client/rest.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import { loadCluster } from '../cluster/cluster.ts';
import { daemonPaths } from '../state/paths.ts';
import { AccessLog } from './accesslog.ts';
import { IngressController } from './controller.ts';
import { IngressMetrics, METRICS_PORT } from './metrics.ts';
import { IngressProxy } from './proxy.ts';
import { emptyTable } from './routes.ts';
import { ingressPaths } from './supervisor.ts';

const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${cluster.isWorker ? `[worker ${cluster.worker!.id}] ` : ''}${l}\n`);

/** /metrics and /healthz on :10254, as ingress-nginx serves them. */
async function serveHealth(metrics: () => Promise<string>, contentType: string, healthy: () => boolean, port = METRICS_PORT, note?: () => string | undefined): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const text = await metrics();
      res.writeHead(200, { 'content-type': contentType });
      return void res.end(text);
    }
    if (path === '/healthz') {
      // Serving the last configuration while the API server is away is healthy (a restart would lose it); the body says so.
      const n = note?.();
      return void res.writeHead(healthy() ? 200 : 503).end(healthy() ? (n ? `ok (${n})` : 'ok') : 'no workers');
    }
    res.writeHead(404).end('404 page not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', resolve);
  });
  return server;
}

/**
 * Workers by default: one per two CPUs (at least one). The controller shares the node's
 * CPUs with its pods; measured on 2 cores with the backend and the clients beside it, a
 * second worker added no throughput and doubled the tail latency: a worker descheduled for
 * a time slice stalls every connection it holds (bench/ingress.ts; README).
 */
export function defaultIngressWorkers(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

export async function runIngressController(clusterName: string, nodeName: string): Promise<void> {
  const plan = loadCluster(clusterName);
  const node = plan.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`node ${nodeName} is not in cluster ${clusterName}`);
  const workers = plan.spec.ingressWorkers || defaultIngressWorkers();
  if (cluster.isPrimary && workers > 1) return runPrimary(workers, `${nodeName} (${node.ip})`);
  return runWorker(clusterName, nodeName);
}

async function runPrimary(workers: number, where: string): Promise<void> {
  const aggregate = new AggregatorRegistry();
  let stopping = false;
  const fork = () => cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return;
    log(`worker ${w.id} exited (${signal ?? code}): starting another`);
    setTimeout(fork, 200);
  });
  for (let i = 0; i < workers; i++) fork();
  const health = await serveHealth(
    () => aggregate.clusterMetrics().catch((e: unknown) => `# metrics unavailable: ${e instanceof Error ? e.message : String(e)}\n`),
    aggregate.contentType,
    () => Object.keys(cluster.workers ?? {}).length > 0,
  );
  log(`ingress controller of ${where}: ${workers} workers, metrics on :${METRICS_PORT}`);
  const stop = () => {
    if (stopping) return;
    stopping = true;
    health.close();
    const alive = Object.values(cluster.workers ?? {});
    if (!alive.length) process.exit(0);
    let left = alive.length;
    for (const w of alive) {
      w!.once('exit', () => --left || process.exit(0));
      w!.process.kill('SIGTERM');
    }
    setTimeout(() => process.exit(0), 12_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function runWorker(clusterName: string, nodeName: string): Promise<void> {
  const plan = loadCluster(clusterName);
  const first = !cluster.isWorker || cluster.worker!.id === 1;
  const paths = ingressPaths(clusterName, nodeName);
  await serveIngress({
    client: new ApiClient(daemonPaths(clusterName).socket),
    nodeName,
    addresses: plan.nodes.map((n) => n.ip),
    // One writer of statuses and Events per cluster; one logger of problems per node.
    leader: first && plan.nodes[0]!.name === nodeName,
    trustForwardedHeaders: plan.spec.ingressUseForwardedHeaders ?? false,
    defaultCertificate: { cert: readFileSync(paths.defaultCert, 'utf8'), key: readFileSync(paths.defaultKey, 'utf8') },
    accessLog: paths.accessLog,
    log: first ? log : () => undefined,
  });
  if (first) log(`ingress controller of ${nodeName} serving :80 and :443`);
}

export interface IngressOptions {
  client: ObjectClient;
  nodeName: string;
  /** What the leader writes into each served Ingress's status.loadBalancer.ingress. */
  addresses: string[];
  /** Writes statuses and Events (one per cluster). */
  leader: boolean;
  trustForwardedHeaders: boolean;
  defaultCertificate: { cert: string; key: string };
  /** The access log's file (ingress-nginx writes it to its stdout: /dev/stdout). */
  accessLog: string;
  ports?: { http?: number; https?: number; healthz?: number };
  /** What /healthz adds (the API server is away), or undefined. */
  healthNote?: () => string | undefined;
  log: (line: string) => void;
}

/** One controller serving HTTP and HTTPS from informers over `client`, until SIGTERM or SIGINT (in-flight requests drain). */
export async function serveIngress(o: IngressOptions): Promise<void> {
  const metrics = new IngressMetrics();
  const accessLog = new AccessLog(o.accessLog);
  const proxy = new IngressProxy(
    { trustForwardedHeaders: o.trustForwardedHeaders, defaultCertificate: o.defaultCertificate, metrics, accessLog },
    { table: emptyTable(), certificates: new Map() },
  );
  const controller = new IngressController({ client: o.client, proxy, metrics, nodeName: o.nodeName, addresses: o.addresses, leader: o.leader, log: o.log });
  await controller.start();
  // Ports open only once the first full configuration is in: never a 404 for want of one.
  await controller.ready;
  await proxy.listen(o.ports?.http ?? 80, o.ports?.https ?? 443);
  let health: Server | undefined;
  if (cluster.isWorker) {
    AggregatorRegistry.setRegistries(metrics.registry);
    new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
    process.on('disconnect', () => process.exit(0)); // the primary is gone (kill -9): so are we
  } else health = await serveHealth(() => metrics.registry.metrics(), metrics.registry.contentType, () => true, o.ports?.healthz, o.healthNote);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    controller.stop();
    health?.close();
    // In-flight requests finish (at most 10 s); idle keep-alive connections close now.
    setTimeout(() => process.exit(0), 10_000).unref();
    void proxy.close().then(() => accessLog.flush()).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
