// The namespace controller: a Terminating namespace is emptied (its pods deleted
// gracefully, so their node agents tear them down), then removed. And the service account
// controller's one job here: every live namespace has its `default` ServiceAccount.

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

/** Creates the namespace's `default` ServiceAccount when it is missing (pods name it by default). */
export function ensureDefaultServiceAccount(api: Api, namespace: string): void {
  const ns = api.tryGet({ kind: 'Namespace', name: namespace });
  if (!ns || ns.metadata.deletionTimestamp) return;
  if (api.tryGet({ kind: 'ServiceAccount', namespace, name: 'default' })) return;
  api.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } }, { system: true });
}
