// A cluster's record: the plan `up` made (lifecycle/cluster.ts), kept in
// <state dir>/<cluster>/cluster.json and read by every process of the cluster.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { clusterDir, stateRoot, SYSTEM_STATE_ROOT } from '../state/paths.ts';
import { PermissionDenied } from '../supervisor/supervisor.ts';

export { clusterDir, stateRoot } from '../state/paths.ts';
import type { ClusterPlan } from './plan.ts';

export class ClusterError extends Error {
  override name = 'ClusterError';
}

export function loadCluster(name: string): ClusterPlan {
  const file = join(clusterDir(name), 'cluster.json');
  if (!existsSync(file)) throw clusterNotFound(name);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterPlan;
}

/** What stat(2) says of a path: there, absent, or not this user's to look at. */
function look(path: string): 'there' | 'absent' | 'denied' {
  try {
    statSync(path);
    return 'there';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EACCES' ? 'denied' : 'absent';
  }
}

/**
 * Why a cluster's record cannot be found: it does not exist, or it is not this user's to read
 * (root's clusters live in /var/lib/kubewire, an ordinary user's in their own state directory),
 * so that `get` never says "does not exist" of a cluster that does.
 */
export function clusterNotFound(name: string, euid = process.geteuid?.() ?? 0): ClusterError | PermissionDenied {
  const dir = clusterDir(name);
  if (look(join(dir, 'cluster.json')) === 'denied' || look(join(dir, 'kernel.json')) === 'denied') {
    return new PermissionDenied(`permission denied: cluster ${JSON.stringify(name)} (${dir}) is not readable by you: run kubewire with sudo`);
  }
  if (euid !== 0 && stateRoot() !== SYSTEM_STATE_ROOT) {
    const roots = look(join(SYSTEM_STATE_ROOT, name));
    if (roots === 'there') return new PermissionDenied(`permission denied: cluster ${JSON.stringify(name)} is root's (${join(SYSTEM_STATE_ROOT, name)}): run kubewire with sudo`);
    if (roots === 'denied') {
      return new PermissionDenied(`permission denied: cluster ${JSON.stringify(name)} is not one of yours (${stateRoot()}), and root's clusters (${SYSTEM_STATE_ROOT}) are not readable by you: sudo kubewire for root's, kubewire up --cluster ${name} for one of your own`);
    }
  }
  return new ClusterError(`cluster ${JSON.stringify(name)} does not exist (kubewire up --cluster ${name} creates it)`);
}

/** Whether the kernel has IPVS: loaded (/proc/net/ip_vs), or a module that could be. */
export function ipvsAvailable(): boolean {
  if (existsSync('/proc/net/ip_vs')) return true;
  try {
    const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    return readFileSync(`/lib/modules/${release}/modules.dep`, 'utf8').includes('/ip_vs.ko');
  } catch {
    return false;
  }
}

