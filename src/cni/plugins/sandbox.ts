// The pod's network namespace as plugins receive it: a path in CNI_NETNS.

import { CniError, ErrorCode } from '../spec/errors.ts';
import { inspectNetns } from '../../dataplane/linux/netns.ts';

export function requireNetns(path: string, hostNetns?: string): void {
  switch (inspectNetns(path, hostNetns)) {
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
