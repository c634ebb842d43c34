// Reading, locking and writing kubeconfig files (kind's lock.go and write.go): a writer holds
// `<file>.lock`, created with O_EXCL and removed after; the file is written 0600 (a new one;
// an existing file keeps its mode, as kind's os.WriteFile keeps it), its directory made 0755.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { KubeconfigError, kubeconfigPaths, kubeconfigTarget, lockPath, mergeKubeconfig, removeFromKubeconfig, type Kubeconfig } from './kubeconfig.ts';

const why = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** Takes `file`'s lock, waiting up to `waitMs` for another writer to let it go. */
async function lock(file: string, waitMs: number): Promise<() => void> {
  const path = lockPath(file);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new KubeconfigError(`cannot make the directory of kubeconfig ${file}: ${why(e)}`);
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      closeSync(openSync(path, 'wx', 0o600));
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new KubeconfigError(`cannot lock kubeconfig ${file} (${path}): ${why(e)}`);
      if (Date.now() >= deadline) throw new KubeconfigError(`kubeconfig ${file} is locked: ${path} exists (kubectl, kind or kubewire is writing it; remove that file if none is)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new KubeconfigError(`cannot read kubeconfig ${file}: ${why(e)}`);
  }
}

function write(file: string, text: string): void {
  try {
    writeFileSync(file, text, { mode: 0o600 });
  } catch (e) {
    throw new KubeconfigError(`cannot write kubeconfig ${file}: ${why(e)}`);
  }
}

export interface PathOptions {
  /** --kubeconfig */
  explicit?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** How long to wait for another writer's lock. */
  lockWaitMs?: number;
}

const pathsOf = (o: PathOptions) => ({ env: o.env ?? process.env, home: o.home ?? homedir() });

/** Merges `k` into the user's kubeconfig (kind's choice of file) and makes it current; returns the file. */
export async function mergeIntoUserKubeconfig(k: Kubeconfig, o: PathOptions = {}): Promise<string> {
  const { env, home } = pathsOf(o);
  const file = kubeconfigTarget(o.explicit, env, home, existsSync);
  const unlock = await lock(file, o.lockWaitMs ?? 5000);
  try {
    write(file, mergeKubeconfig(read(file), k, file));
  } finally {
    unlock();
  }
  return file;
}

/** Removes the entries named `name` from every file of the user's kubeconfig path list; returns the files changed. */
export async function removeFromUserKubeconfigs(name: string, o: PathOptions = {}): Promise<string[]> {
  const { env, home } = pathsOf(o);
  const changed: string[] = [];
  for (const file of kubeconfigPaths(o.explicit, env, home)) {
    if (!existsSync(file)) continue;
    const unlock = await lock(file, o.lockWaitMs ?? 5000);
    try {
      const text = removeFromKubeconfig(read(file), name, file);
      if (text !== undefined) {
        write(file, text);
        changed.push(file);
      }
    } finally {
      unlock();
    }
  }
  return changed;
}
