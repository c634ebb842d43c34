// Kernel parameters. The process's own namespace is written through /proc/sys directly;
// another namespace through one `sysctl` run inside it.

import { readFileSync, writeFileSync } from 'node:fs';
import { run } from './exec.ts';

function procPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

/** Sets `key` in this process's network namespace. Returns false when the key does not exist. */
export function setLocalSysctl(key: string, value: string): boolean {
  try {
    if (readFileSync(procPath(key), 'utf8').trim() === value) return true;
    writeFileSync(procPath(key), value);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export function getLocalSysctl(key: string): string | undefined {
  try {
    return readFileSync(procPath(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Sets several keys inside the namespace at `netns`, in one process. Missing keys are ignored. */
export async function setSysctlsIn(netns: string, values: Record<string, string>): Promise<void> {
  const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  if (!pairs.length) return;
  await run(['sysctl', '-q', '-e', '-w', ...pairs], { netns });
}
