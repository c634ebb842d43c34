// Starting and stopping a cluster's background processes: the daemon (control plane and
// node agents), the workload host and the ingress controllers. All are detached so that the
// CLI can exit; a pid file names each (state/pidfile.ts).

import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { ApiClient } from '../apiserver/client.ts';
import { cliEnv, cliPath, daemonPaths } from '../state/paths.ts';
import { ingressControllerPids } from '../ingress/supervisor.ts';
import { livePid } from '../state/pidfile.ts';

export function daemonPid(cluster: string): number | undefined {
  return livePid(daemonPaths(cluster).pidFile, 'daemon', cluster);
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Starts the daemon and waits until its API answers and every node is Ready with a podCIDR. */
export async function startDaemon(cluster: string, nodes: number, timeoutMs = 30_000): Promise<number> {
  const paths = daemonPaths(cluster);
  const out = openSync(paths.log, 'a');
  const child = spawn(process.execPath, [cliPath(), 'daemon', '--cluster', cluster], { detached: true, stdio: ['ignore', out, out], env: cliEnv() });
  child.unref();
  const client = new ApiClient(paths.socket);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the daemon of cluster ${cluster} exited (code ${child.exitCode}):\n${tail(paths.log, 5)}`);
    if (existsSync(paths.socket)) {
      const ready = await client
        .call<{ items: Array<{ spec?: { podCIDR?: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> }>('GET', '/api/v1/nodes')
        .then((l) => l.items.filter((n) => n.spec?.podCIDR && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length, () => 0);
      if (ready >= nodes) return child.pid!;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the daemon of cluster ${cluster} did not become ready in ${timeoutMs / 1000} s (see ${paths.log})`);
}

/** SIGTERM, then SIGKILL after `graceMs`; returns once the process is gone. */
export async function stopProcess(pid: number, graceMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
    } catch {
      return false;
    }
  };
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    while (alive()) await new Promise((r) => setTimeout(r, 10));
  }
}

/** Stops the daemon, the workload host and the ingress controllers of a cluster (pods' processes are left to `down`). */
export async function stopClusterProcesses(cluster: string): Promise<void> {
  const paths = daemonPaths(cluster);
  const daemon = daemonPid(cluster);
  if (daemon) await stopProcess(daemon, 5000);
  const host = livePid(paths.hostPidFile, 'workload-host', cluster);
  if (host) await stopProcess(host, 2000);
  await Promise.all(ingressControllerPids(cluster).map((pid) => stopProcess(pid, 11_000)));
}
