// A cluster as the user sees it: `up` plans, builds and records it and starts its daemon;
// `down` removes exactly what it made.

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterError, clusterNotFound, ipvsAvailable, loadCluster } from '../cluster/cluster.ts';
import { PermissionDenied } from '../supervisor/supervisor.ts';
import { planCluster, type ClusterPlan, type ClusterSpec } from '../cluster/plan.ts';
import { buildCluster, clusterNamespaces, removeClusterNetwork } from '../cluster/topology.ts';
import { linux } from '../dataplane/linux/host.ts';
import { daemonPid, startDaemon, stopClusterDaemons, stopClusterProcesses } from '../daemon/process.ts';
import { preflight } from './preflight.ts';
import { makeClusterDir } from './privileges.ts';
import { writeJsonAtomically } from '../state/files.ts';
import { clusterDir, kernelPaths } from '../state/paths.ts';
import { clusterKernel } from '../kernel/client.ts';
import { downKernel } from './kernel.ts';
import { prepareApiAccess } from '../identity/access.ts';

export interface UpResult {
  plan: ClusterPlan;
  /** true when the cluster existed and only its daemon was (re)started. */
  restarted: boolean;
}

/**
 * Builds the cluster's network, records it, and starts its daemon. On a cluster that
 * exists but whose daemon is not running (a crash, a reboot of the daemon), `up` starts
 * the daemon again, which adopts the pods the kernel still holds.
 */
export interface UpOptions {
  /** false builds the network only, with no control plane (tests of the network alone). */
  daemon?: boolean;
}

/** How long a starting daemon may go without a new phase before `up` gives up on it (KUBEWIRE_DAEMON_STALL_SECONDS, 60 s). */
const stallMs = () => (Number(process.env.KUBEWIRE_DAEMON_STALL_SECONDS) || 60) * 1000;

export async function up(spec: ClusterSpec, progress: (line: string) => void = () => {}, opts: UpOptions = {}): Promise<UpResult> {
  const dir = clusterDir(spec.name);
  if (existsSync(kernelPaths(spec.name).record)) throw new ClusterError(`cluster ${JSON.stringify(spec.name)} already exists, in a kernel of its own (kubewire down --cluster ${spec.name} removes it)`);
  if (existsSync(join(dir, 'cluster.json'))) {
    if (daemonPid(spec.name) || opts.daemon === false) throw new ClusterError(`cluster ${JSON.stringify(spec.name)} already exists and is running (kubewire down --cluster ${spec.name} removes it)`);
    const plan = loadCluster(spec.name);
    progress(`cluster ${spec.name} exists but its daemon is not running: starting it`);
    // A daemon left from an earlier attempt (stuck loading, no pid file) would fight this one.
    // The workload host and the ingress controllers stay: pods keep serving through a restart.
    await stopClusterDaemons(spec.name);
    await prepareApiAccess(dir, plan.spec); // a cluster made before kubewire served HTTPS gets its PKI now
    try {
      await startDaemon(spec.name, plan.nodes.length, (phase) => progress(`daemon: ${phase}`), stallMs());
    } catch (e) {
      await stopClusterDaemons(spec.name).catch(() => undefined);
      throw e;
    }
    return { plan, restarted: true };
  }
  const plan = planCluster(spec);
  if (plan.spec.proxyMode === 'ipvs' && !ipvsAvailable()) {
    throw new ClusterError("--proxy-mode ipvs needs the kernel's IPVS (the ip_vs module), and this kernel has none (no /proc/net/ip_vs, no ip_vs module to load): add --kernel uml to run the cluster in a user-mode Linux kernel that has it, or use --proxy-mode iptables");
  }
  await preflight(plan.spec);
  if ((await clusterNamespaces(linux, spec.name)).length) {
    throw new ClusterError(`namespaces of a cluster ${JSON.stringify(spec.name)} exist but its record does not (kubewire down --cluster ${spec.name} removes them)`);
  }
  makeClusterDir(dir);
  // The PKI is made while the network is built (its CPU beside the ip commands' waits); the daemon needs it.
  const access = opts.daemon === false ? undefined : prepareApiAccess(dir, plan.spec);
  access?.catch(() => undefined); // awaited below, where its failure fails `up`
  try {
    await buildCluster(linux, plan, dir, progress);
    writeJsonAtomically(join(dir, 'cluster.json'), plan, 0o600);
    if (opts.daemon !== false) {
      await access;
      progress('starting the control plane and the node agents');
      await startDaemon(spec.name, plan.nodes.length, (phase) => progress(`daemon: ${phase}`), stallMs());
    }
    // In a kernel of its own: the host's copy of the record, for the verbs it runs itself.
    if (process.env.KUBEWIRE_GUEST && process.env.KUBEWIRE_HOST_DIR) writeJsonAtomically(join(process.env.KUBEWIRE_HOST_DIR, 'cluster.json'), plan, 0o600);
  } catch (e) {
    await access?.catch(() => undefined); // done writing before its directory goes
    await stopClusterProcesses(spec.name).catch(() => undefined);
    await removeClusterNetwork(linux, spec.name).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { plan, restarted: false };
}

/** Stops the cluster's processes, removes its namespaces (and what runs in them) and its files. */
export async function down(name: string): Promise<string[]> {
  if (clusterKernel(name)) {
    await downKernel(name);
    return [];
  }
  const dir = clusterDir(name);
  // Not this user's to remove (root's cluster, seen by an ordinary user): say so before
  // signalling anything, rather than fail on every process and namespace.
  const missing = existsSync(dir) ? undefined : clusterNotFound(name);
  if (missing instanceof PermissionDenied) throw missing;
  await stopClusterProcesses(name);
  const namespaces = await removeClusterNetwork(linux, name);
  if (!namespaces.length && missing) throw missing;
  rmSync(dir, { recursive: true, force: true });
  return namespaces;
}
