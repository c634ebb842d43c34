// Network namespaces are handled by path (CNI_NETNS), never by switching the process's own.

import { readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import type { NetnsState } from '../port.ts';

/**
 * Tells whether `path` is a namespace file other than the host's network namespace (this
 * process's, or `hostNetns`): a namespace bind mount lives on nsfs, as /proc/self/ns/net does.
 */
export function inspectNetns(path: string, hostNetns?: string): NetnsState {
  let target: Stats;
  try {
    target = statSync(path);
  } catch {
    return 'missing';
  }
  const own = statSync(hostNetns ?? '/proc/self/ns/net');
  if (target.dev !== own.dev) return 'not-a-netns';
  return target.ino === own.ino ? 'own' : 'ok';
}

/** The processes in the network namespace at `path` (what `ip netns pids` prints), found in /proc without starting `ip`. */
export function netnsPids(path: string): number[] {
  let ino: number;
  try {
    ino = statSync(path).ino;
  } catch {
    return [];
  }
  const wanted = `net:[${ino}]`;
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === wanted) out.push(pid);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}
