// kubewire's background processes are named by pid files; a pid is trusted only if
// /proc/PID/cmdline still shows that process (a recycled pid is never hit) and it is not a
// zombie waiting to be reaped.

import { readFileSync } from 'node:fs';

/** The pid in `pidFile` if that process is alive and is kubewire's `role` for `cluster` (its argv also holding every word of `more`). */
export function livePid(pidFile: string, role: string, cluster: string, ...more: string[]): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')) return undefined;
    return [role, cluster, ...more].every((w) => argv.includes(w)) ? pid : undefined;
  } catch {
    return undefined;
  }
}
