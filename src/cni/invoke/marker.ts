// The executables `kubewire cni install` writes carry a marker, so that a caller that finds
// one of ours in CNI_PATH may run the plugin in-process instead of paying a process start.

import { closeSync, openSync, readSync } from 'node:fs';

export const PLUGIN_MARKER = 'kubewire-cni-plugin';

export function isKubewirePlugin(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).toString('latin1').includes(PLUGIN_MARKER);
  } finally {
    closeSync(fd);
  }
}
