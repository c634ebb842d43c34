// A cluster's record: the plan `up` made (lifecycle/cluster.ts), kept in
// <state dir>/<cluster>/cluster.json and read by every process of the cluster.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterDir } from '../state/paths.ts';

export { clusterDir, stateRoot } from '../state/paths.ts';
import type { ClusterPlan } from './plan.ts';

export class ClusterError extends Error {
  override name = 'ClusterError';
}

export function loadCluster(name: string): ClusterPlan {
  const file = join(clusterDir(name), 'cluster.json');
  if (!existsSync(file)) throw new ClusterError(`cluster ${JSON.stringify(name)} does not exist (kubewire up --cluster ${name} creates it)`);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterPlan;
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

