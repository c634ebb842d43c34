// The native helper that opens a socket inside a pod's network namespace (native/netns.c).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../state/paths.ts';

interface NetnsAddon {
  /** A listening socket in `netns` on every address, or on `address` alone. */
  listenIn(netns: string, protocol: 'tcp' | 'udp', port: number, backlog: number, address?: string): number;
}

let addon: NetnsAddon | undefined;

export function netnsAddon(): NetnsAddon {
  if (addon) return addon;
  const file = join(packageRoot(), 'build', 'Release', 'kubewire_netns.node');
  if (!existsSync(file)) throw new Error(`the native helper ${file} is missing: run npm install in ${packageRoot()} (it builds it with node-gyp)`);
  addon = createRequire(import.meta.url)(file) as NetnsAddon;
  return addon;
}
