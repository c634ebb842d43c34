// The node agent's record of each pod on disk (<cluster>/nodes/<node>/pods/<ns>_<name>_<uid>/pod.json):
// where they are and how they are read, for the agent itself (adopting what a previous run
// left) and for the readers that show a pod's veth pair (describe, the page).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterDir } from '../state/paths.ts';

/** What every reader needs of a record: the pod, its address, and its veth pair's host end. */
export interface PodRecordBase {
  namespace: string;
  name: string;
  ip: string;
  mac?: string;
  hostVeth?: string;
}

/** A node's records folder. */
export function podRecordsDir(cluster: string, node: string): string {
  return join(clusterDir(cluster), 'nodes', node, 'pods');
}

/** One pod's record folder (its logs, its view of names, pod.json). */
export function podRecordDir(podsDir: string, p: { namespace: string; name: string; uid: string }): string {
  return join(podsDir, `${p.namespace}_${p.name}_${p.uid}`);
}

/** The record in `dir` of `podsDir`; undefined when it is missing or cut short (a crash while it was written). */
export function readPodRecord<T extends PodRecordBase = PodRecordBase>(podsDir: string, dir: string): T | undefined {
  try {
    return JSON.parse(readFileSync(join(podsDir, dir, 'pod.json'), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The record folders of a node (none when it has none yet). */
export function podRecordDirs(podsDir: string): string[] {
  return existsSync(podsDir) ? readdirSync(podsDir) : [];
}

/** Every readable record of a node. */
export function podRecords<T extends PodRecordBase = PodRecordBase>(podsDir: string): T[] {
  return podRecordDirs(podsDir).flatMap((d) => readPodRecord<T>(podsDir, d) ?? []);
}
