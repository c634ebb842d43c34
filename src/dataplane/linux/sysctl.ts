// Kernel parameters of this process's network namespace, through /proc/sys. Keys are paths
// under /proc/sys (net/ipv4/conf/eth0.100/arp_notify): interface names may contain dots.

import { readFileSync, writeFileSync } from 'node:fs';
import { run } from './exec.ts';
import { optionalNetnsAddon } from './native.ts';

/** Sets `key` here. Returns false when the key does not exist (e.g. IPv6 disabled). */
export function setLocalSysctl(key: string, value: string): boolean {
  const path = `/proc/sys/${key}`;
  try {
    if (readFileSync(path, 'utf8').trim() === value) return true;
    writeFileSync(path, value);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** A shell loop that writes key/value argument pairs under /proc/sys (missing keys skipped). */
export const SYSCTL_LOOP = 'while [ $# -gt 1 ]; do if [ -e "/proc/sys/$1" ]; then echo "$2" > "/proc/sys/$1" || exit 1; fi; shift 2; done';

/**
 * Sets sysctls in `netns`, or in this process's namespace when it is undefined; missing keys
 * are skipped. Another namespace is entered by the native helper's thread, or where it is not
 * built by one shell inside it, keys and values passed as arguments.
 */
export async function setSysctls(netns: string | undefined, values: Record<string, string>): Promise<void> {
  const entries = Object.entries(values);
  const addon = optionalNetnsAddon();
  if (!netns) for (const [k, v] of entries) setLocalSysctl(k, v);
  else if (addon) for (const [k, v] of entries) addon.sysctlIn(netns, k, v);
  else if (entries.length) await run(['sh', '-c', SYSCTL_LOOP, 'sh', ...entries.flat()], { netns });
}
