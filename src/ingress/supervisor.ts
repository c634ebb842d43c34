// The daemon's side of the ingress controllers: one process per node, started inside the
// node's network namespace, detached (it outlives a daemon restart, so Ingress traffic does
// too), named by a pid file that is checked against /proc/PID/cmdline; started again if it
// dies. The default certificate (ingress-nginx's "Fake Certificate", RSA 2048 as upstream makes it) is made once per cluster.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterPlan, NodePlan } from '../cluster/plan.ts';
import { netnsPath } from '../dataplane/port.ts';
import { cliEnv, cliPath, clusterDir } from '../state/paths.ts';
import { livePid } from '../state/pidfile.ts';
import { runQuietSync, startDetached } from '../supervisor/supervisor.ts';

const ROLE = 'ingress-controller';

export function ingressPaths(cluster: string, node: string) {
  const dir = join(clusterDir(cluster), 'ingress');
  return {
    dir,
    pidFile: join(dir, `${node}.pid`),
    log: join(dir, `${node}.log`),
    accessLog: join(dir, `${node}.access.log`),
    defaultCert: join(dir, 'default.crt'),
    defaultKey: join(dir, 'default.key'),
  };
}

/** The controller's pid for `node`, if it runs. */
export function ingressPid(cluster: string, node: string): number | undefined {
  return livePid(ingressPaths(cluster, node).pidFile, ROLE, cluster, node);
}

/** The pids of the cluster's running controllers (found by their pid files). */
export function ingressControllerPids(cluster: string): number[] {
  const dir = ingressPaths(cluster, '').dir;
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pid')) : [];
  return files.map((f) => ingressPid(cluster, f.slice(0, -4))).filter((pid): pid is number => pid !== undefined);
}

export function ensureDefaultCertificate(cluster: string): void {
  const p = ingressPaths(cluster, '');
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  if (existsSync(p.defaultCert) && existsSync(p.defaultKey)) return;
  makeFakeCertificate(p.defaultCert, p.defaultKey);
}

/** ingress-nginx's "Fake Certificate" (what HTTPS without a matching Ingress TLS gets), written to the two files. */
export function makeFakeCertificate(certFile: string, keyFile: string): void {
  runQuietSync([
    'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650',
    '-subj', '/O=Acme Co/CN=Kubernetes Ingress Controller Fake Certificate', '-addext', 'subjectAltName=DNS:ingress.local',
    '-keyout', keyFile, '-out', certFile,
  ]);
}

async function start(cluster: string, node: NodePlan): Promise<void> {
  const p = ingressPaths(cluster, node.name);
  const rec = await startDetached({ argv: [process.execPath, cliPath(), ROLE, '--cluster', cluster, '--node', node.name], env: cliEnv(), netns: netnsPath(node.netns), logFile: p.log });
  writeFileSync(p.pidFile, `${rec.pid}\n`, { mode: 0o600 });
}

/** Starts the controller of every node that has none running; returns the nodes started. */
export async function ensureIngressControllers(cluster: string, plan: ClusterPlan): Promise<string[]> {
  ensureDefaultCertificate(cluster);
  const started: string[] = [];
  for (const node of plan.nodes) {
    if (ingressPid(cluster, node.name) || !existsSync(netnsPath(node.netns))) continue;
    await start(cluster, node);
    started.push(node.name);
  }
  return started;
}
