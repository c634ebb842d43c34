// Advisory file locks compatible with the Go plugins' flock(2). Node has no flock, so the
// flock(1) utility takes the lock on a file descriptor it inherits from us: the lock belongs
// to the open file description, which we keep, so it outlives the helper process and is
// released when we close the descriptor (or when we die, as with kill -9).

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { toolPath } from './exec.ts';

export interface FileLock {
  release(): void;
}

export async function lockFile(path: string, mode: 'exclusive' | 'shared' = 'exclusive'): Promise<FileLock> {
  const fd = openSync(path, 'a', 0o600);
  try {
    await new Promise<void>((resolve, reject) => {
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
