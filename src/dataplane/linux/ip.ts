// iproute2 as a batch engine: one `ip -batch` per namespace and step keeps the kernel
// calls of a CNI ADD to a handful of process starts.

import type { LinkInfo } from '../port.ts';
import { CommandError, run } from './exec.ts';
import { IFF_RUNNING, OWN_NETNS, optionalNetnsAddon } from './native.ts';
import { SYSCTL_LOOP, setSysctls } from './sysctl.ts';

/** Applies `lines` (ip commands without the leading "ip") in one process; stops at the first error. */
export async function ipBatch(lines: string[], netns?: string): Promise<void> {
  if (!lines.length) return;
  await run(['ip', '-batch', '-'], { input: `${lines.join('\n')}\n`, netns });
}

/** Applies `lines` (bridge commands without the leading "bridge": FDB entries) in one process. */
export async function bridgeBatch(lines: string[], netns?: string): Promise<void> {
  if (!lines.length) return;
  await run(['bridge', '-batch', '-'], { input: `${lines.join('\n')}\n`, netns });
}

/** Runs `lines` in one process with JSON (-details) output: what its `show` lines print. */
export async function ipBatchJson<T>(lines: string[], netns?: string): Promise<T> {
  const out = await run(['ip', '-json', '-details', '-batch', '-'], { input: `${lines.join('\n')}\n`, netns });
  return (out.trim() ? JSON.parse(out) : []) as T;
}

/** `ip -json ...`, parsed. */
export async function ipJson<T>(args: string[], netns?: string): Promise<T> {
  const out = await run(['ip', '-json', ...args], { netns });
  return (out.trim() ? JSON.parse(out) : []) as T;
}

/**
 * Sets sysctls, then runs an ip batch, inside `netns`: CNI ADD needs both in the pod, and
 * each process start costs milliseconds. The native helper sets the sysctls from this
 * process; without it, one process chain (a shell, then ip). `sysctls` keys are paths under
 * /proc/sys (net/ipv4/conf/eth0/arp_notify: interface names may contain dots); keys that do
 * not exist are skipped. Values and keys are passed as arguments, never as script text.
 */
export async function ipBatchWithSysctls(netns: string, sysctls: Record<string, string>, lines: string[]): Promise<void> {
  if (optionalNetnsAddon()) {
    await setSysctls(netns, sysctls);
    return ipBatch(lines, netns);
  }
  const args = Object.entries(sysctls).flat();
  await run(['sh', '-c', `${SYSCTL_LOOP}; exec ip -batch -`, 'sh', ...args], { input: `${lines.join('\n')}\n`, netns });
}

/**
 * Whether a link is operationally up (IFF_RUNNING), in `netns` or here; asked without a
 * process where the native helper is built. A missing link is not up.
 */
export async function linkRunning(name: string, netns?: string): Promise<boolean> {
  const addon = optionalNetnsAddon();
  if (!addon) return (await getLink(name, netns))?.operstate === 'UP';
  try {
    return (addon.linkFlags(netns ?? OWN_NETNS, name) & IFF_RUNNING) !== 0;
  } catch (e) {
    if (/No such device/.test((e as Error).message)) return false;
    throw e;
  }
}

/** A link with its addresses and details, or undefined when it does not exist. */
export async function getLink(name: string, netns?: string): Promise<LinkInfo | undefined> {
  try {
    const links = await ipJson<LinkInfo[]>(['-details', 'addr', 'show', 'dev', name], netns);
    return links[0];
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** A tool's "no such device" (the port's isNotFound reads DataplaneErrors). */
function isNotFound(e: unknown): boolean {
  return e instanceof CommandError && /does not exist|Cannot find device|No such device|not found/i.test(e.stderr);
}
