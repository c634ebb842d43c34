// The attachments a GC call names (CNI 1.1 GC: cni.dev/valid-attachments, and the older
// key cni.dev/attachments), read by every plugin that keeps per-attachment state.

import { CniError, ErrorCode } from './errors.ts';
import type { Attachment, NetConf } from './types.ts';

/** The attachments a GC call says are still valid (both the current and the older key). */
export function validAttachments(conf: NetConf): Attachment[] {
  const out: Attachment[] = [];
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments'] as const) {
    const list = conf[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new CniError(ErrorCode.InvalidNetworkConfig, `field "${key}" must be a list`);
    for (const a of list) {
      if (typeof a?.containerID !== 'string' || typeof a?.ifname !== 'string') {
        throw new CniError(ErrorCode.InvalidNetworkConfig, `field "${key}" entries need string containerID and ifname`);
      }
      out.push(a);
    }
  }
  return out;
}
