// Delegation to the IPAM plugin named by `ipam.type`, as the spec prescribes: same
// environment, the full configuration. When the plugin found in CNI_PATH is one of ours it
// runs in-process, which saves a process start (and is observably the same).

import { CniError, ErrorCode } from '../spec/errors.ts';
import { normalizeResult, type Result } from '../spec/types.ts';
import type { CmdArgs, Command, PluginFuncs } from '../skel/skel.ts';
import { execPlugin, findInPath } from '../invoke/exec.ts';
import { isKubewirePlugin } from '../invoke/marker.ts';
import { hostLocal } from './host-local/plugin.ts';
import { vpcIpam } from './vpc/plugin.ts';

const IN_PROCESS: Record<string, PluginFuncs> = { 'host-local': hostLocal, vpc: vpcIpam };

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
  const out = await execPlugin({ pluginPath: path, env, stdin: args.stdin, hostNetns: args.hostNetns });
  if (command !== 'ADD') return undefined;
  if (out === undefined) throw new CniError(ErrorCode.DecodingFailure, `IPAM plugin ${type} returned no result`);
  return normalizeResult(out, `result of IPAM plugin ${type}`);
}
