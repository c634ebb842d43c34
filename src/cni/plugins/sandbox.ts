// The pod's network namespace as plugins receive it: a path in CNI_NETNS.

import type { Dataplane } from '../../dataplane/port.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { CmdArgs } from '../skel/skel.ts';

/** CNI_NETNS names a network namespace other than the host's, or the plugin refuses. */
export function requireNetns(args: Pick<CmdArgs, 'netns' | 'hostNetns' | 'dataplane'>): void {
  const path = args.netns;
  switch (args.dataplane.netnsState(path, args.hostNetns)) {
    case 'ok':
      return;
    case 'missing':
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${JSON.stringify(path)} does not exist`);
    case 'not-a-netns':
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${JSON.stringify(path)} is not a network namespace`);
    case 'own':
      throw new CniError(ErrorCode.InvalidNetNS, `CNI_NETNS ${JSON.stringify(path)} is the host's own network namespace`);
  }
}

/** Whether the pod's namespace is still there (a DEL after it went has nothing to undo inside it). */
export function podNetnsPresent(dp: Dataplane, args: Pick<CmdArgs, 'netns' | 'hostNetns'>): boolean {
  return Boolean(args.netns) && dp.netnsState(args.netns, args.hostNetns) === 'ok';
}
