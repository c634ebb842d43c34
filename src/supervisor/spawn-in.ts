// A program started inside a pod's namespaces in one step by the native helper
// (native/netns.c spawnIn): the network namespace entered, the pod's view of names mounted in
// mount and UTS namespaces of its own, then one exec. Through nsenter, unshare and a shell
// that took four program starts; in a user-mode Linux kernel each costs 0.05-0.15 s (the
// guest's `exec`), so there the one clone is most of the difference.

import { EventEmitter } from 'node:events';
import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { constants as os } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { PodView } from './supervisor.ts';

/** The native helper's calls this module uses. */
export interface SpawnInAddon {
  spawnIn(file: string, argv: string[], env: string[], cwd: string, netns: string, view: string, hostname: string): { pid: number; stdin: number; stdout: number; stderr: number };
  waitPid(pid: number): { code: number | null; signal: number | null } | null;
}

/** The native helper at `file` when it is built and has spawnIn (an older build has not), else undefined. */
export function loadSpawnIn(file: string): SpawnInAddon | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const addon = createRequire(import.meta.url)(file) as Partial<SpawnInAddon>;
    return typeof addon.spawnIn === 'function' && typeof addon.waitPid === 'function' ? (addon as SpawnInAddon) : undefined;
  } catch {
    return undefined;
  }
}

/** What a started program offers its starter: child_process's shape, as far as a session uses it. */
export interface PipedProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

/** `name` as a path, looked up in `path` (a PATH value) unless it has a slash; undefined when no entry has it. */
export function resolveProgram(name: string, path: string | undefined): string | undefined {
  if (name.includes('/')) return name;
  for (const dir of (path || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(join(dir || '.', name), constants.X_OK);
      return join(dir || '.', name);
    } catch {
      // not here
    }
  }
  return undefined;
}

const signalNames = new Map(Object.entries(os.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Why a program could not start: `status` is what a shell would exit with (126 set-up, 127 not found or not executable). */
export class StartError extends Error {
  override name = 'StartError';
  constructor(message: string, readonly status: 126 | 127) {
    super(message);
  }
}

/**
 * Starts `argv` with piped stdio, leading a session of its own (signals to -pid reach all it
 * runs), inside `netns` and with the pod's `view` when given; throws a StartError when it
 * cannot. Emits 'close' (code, signal) once its output has ended and it has been reaped.
 */
export function startIn(addon: SpawnInAddon, argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; netns?: string; view?: PodView }): PipedProcess {
  const file = resolveProgram(argv[0]!, opts.env.PATH);
  if (!file) throw new StartError(`exec: ${JSON.stringify(argv[0])}: executable file not found in $PATH`, 127); // as runc says it
  const env = Object.entries(opts.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  let started: ReturnType<SpawnInAddon['spawnIn']>;
  try {
    started = addon.spawnIn(file, argv, env, opts.cwd, opts.netns ?? '', opts.view?.dir ?? '', opts.view?.hostname ?? '');
  } catch (e) {
    const err = e as Error & { code?: string };
    throw new StartError(err.message, err.code === 'KW_SETUP' ? 126 : 127);
  }
  const stdin = new Socket({ fd: started.stdin, readable: false, writable: true });
  const stdout = new Socket({ fd: started.stdout, readable: true, writable: false });
  const stderr = new Socket({ fd: started.stderr, readable: true, writable: false });
  const child = Object.assign(new EventEmitter(), { pid: started.pid, stdin, stdout, stderr }) as PipedProcess;
  for (const pipe of [stdout, stderr]) pipe.on('error', () => {}); // a read error ends the pipe like EOF; the exit status tells
  let open = 2;
  const reap = (attempt: number) => {
    const ended = addon.waitPid(started.pid);
    if (!ended) {
      // Its pipes closed as it exited (or it closed them): reaping may wait a moment after that.
      setTimeout(reap, Math.min(50, 2 ** attempt), attempt + 1);
      return;
    }
    stdin.destroy();
    child.emit('close', ended.code, ended.signal === null ? null : signalNames.get(ended.signal) ?? null);
  };
  for (const pipe of [stdout, stderr]) pipe.on('close', () => --open === 0 && reap(0));
  return child;
}
