// Starting and stopping a cluster's background processes: the daemon (control plane and
// node agents), the nodes' workload hosts and the ingress controllers. All are detached so that the
// CLI can exit; a pid file names each (state/pidfile.ts).

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../client/rest.ts';
import { becomeDaemon, becomesDaemon, ownCmdline } from './here.ts';
import { cliEnv, cliPath, daemonPaths } from '../state/paths.ts';
import { ingressControllerPids } from '../ingress/supervisor.ts';
import { nodeComponentPids } from './components.ts';
import { networkAvailable } from '../controllers/scheduler.ts';
import type { Node } from '../api/types.ts';
import { livePid } from '../state/pidfile.ts';
import { startDetached, stopProcess, type ExitStatus } from '../supervisor/supervisor.ts';
import { nodeHostPaths } from '../workloads/client.ts';

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

/** What a starting daemon is doing, written as it goes (`kubewire up` shows it and waits while it changes). */
export interface DaemonProgress {
  pid: number;
  phase: string;
  at: number;
}

/** The phases a daemon has written so far (one JSON line each), oldest first. */
export function readProgress(file: string): DaemonProgress[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as DaemonProgress);
  } catch {
    return [];
  }
}

/**
 * Starts the daemon and waits until its API answers and every node is Ready with a
 * podCIDR, for as long as the daemon makes progress (a large store takes a while to load):
 * each phase it reaches is reported; `stallMs` without a new one, or its exit, is a failure,
 * and then the daemon this call started is stopped, not left running.
 */
export async function startDaemon(cluster: string, nodes: number, progress: (line: string) => void = () => {}, stallMs = 60_000): Promise<number> {
  const paths = daemonPaths(cluster);
  rmSync(paths.progress, { force: true });
  // `up` in a fresh kernel of its own goes on as the daemon (here.ts): one Node start fewer there.
  if (becomesDaemon(cluster, process.env, ownCmdline())) return becomeDaemon(cluster, nodes, progress, stallMs);
  // --expose-gc: the daemon gives a burst's memory back once it is over (memory.ts).
  // KUBEWIRE_DAEMON_NODE_ARGS adds Node flags NODE_OPTIONS refuses (--cpu-prof, for profiles).
  const nodeArgs = ['--expose-gc', ...(process.env.KUBEWIRE_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  let exited: ExitStatus | undefined;
  const child = await startDetached({ argv: [process.execPath, ...nodeArgs, cliPath(), 'daemon', '--cluster', cluster], env: cliEnv(), logFile: paths.log }, (status) => (exited = status));
  const client = new ApiClient(paths.socket);
  let last = Date.now();
  let phase = '';
  let seen = 0;
  const fail = async (why: string): Promise<never> => {
    await stopProcess(child, 5000);
    throw new Error(`the daemon of cluster ${cluster} ${why}; it was stopped (see ${paths.log}):\n${tail(paths.log, 5)}`);
  };
  for (;;) {
    if (exited) throw new Error(`the daemon of cluster ${cluster} exited (${exited.code ?? exited.signal}):\n${tail(paths.log, 5)}`);
    const phases = readProgress(paths.progress).filter((p) => p.pid === child.pid);
    for (const p of phases.slice(seen)) {
      phase = p.phase;
      last = Date.now();
      progress(phase);
    }
    seen = phases.length;
    if (existsSync(paths.socket)) {
      const ready = await client
        .call<{ items: Node[] }>('GET', '/api/v1/nodes')
        .then((l) => l.items.filter((n) => networkAvailable(n) && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length, () => 0);
      if (ready >= nodes) return child.pid;
    }
    if (Date.now() - last > stallMs) await fail(`made no progress for ${stallMs / 1000} s${phase ? ` (last: ${phase})` : ''}`);
    // In a kernel of its own (one slow CPU) every look costs the daemon it waits for: look less often.
    await new Promise((r) => setTimeout(r, process.env.KUBEWIRE_GUEST ? 100 : 20));
  }
}

/** kubewire's background roles, as their command lines name them. */
const ROLES = ['daemon', 'workload-host', 'ingress-controller'] as const;
type Role = (typeof ROLES)[number];

/** The pid and role of a kubewire process of `cluster` from its argv, if it is one. */
export function roleOf(argv: string[], cluster: string): Role | undefined {
  const cli = argv.findIndex((a, i) => i > 0 && a.endsWith('kubewire.js')); // node's own flags may come first
  if (cli < 1 || argv.slice(1, cli).some((a) => !a.startsWith('-'))) return undefined;
  const at = argv.indexOf('--cluster');
  if (at < 0 || argv[at + 1] !== cluster) return undefined;
  return ROLES.find((r) => argv[cli + 1] === r);
}

/**
 * Every process of the cluster this machine runs, found by its command line whatever the
 * pid files say: a daemon that never became ready writes none, and a state directory may
 * be gone. Ingress controllers' workers carry their primary's command line.
 */
export function clusterProcesses(cluster: string): Array<{ pid: number; role: Role }> {
  const out: Array<{ pid: number; role: Role }> = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const role = roleOf(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'), cluster);
      if (role) out.push({ pid, role });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Stops every daemon of the cluster (the one its pid file names and any other found running). */
export async function stopClusterDaemons(cluster: string): Promise<void> {
  const pids = new Set([...clusterProcesses(cluster).filter((p) => p.role === 'daemon').map((p) => p.pid), daemonPid(cluster) ?? 0]);
  pids.delete(0);
  await Promise.all([...pids].map((pid) => stopProcess(pid, 5000)));
}

function nodeDirs(clusterDir: string): string[] {
  try {
    return readdirSync(join(clusterDir, 'nodes'));
  } catch {
    return [];
  }
}

/** Stops the daemon, the workload hosts and the ingress controllers of a cluster (pods' processes are left to `down`). */
export async function stopClusterProcesses(cluster: string): Promise<void> {
  const found = clusterProcesses(cluster);
  const paths = daemonPaths(cluster);
  const pids = (role: Role, pidFile?: number) => [...new Set([...found.filter((p) => p.role === role).map((p) => p.pid), ...(pidFile ? [pidFile] : [])])];
  // The daemons first: they would start the others again.
  await stopClusterDaemons(cluster);
  // The nodes' workload hosts (and a cluster-wide one an older kubewire started).
  const hostPidFiles = [paths.hostPidFile, ...nodeDirs(paths.dir).map((node) => nodeHostPaths(paths.dir, node).pidFile)];
  const hosts = [...new Set(hostPidFiles.flatMap((f) => pids('workload-host', livePid(f, 'workload-host', cluster))))];
  await Promise.all([
    ...hosts.map((pid) => stopProcess(pid, 2000)),
    ...[...new Set([...pids('ingress-controller'), ...ingressControllerPids(cluster)])].map((pid) => stopProcess(pid, 11_000)),
    ...nodeComponentPids(cluster).map((pid) => stopProcess(pid, 11_000)),
  ]);
}
