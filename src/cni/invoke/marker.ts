// The executables `kubewire cni install` writes carry a marker, so that a caller that finds
// one of ours in CNI_PATH may run the plugin in-process instead of paying a process start.
// A wrapper script has it in its first line; the C shim (native/cni-shim.c) has it among its
// strings, so a compiled file is searched whole (it is 20 KB).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const PLUGIN_MARKER = 'kubewire-cni-plugin';

const ELF = Buffer.from('\x7fELF', 'latin1');
const MAX_SHIM_BYTES = 1 << 20;

export function isKubewirePlugin(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    if (head.subarray(0, n).toString('latin1').includes(PLUGIN_MARKER)) return true;
    if (n < 4 || !head.subarray(0, 4).equals(ELF)) return false;
    const whole = Buffer.alloc(Math.min(MAX_SHIM_BYTES, fstatSync(fd).size));
    const size = readSync(fd, whole, 0, whole.length, 0);
    return whole.subarray(0, size).includes(PLUGIN_MARKER);
  } finally {
    closeSync(fd);
  }
}
