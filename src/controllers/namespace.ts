// The namespace controller: a Terminating namespace is emptied (its pods deleted
// gracefully, so their node agents tear them down), then finalized (PUT .../finalize), which
// removes it. As upstream's, it lists and deletes through the API, not through informers: a
// namespace's deletion is rare, and must see what is there now. And the service account
// controller's one job here: every live namespace has its `default` ServiceAccount.

import { RESOURCES } from '../api/resources.ts';
import type { Namespace } from '../api/types.ts';
import { isAlreadyExists } from '../apiserver/status.ts';
import { ignoreNotFound } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

/** Returns true once the namespace is gone. */
export async function syncNamespace(ctx: ControllerContext, name: string): Promise<boolean> {
  const ns = lister<Namespace>(ctx, 'Namespace').get(undefined, name);
  if (!ns) return true;
  if (!ns.metadata.deletionTimestamp) return false;
  let remaining = 0;
  for (const r of RESOURCES.filter((r) => r.namespaced)) {
    for (const obj of (await ctx.client.list(r, name)).items) {
      remaining++;
      await ignoreNotFound(ctx.client.delete(r, name, obj.metadata.name));
    }
  }
  if (remaining) return false;
  await ignoreNotFound(ctx.client.finalizeNamespace(name, ns.metadata.uid));
  return true;
}

/** Creates the namespace's `default` ServiceAccount when it is missing (pods name it by default). */
export async function ensureDefaultServiceAccount(ctx: ControllerContext, namespace: string): Promise<void> {
  const ns = lister(ctx, 'Namespace').get(undefined, namespace);
  if (!ns || ns.metadata.deletionTimestamp) return;
  if (lister(ctx, 'ServiceAccount').get(namespace, 'default')) return;
  try {
    await ctx.client.create(rt('ServiceAccount'), { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e; // made meanwhile (the informer was a step behind)
  }
}
