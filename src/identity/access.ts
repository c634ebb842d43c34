// What `up` makes so that a cluster's API can be reached as kind's are: its PKI and its port,
// once per cluster, kept across daemon restarts. A cluster in a kernel of its own gets them on
// the host (its port is the host's); the guest's `up` copies the serving part into the guest.

import { apiServerUrl, ensureEndpoint, readEndpoint, type ApiEndpoint } from './endpoint.ts';
import { kubeconfigFor, KubeconfigError, type Kubeconfig } from './kubeconfig.ts';
import { copyServingPki, ensurePki, readAdminPki, serverNames } from './pki.ts';

export interface AccessSpec {
  serviceCIDR?: string;
  clusterDomain?: string;
}

/**
 * Makes (or keeps) the PKI and the endpoint under `clusterDir`. In a guest kernel
 * (KUBEWIRE_GUEST, with the host's copy of the cluster directory at KUBEWIRE_HOST_DIR) it copies
 * the host's serving certificate into the guest's directory instead.
 */
export async function prepareApiAccess(clusterDir: string, spec: AccessSpec, env: NodeJS.ProcessEnv = process.env): Promise<ApiEndpoint | undefined> {
  if (env.KUBEWIRE_GUEST) {
    if (env.KUBEWIRE_HOST_DIR) copyServingPki(env.KUBEWIRE_HOST_DIR, clusterDir);
    return env.KUBEWIRE_HOST_DIR ? readEndpoint(env.KUBEWIRE_HOST_DIR) : undefined;
  }
  await ensurePki(clusterDir, serverNames(spec));
  return ensureEndpoint(clusterDir);
}

/** The admin's kubeconfig of the cluster recorded in `clusterDir` (on the host: the kernel host's directory for one in its own kernel). */
export function clusterKubeconfig(cluster: string, clusterDir: string): Kubeconfig {
  const endpoint = readEndpoint(clusterDir);
  if (!endpoint) throw new KubeconfigError(`cluster ${JSON.stringify(cluster)} has no HTTPS endpoint (${clusterDir} has no apiserver.json): it was made by an older kubewire; kubewire down and up again give it one`);
  return kubeconfigFor(cluster, { server: apiServerUrl(endpoint), ...readAdminPki(clusterDir) });
}
