// Writing state files so that a reader (or a crash) never sees half of one.

import { renameSync, writeFileSync } from 'node:fs';

export function writeJsonAtomically(path: string, value: unknown, mode = 0o644): void {
  writeFileAtomically(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

export function writeFileAtomically(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}
