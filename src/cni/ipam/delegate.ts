// Delegation to the IPAM plugin named by `ipam.type`, as the spec prescribes: same
// environment, the full configuration. When the plugin found in CNI_PATH is one of ours it
// runs in-process, which saves a process start (and is observably the same).

import { closeSync, openSync, readSync } from 'node:fs';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { normalizeResult, type Result } from '../spec/types.ts';
import type { CmdArgs, Command, PluginFuncs } from '../skel/skel.ts';
import { execPlugin, findInPath } from '../invoke/exec.ts';
import { hostLocal } from './host-local/plugin.ts';

/** Marks the executables that `kubewire cni install` writes. */
export const PLUGIN_MARKER = 'kubewire-cni-plugin';

const IN_PROCESS: Record<string, PluginFuncs> = { 'host-local': hostLocal };

function isKubewirePlugin(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).toString('latin1').includes(PLUGIN_MARKER);
  } finally {
    closeSync(fd);
  }
}

export function ipamType(args: CmdArgs): string {
  const type = args.conf.ipam?.type;
  if (typeof type !== 'string' || !type) throw new CniError(ErrorCode.InvalidNetworkConfig, 'field "ipam.type" is required');
  return type;
}

export async function delegate(command: Exclude<Command, 'VERSION'>, args: CmdArgs): Promise<Result | undefined> {
  const type = ipamType(args);
  const path = findInPath(type, args.path);
  const local = IN_PROCESS[type];
  if (local && isKubewirePlugin(path)) {
    const sub: CmdArgs = { ...args, command };
    switch (command) {
      case 'ADD': return local.add(sub);
      case 'DEL': await local.del(sub); return undefined;
      case 'CHECK': await local.check?.(sub); return undefined;
      case 'GC': await local.gc?.(sub); return undefined;
      case 'STATUS': await local.status?.(sub); return undefined;
    }
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(args.env)) if (v !== undefined) env[k] = v;
  env.CNI_COMMAND = command;
  const out = await execPlugin({ pluginPath: path, env, stdin: args.stdin });
  if (command !== 'ADD') return undefined;
  if (out === undefined) throw new CniError(ErrorCode.DecodingFailure, `IPAM plugin ${type} returned no result`);
  return normalizeResult(out, `result of IPAM plugin ${type}`);
}
