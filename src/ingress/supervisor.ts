// The daemon's side of the ingress controllers: one process per node, started inside the
// node's network namespace, detached (it outlives a daemon restart, so Ingress traffic does
// too), named by a pid file that is checked against /proc/PID/cmdline; started again if it
// dies. The default certificate (ingress-nginx's "Fake Certificate", RSA 2048 as upstream makes it) is made once per cluster.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterPlan, NodePlan } from '../cluster/plan.ts';
import { toolPath } from '../dataplane/linux/exec.ts';
import { netnsPath } from '../lab/lab.ts';
import { cliEnv, cliPath, clusterDir } from '../state/paths.ts';
import { livePid } from '../state/pidfile.ts';

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
  execFileSync(toolPath('openssl'), [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650',
    '-subj', '/O=Acme Co/CN=Kubernetes Ingress Controller Fake Certificate', '-addext', 'subjectAltName=DNS:ingress.local',
    '-keyout', p.defaultKey, '-out', p.defaultCert,
  ], { stdio: 'ignore' });
}

function start(cluster: string, node: NodePlan): void {
  const p = ingressPaths(cluster, node.name);
  const out = openSync(p.log, 'a');
  // nsenter execs the controller: its pid is the controller's.
  const child = spawn(toolPath('nsenter'), [`--net=${netnsPath(node.netns)}`, '--', process.execPath, cliPath(), ROLE, '--cluster', cluster, '--node', node.name], { detached: true, stdio: ['ignore', out, out], env: cliEnv() });
  child.unref();
  writeFileSync(p.pidFile, `${child.pid}\n`, { mode: 0o600 });
}

/** Starts the controller of every node that has none running; returns the nodes started. */
export function ensureIngressControllers(cluster: string, plan: ClusterPlan): string[] {
  ensureDefaultCertificate(cluster);
  const started: string[] = [];
  for (const node of plan.nodes) {
    if (ingressPid(cluster, node.name) || !existsSync(netnsPath(node.netns))) continue;
    start(cluster, node);
    started.push(node.name);
  }
  return started;
}
