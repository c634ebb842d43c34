// Where kubewire's own files are, wherever it runs from (dist bundle, sources under tsx).

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The directory holding kubewire's package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin', 'kubewire.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the kubewire package directory');
    dir = up;
  }
  return (root = dir);
}

/** kubewire's own version, from its package.json. */
export function kubewireVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The CLI entry point, for starting kubewire's own background processes. */
export function cliPath(): string {
  return join(packageRoot(), 'bin', 'kubewire.js');
}

/** The environment for a kubewire process this one starts: without NODE_EXTRA_CA_CERTS, which costs ~50 ms per start (none of them makes TLS calls to verify). */
export function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** Where root keeps its clusters (as /var/lib/kubelet): an ordinary user's are their own. */
export const SYSTEM_STATE_ROOT = '/var/lib/kubewire';

/**
 * Where clusters are recorded: KUBEWIRE_STATE_DIR, else /var/lib/kubewire for root, else the
 * user's own ($XDG_STATE_HOME/kubewire, ~/.local/state/kubewire as the XDG spec defaults it),
 * where a cluster in its own kernel runs with no privilege at all.
 */
export function stateRoot(env: NodeJS.ProcessEnv = process.env, euid = process.geteuid?.() ?? 0): string {
  if (env.KUBEWIRE_STATE_DIR) return env.KUBEWIRE_STATE_DIR;
  if (euid === 0) return SYSTEM_STATE_ROOT;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'kubewire');
}

/** A cluster's directory: its plan, store, sockets, node files, pods' records and logs. */
export function clusterDir(name: string): string {
  return join(stateRoot(), name);
}

export interface DaemonPaths {
  dir: string;
  socket: string;
  store: string;
  pidFile: string;
  log: string;
  /** What the daemon is doing while it starts (daemon/process.ts). */
  progress: string;
  hostSocket: string;
  hostPidFile: string;
  hostLog: string;
}

export function daemonPaths(cluster: string): DaemonPaths {
  const dir = clusterDir(cluster);
  return {
    dir,
    socket: join(dir, 'api.sock'),
    store: join(dir, 'store.db'),
    pidFile: join(dir, 'daemon.pid'),
    log: join(dir, 'daemon.log'),
    progress: join(dir, 'daemon.progress'),
    hostSocket: join(dir, 'workloads.sock'),
    hostPidFile: join(dir, 'workloads.pid'),
    hostLog: join(dir, 'workloads.log'),
  };
}

/** A cluster that runs in a kernel of its own (`up --kernel uml`): what the host keeps of it. */
export interface KernelPaths {
  dir: string;
  /** Which kernel and how it was started (its presence marks the cluster as one in its own kernel). */
  record: string;
  /** The kernel host's socket: each connection runs one kubewire command in the guest. */
  socket: string;
  /** The kernel's console and the kernel host's own messages. */
  log: string;
  /** The kernel host process and the kernel process (ProcessRecords). */
  hostPidFile: string;
  kernelPidFile: string;
  /** The guest's init and the module tree's link. */
  bootDir: string;
}

export function kernelPaths(cluster: string): KernelPaths {
  const dir = clusterDir(cluster);
  return { dir, record: join(dir, 'kernel.json'), socket: join(dir, 'kernel.sock'), log: join(dir, 'kernel.log'), hostPidFile: join(dir, 'kernel-host.pid'), kernelPidFile: join(dir, 'kernel.pid'), bootDir: join(dir, 'boot') };
}
