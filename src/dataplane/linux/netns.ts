// Network namespaces are handled by path (CNI_NETNS), never by switching the process's own.

import { statSync, type Stats } from 'node:fs';

export type NetnsState = 'ok' | 'missing' | 'not-a-netns' | 'own';

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
