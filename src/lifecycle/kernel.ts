// A cluster in a kernel of its own (`kubewire up --kernel uml`): `up` starts the kernel host
// (a detached process that boots a user-mode Linux kernel and relays commands into it), waits
// for the guest, then runs the ordinary `up` in there; every later command for the cluster is
// run in the guest too (kernel/client.ts). `down` powers the kernel off: the cluster's
// namespaces, processes and state all lived in it, so nothing of them is left; then the
// cluster's host directory (the record, the kernel's log) goes.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { ClusterError, clusterNotFound } from '../cluster/cluster.ts';
import type { ClusterSpec } from '../cluster/plan.ts';
import { clusterKernel, runInKernel, type KernelRecord, type Stdio } from '../kernel/client.ts';
import { makeClusterDir } from './privileges.ts';
import { prepareApiAccess } from '../identity/access.ts';
import { writeJsonAtomically } from '../state/files.ts';
import { cliEnv, cliPath, kernelPaths } from '../state/paths.ts';
import { isAlive, startDetached, stopProcess, type ProcessRecord } from '../supervisor/supervisor.ts';
import { clusterModules, umlMissing } from '../supervisor/uml.ts';

/** How long the kernel may take to boot and start its guest. */
const BOOT_TIMEOUT_MS = 60_000;

/** Why a cluster spec cannot run in Debian's UML kernel, or undefined. */
export function umlRefusal(spec: Pick<ClusterSpec, 'proxyMode' | 'iptablesBackend'>): string | undefined {
  if (spec.proxyMode === 'nftables' || spec.iptablesBackend === 'nft') return "Debian's UML kernel has nf_tables without its ip family (CONFIG_NF_TABLES_IPV4): use --proxy-mode iptables or ipvs with --iptables-backend legacy there";
  return undefined;
}

const readRecord = (path: string): ProcessRecord | undefined => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ProcessRecord;
  } catch {
    return undefined;
  }
};

/**
 * Boots the cluster's kernel and runs `kubewire up UP_ARGV` in it; resolves with that
 * command's exit status. On failure nothing is left: the kernel is stopped and its directory removed.
 */
export async function upInKernel(spec: Pick<ClusterSpec, 'name' | 'mode' | 'proxyMode' | 'iptablesBackend' | 'serviceCIDR' | 'clusterDomain'>, upArgv: string[], memMB: number, io: Stdio, progress: (line: string) => void): Promise<number> {
  const missing = umlMissing();
  if (missing) throw new ClusterError(`--kernel uml needs user-mode Linux: ${missing}`);
  const refusal = umlRefusal(spec);
  if (refusal) throw new ClusterError(refusal);
  const paths = kernelPaths(spec.name);
  if (existsSync(paths.dir)) throw new ClusterError(`cluster ${JSON.stringify(spec.name)} already exists (kubewire down --cluster ${spec.name} removes it)`);
  makeClusterDir(paths.dir);
  const record: KernelRecord = { kernel: 'uml', memMB, createdAt: new Date().toISOString(), modules: clusterModules(spec) };
  writeJsonAtomically(paths.record, record, 0o600);
  try {
    const t0 = performance.now();
    const host = await startDetached({ argv: [process.execPath, cliPath(), 'kernel-host', '--cluster', spec.name, '--memory', String(memMB)], logFile: paths.log, env: cliEnv() });
    writeJsonAtomically(paths.hostPidFile, host, 0o600);
    progress(`booting a user-mode Linux kernel (${memMB} MB); its console goes to ${paths.log}`);
    // The cluster's PKI and its port on the host's 127.0.0.1, made while the kernel host starts and the kernel boots (the guest's `up` copies them).
    await prepareApiAccess(paths.dir, spec);
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    while (!existsSync(paths.socket)) {
      if (!isAlive(host)) throw new ClusterError(`the kernel of cluster ${spec.name} stopped while booting:\n${tail(paths.log)}`);
      if (Date.now() > deadline) throw new ClusterError(`the kernel of cluster ${spec.name} did not start its guest within ${BOOT_TIMEOUT_MS / 1000} s:\n${tail(paths.log)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    progress(`kernel booted in ${((performance.now() - t0) / 1000).toFixed(2)} s; building the cluster inside it`);
    const code = await runInKernel(spec.name, ['up', ...upArgv], io);
    if (code !== 0) await downKernel(spec.name);
    return code;
  } catch (e) {
    await downKernel(spec.name).catch(() => undefined);
    throw e;
  }
}

/** Powers the cluster's kernel off (killing it if it does not go) and removes its host directory. */
export async function downKernel(name: string): Promise<void> {
  const paths = kernelPaths(name);
  if (!clusterKernel(name) && !existsSync(paths.dir)) throw clusterNotFound(name);
  const host = readRecord(paths.hostPidFile);
  if (host) await stopProcess(host, 15_000);
  // A kernel whose host was killed (kill -9) runs on alone: stop its whole group.
  const kernel = readRecord(paths.kernelPidFile);
  if (kernel) {
    await stopProcess(kernel, 1_000);
    // Its helper processes (one per address space of the guest) end just after it.
    for (let i = 0; i < 200 && groupAlive(kernel.pid); i++) await new Promise((r) => setTimeout(r, 10));
  }
  rmSync(paths.dir, { recursive: true, force: true });
}

/** Whether any process of the group led by `pgid` is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const tail = (file: string, lines = 15): string => {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no kernel log)';
  }
};
