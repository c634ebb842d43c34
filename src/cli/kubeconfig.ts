// The kubeconfig side of `up` and `down`, as kind does it, and `kubewire kubeconfig` (kind get
// kubeconfig): the cluster's context, cluster and user `kubewire-<cluster>`, with the CA and the
// admin's certificate embedded and https://127.0.0.1:PORT as the server.

import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { clusterNotFound } from '../cluster/cluster.ts';
import { clusterKubeconfig } from '../identity/access.ts';
import { mergeIntoUserKubeconfig, removeFromUserKubeconfigs } from '../identity/kubeconfig-files.ts';
import { contextName, KubeconfigError, printKubeconfig } from '../identity/kubeconfig.ts';
import { clusterDir } from '../state/paths.ts';
import { defaultCluster } from './kubectl.ts';

/** The cluster's kubeconfig from its host directory (its own kernel's clusters keep theirs there too). */
function kubeconfigOf(cluster: string) {
  const dir = clusterDir(cluster);
  if (!existsSync(dir)) throw clusterNotFound(cluster);
  return clusterKubeconfig(cluster, dir);
}

/** After `up`: the cluster's entries merged into the user's kubeconfig and made current; says so as kind does. */
export async function exportKubeconfig(cluster: string, explicit: string | undefined, out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<void> {
  let file: string;
  try {
    file = await mergeIntoUserKubeconfig(kubeconfigOf(cluster), { explicit });
  } catch (e) {
    // The cluster is up and kubewire's own commands reach it: a kubeconfig that cannot be written is said, not a failed `up`.
    if (!(e instanceof KubeconfigError)) throw e;
    err.write(`warning: cluster ${cluster} is up but no kubeconfig was written: ${e.message} (kubewire kubeconfig${cluster === defaultCluster() ? '' : ` --cluster ${cluster}`} prints it)\n`);
    return;
  }
  const name = contextName(cluster);
  out.write(`Set kubectl context to "${name}" (in ${file})\nYou can now use your cluster with:\n\nkubectl cluster-info --context ${name}\n`);
}

/** After `down`: the cluster's entries gone from every file of the user's kubeconfig path list. */
export async function forgetKubeconfig(cluster: string, explicit: string | undefined, out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<void> {
  let changed: string[];
  try {
    changed = await removeFromUserKubeconfigs(contextName(cluster), { explicit });
  } catch (e) {
    if (!(e instanceof KubeconfigError)) throw e;
    err.write(`warning: the kubeconfig entries of cluster ${cluster} were not removed: ${e.message}\n`);
    return;
  }
  for (const file of changed) out.write(`removed context ${contextName(cluster)} from ${file}\n`);
}

export function registerKubeconfigCommands(program: Command): void {
  program
    .command('kubeconfig')
    .description("print the cluster's kubeconfig (context, cluster and user kubewire-<cluster>) without writing it, as kind get kubeconfig")
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .action((o: { cluster: string }) => {
      process.stdout.write(printKubeconfig(kubeconfigOf(o.cluster)));
    });
}
