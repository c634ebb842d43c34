// A program started inside a pod's namespaces in one step by the native helper
// (native/netns.c spawnIn): the network namespace entered, the pod's view of names mounted in
// mount and UTS namespaces of its own, then one exec. Through nsenter, unshare and a shell
// that took four program starts; in a user-mode Linux kernel each costs 0.05-0.15 s (the
// guest's `exec`), so there the one clone is most of the difference. The daemon starts it
// with startInAsync: the clone (and its wait for the exec) on a thread of the helper's own.

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
  /** spawnIn on a thread of its own (absent from builds older than it). */
  promises?: { spawnIn(...args: Parameters<SpawnInAddon['spawnIn']>): Promise<ReturnType<SpawnInAddon['spawnIn']>> };
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
export function startIn(addon: SpawnInAddon, argv: string[], opts: StartOptions): PipedProcess {
  const args = spawnArgs(argv, opts);
  try {
    return piped(addon, addon.spawnIn(...args));
  } catch (e) {
    throw startError(e);
  }
}

/** startIn without the event loop waiting for the clone and the exec: what a daemon serving requests uses. */
export async function startInAsync(addon: SpawnInAddon, argv: string[], opts: StartOptions): Promise<PipedProcess> {
  if (!addon.promises) return startIn(addon, argv, opts);
  const args = spawnArgs(argv, opts);
  try {
    return piped(addon, await addon.promises.spawnIn(...args));
  } catch (e) {
    throw startError(e);
  }
}

interface StartOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  netns?: string;
  view?: PodView;
}

/** spawnIn's arguments for `argv`; a StartError when the program is not found. */
function spawnArgs(argv: string[], opts: StartOptions): Parameters<SpawnInAddon['spawnIn']> {
  const file = resolveProgram(argv[0]!, opts.env.PATH);
  if (!file) throw new StartError(`exec: ${JSON.stringify(argv[0])}: executable file not found in $PATH`, 127); // as runc says it
  const env = Object.entries(opts.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return [file, argv, env, opts.cwd, opts.netns ?? '', opts.view?.dir ?? '', opts.view?.hostname ?? ''];
}

function startError(e: unknown): StartError {
  const err = e as Error & { code?: string };
  return new StartError(err.message, err.code === 'KW_SETUP' ? 126 : 127);
}

/** The started program as a PipedProcess: its pipes as sockets, 'close' once they ended and it is reaped. */
function piped(addon: SpawnInAddon, started: ReturnType<SpawnInAddon['spawnIn']>): PipedProcess {
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
