// Advisory file locks compatible with the Go plugins' flock(2). Node has no flock: the native
// helper takes it without waiting, tried again after 1, 2, 4... ms (at most 50) while another
// holds it; where the helper is not built, the flock(1) utility takes it on a descriptor it
// inherits from us. Either way the lock belongs to the open file description, which we keep:
// it is released when we close the descriptor (or when we die, as with kill -9).

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { toolPath } from '../../supervisor/supervisor.ts';
import { optionalNetnsAddon } from './native.ts';

export interface FileLock {
  release(): void;
}

export async function lockFile(path: string, mode: 'exclusive' | 'shared' = 'exclusive'): Promise<FileLock> {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a', 0o600);
  try {
    const addon = optionalNetnsAddon();
    if (addon) {
      for (let wait = 1; !addon.tryLock(fd, mode === 'exclusive'); wait = Math.min(50, wait * 2)) await new Promise((r) => setTimeout(r, wait));
    } else await new Promise<void>((resolve, reject) => {
      const child = spawn(toolPath('flock'), [mode === 'exclusive' ? '-x' : '-s', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
      let stderr = '';
      child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`flock ${path}: ${stderr.trim() || `exit ${code}`}`))));
    });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}

export async function withFileLock<T>(path: string, fn: () => Promise<T> | T): Promise<T> {
  const lock = await lockFile(path);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
