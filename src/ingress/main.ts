// `kubewire ingress-controller`: one per node, started by the daemon inside the node's
// network namespace (ingress-nginx's hostNetwork DaemonSet). Serves :80 and :443, metrics
// and health on :10254, and drains in-flight requests on SIGTERM.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { ApiClient } from '../apiserver/client.ts';
import { loadCluster } from '../cluster/cluster.ts';
import { daemonPaths } from '../state/paths.ts';
import { AccessLog } from './accesslog.ts';
import { IngressController } from './controller.ts';
import { IngressMetrics, METRICS_PORT } from './metrics.ts';
import { IngressProxy } from './proxy.ts';
import { emptyTable } from './routes.ts';
import { ingressPaths } from './supervisor.ts';

export async function runIngressController(cluster: string, nodeName: string): Promise<void> {
  const plan = loadCluster(cluster);
  const node = plan.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`node ${nodeName} is not in cluster ${cluster}`);
  const paths = ingressPaths(cluster, nodeName);
  const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
  const metrics = new IngressMetrics();
  const accessLog = new AccessLog(paths.accessLog);
  const proxy = new IngressProxy(
    {
      trustForwardedHeaders: plan.spec.ingressUseForwardedHeaders ?? false,
      defaultCertificate: { cert: readFileSync(paths.defaultCert, 'utf8'), key: readFileSync(paths.defaultKey, 'utf8') },
      metrics,
      accessLog,
    },
    { table: emptyTable(), contexts: new Map() },
  );
  const controller = new IngressController({
    client: new ApiClient(daemonPaths(cluster).socket),
    proxy,
    metrics,
    nodeName,
    addresses: plan.nodes.map((n) => n.ip),
    leader: plan.nodes[0]!.name === nodeName,
    log,
  });
  await controller.start();
  // Ports open only once the first full configuration is in: never a 404 for want of one.
  await controller.ready;
  await proxy.listen(80, 443);
  const health = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      return void res.end(await metrics.registry.metrics());
    }
    if (path === '/healthz') return void res.writeHead(200).end('ok');
    res.writeHead(404).end('404 page not found\n');
  });
  await new Promise<void>((r) => health.listen(METRICS_PORT, '0.0.0.0', r));
  log(`ingress controller of ${nodeName} serving :80 and :443 (node ${node.ip}), metrics on :${METRICS_PORT}`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    controller.stop();
    health.close();
    // In-flight requests finish (at most 10 s); idle keep-alive connections close now.
    const deadline = setTimeout(() => process.exit(0), 10_000);
    deadline.unref();
    void proxy.close().then(() => accessLog.flush()).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
