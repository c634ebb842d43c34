// The native helper (native/netns.c): a socket opened inside a pod's network namespace, and
// the namespace, link and lock operations a pod's start would otherwise start processes for.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../state/paths.ts';

export interface NetnsAddon {
  /** A listening socket in `netns` on every address, or on `address` alone. */
  listenIn(netns: string, protocol: 'tcp' | 'udp', port: number, backlog: number, address?: string): number;
  /** A new network namespace kept by a bind mount at `path` (`ip netns add`). */
  netnsAdd(path: string): void;
  /** The namespace at `path` unmounted and its file removed (`ip netns del`). */
  netnsDel(path: string): void;
  /** IFF_UP on `ifname` inside the namespace at `netns`; its flags after. */
  linkUp(netns: string, ifname: string): number;
  /** The interface flags (SIOCGIFFLAGS) of `ifname` inside the namespace at `netns`. */
  linkFlags(netns: string, ifname: string): number;
  /** /proc/sys/`key` written as seen from inside `netns`; false when the key does not exist. */
  sysctlIn(netns: string, key: string, value: string): boolean;
  /** flock(2) without waiting: true when taken. */
  tryLock(fd: number, exclusive: boolean): boolean;
  /** `file` started with posix_spawn (in the namespace at `netns` unless empty), its stdio on pipes. */
  spawn(file: string, argv: string[], netns: string): { pid: number; stdin: number; stdout: number; stderr: number };
  /** null while `pid` runs, else how it ended (and it is reaped). */
  waitPid(pid: number): { code: number | null; signal: number | null } | null;
  /** An unconnected, non-blocking TCP socket made inside `netns` (port-forward connects it to the pod's localhost). */
  socketIn(netns: string, family: 4 | 6): number;
  /**
   * The calls above that wait on the kernel (the RTNL lock, an RCU grace period, a child's
   * exec), each on a thread of its own: the event loop never waits for them. `run` starts a
   * tool, feeds it `input`, and resolves once it has ended, with its status and output.
   */
  promises: {
    netnsAdd(path: string): Promise<void>;
    netnsDel(path: string): Promise<void>;
    linkUp(netns: string, ifname: string): Promise<number>;
    linkFlags(netns: string, ifname: string): Promise<number>;
    sysctlIn(netns: string, key: string, value: string): Promise<boolean>;
    spawn(file: string, argv: string[], netns: string): Promise<{ pid: number; stdin: number; stdout: number; stderr: number }>;
    run(file: string, argv: string[], netns: string, input: string): Promise<{ code: number | null; signal: number | null; stdout: Buffer; stderr: Buffer }>;
  };
}

/** This thread's own network namespace, for the calls above when no other is meant. */
export const OWN_NETNS = '/proc/thread-self/ns/net';

/** IFF_RUNNING: the link's operstate is UP (or UNKNOWN, for links without carrier). */
export const IFF_RUNNING = 0x40;

let addon: NetnsAddon | undefined;

/** The addon, or undefined where it is not built (a CNI plugin installed away from the package). */
export function optionalNetnsAddon(): NetnsAddon | undefined {
  if (missing) return undefined;
  try {
    return netnsAddon();
  } catch {
    missing = true; // asked on every tool start: look once
    return undefined;
  }
}
let missing = false;

export function netnsAddon(): NetnsAddon {
  if (addon) return addon;
  const file = join(packageRoot(), 'build', 'Release', 'kubewire_netns.node');
  if (!existsSync(file)) throw new Error(`the native helper ${file} is missing: run npm install in ${packageRoot()} (it builds it with node-gyp)`);
  const loaded = createRequire(import.meta.url)(file) as Partial<NetnsAddon>;
  if (typeof loaded.promises?.run !== 'function') throw new Error(`the native helper ${file} is older than this code: run npm install in ${packageRoot()} (it rebuilds it)`);
  addon = loaded as NetnsAddon;
  return addon;
}
