// The namespace controller: a Terminating namespace is emptied (its pods deleted
// gracefully, so their node agents tear them down), then removed.

import { RESOURCES } from '../api/resources.ts';
import type { Api } from '../apiserver/api.ts';

/** Returns true once the namespace is gone. */
export function syncNamespace(api: Api, name: string): boolean {
  const ns = api.tryGet({ kind: 'Namespace', name });
  if (!ns) return true;
  if (!ns.metadata.deletionTimestamp) return false;
  let remaining = 0;
  for (const rt of RESOURCES.filter((r) => r.namespaced)) {
    for (const obj of api.list(rt.kind, name).items) {
      remaining++;
      api.delete({ kind: rt.kind, namespace: name, name: obj.metadata.name });
    }
  }
  if (remaining) return false;
  api.finalize({ kind: 'Namespace', name }, ns.metadata.uid);
  return true;
}
