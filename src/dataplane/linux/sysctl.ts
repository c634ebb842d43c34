// Kernel parameters of this process's network namespace, through /proc/sys. Keys are paths
// under /proc/sys (net/ipv4/conf/eth0.100/arp_notify): interface names may contain dots.

import { readFileSync, writeFileSync } from 'node:fs';

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

export function getLocalSysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
