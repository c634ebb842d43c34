// What a node reports of its system in status.nodeInfo, as the kubelet does (OS-IMAGE and
// KERNEL-VERSION of `kubectl get nodes -o wide`): the os-release PRETTY_NAME and uname's
// release. Pure but for the two reads in systemInfo().

import { readFileSync } from 'node:fs';
import { release } from 'node:os';

/** os-release's PRETTY_NAME (unquoted), or "Linux" when there is none, as the kubelet falls back. */
export function osImageOf(osRelease: string | undefined): string {
  const line = (osRelease ?? '').split('\n').find((l) => l.startsWith('PRETTY_NAME='));
  const value = line?.slice('PRETTY_NAME='.length).trim().replace(/^(["'])(.*)\1$/, '$2');
  return value || 'Linux';
}

export function systemInfo(): { osImage: string; kernelVersion: string } {
  let text: string | undefined;
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      text = readFileSync(path, 'utf8');
      break;
    } catch {
      // the next place, as the kubelet looks
    }
  }
  return { osImage: osImageOf(text), kernelVersion: release() };
}
