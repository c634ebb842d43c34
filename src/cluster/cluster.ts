// A cluster as the user sees it: `up` plans, builds and records it; `down` removes exactly
// what it made. The record lives in <state dir>/<cluster>/cluster.json.

import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomically } from '../state/files.ts';
import { planCluster, type ClusterPlan, type ClusterSpec } from './plan.ts';
import { buildCluster, clusterNamespaces, removeClusterNetwork } from './topology.ts';

export class ClusterError extends Error {
  override name = 'ClusterError';
}

export function stateRoot(): string {
  return process.env.KUBEWIRE_STATE_DIR || '/var/lib/kubewire';
}

export function clusterDir(name: string): string {
  return join(stateRoot(), name);
}

export function loadCluster(name: string): ClusterPlan {
  const file = join(clusterDir(name), 'cluster.json');
  if (!existsSync(file)) throw new ClusterError(`cluster ${JSON.stringify(name)} does not exist (kubewire up --cluster ${name} creates it)`);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterPlan;
}

export async function up(spec: ClusterSpec, progress: (line: string) => void = () => {}): Promise<ClusterPlan> {
  const plan = planCluster(spec);
  const dir = clusterDir(spec.name);
  if (existsSync(join(dir, 'cluster.json')) || (await clusterNamespaces(spec.name)).length) {
    throw new ClusterError(`cluster ${JSON.stringify(spec.name)} already exists (kubewire down --cluster ${spec.name} removes it)`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    await buildCluster(plan, dir, progress);
    writeJsonAtomically(join(dir, 'cluster.json'), plan, 0o600);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return plan;
}

/** Removes the cluster's namespaces (and what runs in them) and its files. */
export async function down(name: string): Promise<string[]> {
  const dir = clusterDir(name);
  const namespaces = await removeClusterNetwork(name);
  if (!namespaces.length && !existsSync(dir)) throw new ClusterError(`cluster ${JSON.stringify(name)} does not exist`);
  rmSync(dir, { recursive: true, force: true });
  return namespaces;
}
