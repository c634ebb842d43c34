// Who may run what. A cluster on this machine's kernel needs root: it makes network
// namespaces, links and netfilter rules. A cluster in a kernel of its own needs nothing: the
// user-mode Linux kernel is an ordinary process, root only inside itself. So an ordinary user's
// `up` runs the cluster there, and says so; root's runs it on the host kernel.

import { mkdirSync, readFileSync } from 'node:fs';
import { ClusterError } from '../cluster/cluster.ts';
import { PermissionDenied } from '../supervisor/supervisor.ts';

export type Kernel = 'host' | 'uml';

/** CAP_SYS_ADMIN (namespaces, mounts) and CAP_NET_ADMIN (links, routes, netfilter) in an effective capability mask (pure). */
export function hasHostNetworkCapabilities(capEff: bigint): boolean {
  const CAP_NET_ADMIN = 12n;
  const CAP_SYS_ADMIN = 21n;
  return ((capEff >> CAP_NET_ADMIN) & 1n) === 1n && ((capEff >> CAP_SYS_ADMIN) & 1n) === 1n;
}

/** Whether this process may build a cluster on this machine's kernel: root, or the capabilities root would use. */
export function mayUseHostKernel(): boolean {
  if (process.geteuid?.() === 0) return true;
  try {
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return capEff !== undefined && hasHostNetworkCapabilities(BigInt(`0x${capEff}`));
  } catch {
    return false;
  }
}

const NEEDS_ROOT = "a cluster on this machine's kernel needs root (network namespaces, links, iptables)";

/**
 * Which kernel a cluster runs in (pure): the one asked for, else the host's for root and the
 * cluster's own for an ordinary user (with a line saying so); a refusal names the way out.
 */
export function chooseKernel(requested: string | undefined, privileged: boolean, umlMissing: string | undefined): { kernel: Kernel; note?: string } {
  if (requested !== undefined && requested !== 'host' && requested !== 'uml') throw new ClusterError(`--kernel ${JSON.stringify(requested)}: must be host or uml`);
  if (requested === 'uml') return { kernel: 'uml' };
  if (privileged) return { kernel: 'host' };
  if (requested === 'host') throw new PermissionDenied(`permission denied: ${NEEDS_ROOT}: run sudo kubewire up, or kubewire up --kernel uml to run the cluster in a kernel of its own as yourself`);
  if (umlMissing) throw new PermissionDenied(`permission denied: ${NEEDS_ROOT}, and user-mode Linux, which runs a cluster without root, is not installed (${umlMissing}): run sudo kubewire up`);
  return { kernel: 'uml', note: "not root: the cluster runs in a kernel of its own (user-mode Linux, as --kernel uml); sudo kubewire up runs one on this machine's kernel" };
}

/** A cluster's state directory made (0700), or one line saying why this user cannot have it there. */
export function makeClusterDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw e;
    throw new PermissionDenied(`permission denied: cannot make the cluster's state directory ${dir} (${code}): set KUBEWIRE_STATE_DIR (or XDG_STATE_HOME) to a directory of yours, or run kubewire with sudo`);
  }
}
